"""The standard roles a new installation starts with (data, editable afterwards).

Why these sets: separation of duties as the assessment describes it — the system administrator
manages accounts but reads no resident data; the 課長 reviews access; clinic users see only their
own institution. Later features add their functions to these roles in their own migrations.

個人番号 (linkage.*): 保健師 and 事務 may see the masked number (番号利用事務); only the 課長
may reveal it in full (with a reason and a fresh code) and merge 統合宛名番号. A merge needs a
second person to approve, so an installation gives linkage.merge to at least two people
(another 課長, or a custom role) — the engine refuses an approval by the requester.
"""

from __future__ import annotations

STANDARD_ROLES: list[dict] = [
    {
        "code": "system_admin",
        "name": "システム管理者",
        "description": "利用者・ロール・セッションの管理。住民の記録は閲覧できません。",
        "functions": [
            "accounts.manage_users",
            "accounts.assign_roles",
            "accounts.end_sessions",
            "accounts.break_glass",
            "accounts.view_institution",
            "accounts.edit_institution",
            "audit.access_review",
        ],
    },
    {
        "code": "kacho",
        "name": "課長",
        "description": "業務全般とアクセス点検。",
        "functions": [
            "residents.search",
            "residents.view",
            "residents.flag",
            "audit.review",
            "audit.export",
            "audit.access_review",
            "accounts.view_institution",
            "linkage.view_mynumber",
            "linkage.reveal_mynumber",
            "linkage.merge",
            "programs.view",
            "programs.edit",
            "screening.view_roster",
            "screening.build_roster",
            "screening.exclude",
            "screening.override",
            "screening.export_roster",
            "screening.view_exams",
            "screening.enter_result",
            "screening.follow_up",
            "intake.import",
            "intake.resolve",
            "intake.commit",
            "intake.profiles",
        ],
    },
    {
        "code": "hokenshi",
        "name": "保健師",
        "description": "対象者の確認、結果の登録、精密検査の追跡。",
        "functions": [
            "residents.search",
            "residents.view",
            "accounts.view_institution",
            "linkage.view_mynumber",
            "programs.view",
            "screening.view_roster",
            "screening.exclude",
            "screening.override",
            "screening.view_exams",
            "screening.enter_result",
            "screening.follow_up",
            "intake.import",
            "intake.resolve",
            "intake.commit",
        ],
    },
    {
        "code": "jimu",
        "name": "事務",
        "description": "受診券の発行、結果の登録、委託料の支払。",
        "functions": [
            "residents.search",
            "residents.view",
            "accounts.view_institution",
            "linkage.view_mynumber",
            "programs.view",
            "screening.view_roster",
            "screening.build_roster",
            "screening.exclude",
            "screening.export_roster",
            "screening.view_exams",
            "screening.enter_result",
            "screening.follow_up",
            "intake.import",
            "intake.resolve",
            "intake.commit",
            "intake.profiles",
        ],
    },
    {
        "code": "etsuran",
        "name": "閲覧のみ",
        "description": "記録の閲覧だけ。登録・出力はできません。",
        "functions": [
            "residents.search",
            "residents.view",
            "programs.view",
            "screening.view_roster",
            "screening.view_exams",
        ],
    },
    {
        "code": "clinic",
        "name": "医療機関",
        "description": "自院の情報と自院が提出した記録だけ。医療機関の範囲を付けて付与します。",
        "functions": ["accounts.view_institution", "accounts.edit_institution"],
    },
    {
        "code": "emergency",
        "name": "緊急アクセス",
        "description": "災害時など、2人目の管理者の承認で時間を限って付与。操作はすべて点検対象。",
        "functions": ["residents.search", "residents.view"],
        "is_emergency": True,
    },
]
