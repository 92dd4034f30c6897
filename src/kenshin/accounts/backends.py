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
        if not user_obj.is_active:
            return False
        return any(g.function.startswith(app_label + ".") for g in grants.grants_of(user_obj))

    def with_perm(
        self, perm: Any, is_active: bool = True, include_superusers: bool = True, obj=None
    ):
        """Who holds ``perm`` through a role in force now (never "every superuser").

        ModelBackend's version would list superusers and read Django's permission tables.
        """
        from django.contrib.auth import get_user_model

        from kenshin.accounts.models import Role, RoleAssignment

        # JSON "contains" is not available on SQLite; the role table is small.
        role_ids = [r.pk for r in Role.objects.all() if perm in (r.functions or [])]
        user_ids = RoleAssignment.objects.filter(grants.in_force_q(), role_id__in=role_ids).values(
            "user_id"
        )
        users = get_user_model()._default_manager.filter(pk__in=user_ids)
        return users.filter(is_active=True) if is_active else users
