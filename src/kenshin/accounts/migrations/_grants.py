"""Adding functions to the standard roles in a migration, and taking them back on reverse.

Why add to the stored lists instead of re-seeding: an installation may have edited its roles;
only the new codes are added (and removed again on reverse), everything else stays as it is.
Each app's new functions come with one such migration; this is the one way they are written.
(The leading underscore keeps Django's migration loader from taking this module for one.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from django.db import migrations


def grant_functions(grants: Mapping[str, Sequence[str]]) -> migrations.RunPython:
    """A RunPython that adds ``grants`` {role code: [function codes]} to the stored roles."""

    def change(apps, new_functions: Callable[[list[str], Sequence[str]], list[str]]) -> None:
        Role = apps.get_model("accounts", "Role")
        for code, functions in grants.items():
            role = Role.objects.filter(code=code).first()
            if role is None:  # an installation may have removed the role
                continue
            role.functions = new_functions(list(role.functions), functions)
            role.save(update_fields=["functions"])

    def grant(apps, schema_editor):
        change(apps, lambda current, new: current + [f for f in new if f not in current])

    def revoke(apps, schema_editor):
        change(apps, lambda current, new: [f for f in current if f not in new])

    return migrations.RunPython(grant, revoke)
