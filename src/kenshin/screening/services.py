"""Public face of screening: the roster (対象者) and, later, exams and follow-up.

Other apps, the CLI and the UI call these functions, never the models.
"""

from __future__ import annotations

from kenshin.screening.build import BuildReport, build_roster

__all__ = ["BuildReport", "build_roster"]
