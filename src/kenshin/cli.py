"""The `kenshin` console command: Django's management commands under one name.

`kenshin residents import FILE` maps to the `residents` management command with the
sub-command `import`; anything else is passed to Django unchanged (`kenshin migrate`).
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Run a management command with Kenshin's settings."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kenshin.settings")
    from django.core.management import execute_from_command_line

    args = list(sys.argv if argv is None else argv)
    args[0] = "kenshin"
    if len(args) > 1 and not args[1].startswith("-"):
        args[1] = args[1].replace("-", "_")  # `kenshin demo-city` → command demo_city
    execute_from_command_line(args)


if __name__ == "__main__":
    main()
