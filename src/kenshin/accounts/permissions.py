"""Functions of the accounts app (core.permissions registry)."""

from kenshin.core.permissions import declare

MANAGE_USERS = declare("accounts.manage_users", "利用者の管理", step_up=True)
ASSIGN_ROLES = declare("accounts.assign_roles", "ロールの付与・取消", step_up=True)
END_SESSIONS = declare("accounts.end_sessions", "セッションの強制終了", step_up=True)
BREAK_GLASS = declare("accounts.break_glass", "緊急アクセスの申請・承認", step_up=True)
VIEW_INSTITUTION = declare("accounts.view_institution", "医療機関情報の閲覧", scopes=("clinic",))
EDIT_INSTITUTION = declare("accounts.edit_institution", "医療機関情報の更新", scopes=("clinic",))

# Functions that do not make an account an administrator: a clinic's own contact details.
# Every other accounts.* function (today and any added later) is privileged: a role holding
# one may only be granted by an administrator unrelated to the account, and each grant opens
# a review task for the 課長 (accounts.actions.assign_role).
NOT_PRIVILEGED = frozenset({VIEW_INSTITUTION, EDIT_INSTITUTION})


def is_privileged(code: str) -> bool:
    """True for a function that changes who may do what (accounts administration)."""
    return code.startswith("accounts.") and code not in NOT_PRIVILEGED
