"""grant-roles refuses to pretend: it runs only as the owner, and checks what it did (MN-01).

Why: PostgreSQL answers a REVOKE by a role that may not revoke with a warning, not an error;
run as the linkage server's own (non-owner) role, grant-roles used to print success while the
main role kept CONNECT on the database.
"""

from __future__ import annotations

import pytest
from django.db import connections

from kenshin.linkage import provision
from kenshin.linkage.tests.test_isolation import LINKAGE_ROLE, MAIN_ROLE, roles  # noqa: F401

pytestmark = pytest.mark.django_db(databases=["default", "linkage"])


def test_grant_roles_run_by_a_role_that_does_not_own_the_database_is_refused(roles):  # noqa: F811
    main, linkage = roles
    with connections["linkage"].cursor() as cur:
        cur.execute(f"SET ROLE {LINKAGE_ROLE}")
        try:
            with pytest.raises(provision.ProvisionError, match="所有者"):
                provision.grant_roles(linkage_role=linkage, main_role=main)
        finally:
            cur.execute("RESET ROLE")


def test_a_runtime_role_that_owns_the_tables_is_reported(roles):  # noqa: F811
    main, linkage = roles
    with connections["linkage"].cursor() as cur:
        cur.execute(f"ALTER TABLE linkage_linkageevent OWNER TO {linkage}")
    result = provision.grant_roles(linkage_role=linkage, main_role=main, dry_run=True)
    assert any("所有者" in w and "追記専用" in w for w in result.warnings), result.warnings


def test_grant_roles_fails_when_the_main_role_would_keep_access(roles):  # noqa: F811
    """A main role that is a member of PUBLIC-granted… here: granted CONNECT through a role it
    belongs to, which grant-roles does not revoke — the check catches it and rolls back."""
    main, linkage = roles
    db = connections["linkage"].settings_dict["NAME"]
    helper = "kenshin_test_backdoor"
    with connections["linkage"].cursor() as cur:
        cur.execute(
            f"DO $$ BEGIN CREATE ROLE {helper} NOLOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        cur.execute(f"GRANT {helper} TO {MAIN_ROLE}")
        cur.execute(f'GRANT CONNECT ON DATABASE "{db}" TO {helper}')
    try:
        with pytest.raises(provision.ProvisionError, match="外せませんでした"):
            provision.grant_roles(linkage_role=linkage, main_role=main)
    finally:
        with connections["linkage"].cursor() as cur:
            cur.execute(f'REVOKE CONNECT ON DATABASE "{db}" FROM {helper}')
            cur.execute(f"REVOKE {helper} FROM {MAIN_ROLE}")
