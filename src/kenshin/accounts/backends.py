"""Authentication by password; authorisation only from role assignments.

Why not ModelBackend's permissions: Django would let ``is_superuser`` pass every check and would
read its own permission tables. Here the only way to a function is an active role grant.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend

from kenshin.accounts import grants


class RoleBackend(ModelBackend):
    """ModelBackend's password check, with permissions answered from roles."""

    def get_user_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return set()

    def get_group_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return set()

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return {g.function for g in grants.grants_of(user_obj)}

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if not user_obj.is_active:
            return False
        return grants.allows(user_obj, perm, obj)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return any(g.function.startswith(app_label + ".") for g in grants.grants_of(user_obj))
