#!/usr/bin/env python
"""Django's manage.py; `kenshin` is the same thing installed as a console command."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from kenshin.cli import main

if __name__ == "__main__":
    main()
