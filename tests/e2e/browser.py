"""What the browser tests share: Debian's chromium, how it is launched, and signing in.

Signing in is password then the second factor's code, as staff do; the code is computed from
the device (no ORM call: Django refuses them from Playwright's thread).
"""

from __future__ import annotations

import os

from kenshin.accounts.testing import current_code

CHROMIUM = os.environ.get("KENSHIN_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
PASSWORD = "e2e-correct-horse-battery"  # a throwaway test account


def sign_in(page, username: str, device, password: str = PASSWORD) -> None:
    """On the login page: the user ID and password, then the code of ``device`` (TOTP)."""
    page.get_by_label("利用者ID").fill(username)
    page.get_by_label("パスワード").fill(password)
    page.get_by_role("button", name="ログイン").click()
    page.get_by_label("確認コード").fill(current_code(device))
    page.get_by_role("button", name="確認").click()
