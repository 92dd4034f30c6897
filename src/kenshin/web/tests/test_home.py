"""The home page shows each user what their roles allow, nothing more."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_reviewer_sees_open_review_tasks_and_search(make_user, signed_in):
    from kenshin.audit import services as audit

    audit.open_review_task("break_glass", "緊急アクセスの利用")
    body = signed_in(make_user("kacho1", roles=["kacho"])).get("/").content.decode()
    assert "未確認の点検タスク <strong>1 件</strong>" in body
    assert "住民を検索する" in body


def test_system_admin_sees_neither_search_nor_review_tasks(make_user, signed_in):
    body = signed_in(make_user("kanri1", roles=["system_admin"])).get("/").content.decode()
    assert "住民を検索する" not in body
    assert "点検タスク" not in body
