"""Purpose codes (利用目的): why a member of staff opens a resident's record (ACL-04).

Why a fixed vocabulary: the access review asks "why did you look at this person?", and a free
text answer cannot be counted or checked. The codes follow the 事務 the assessment lists for
the 健康管理ファイル. New codes are added here (and to docs/security.md), never removed, because
old audit rows keep referring to them.
"""

from __future__ import annotations

from django.db import models


class Purpose(models.TextChoices):
    """Why a record is opened. The value is stored in every audit event that reads personal data."""

    ELIGIBILITY = "eligibility", "対象者確認・抽出"
    VOUCHER = "voucher", "受診券・クーポン発行"
    RESULT_ENTRY = "result_entry", "結果登録"
    FOLLOW_UP = "follow_up", "精密検査の追跡"
    INQUIRY = "inquiry", "問合せ対応"
    DISCLOSURE = "disclosure", "開示請求対応"
    BILLING = "billing", "委託料の支払"
    REPORT = "report", "統計・事業報告"
    DATA_CORRECTION = "data_correction", "記録の訂正"
    AUDIT = "audit", "監査・アクセス点検"
    EMERGENCY = "emergency", "緊急対応"


def label(code: str) -> str:
    """The Japanese label of a code, or the code itself for one no longer offered."""
    try:
        return Purpose(code).label
    except ValueError:
        return code
