"""Functions of the 番号連携 side of the health system (core.permissions registry).

Why three levels: seeing that a person has a 個人番号 (masked, last four digits) is routine
for 番号利用事務 staff; the full number is needed rarely and is the most protected data in the
system, so revealing it asks for a reason and a fresh second factor (ACL-03, ACL-05);
merging two 統合宛名番号 changes who a record belongs to, so it takes two people (four eyes).
"""

from kenshin.core.permissions import declare

VIEW_MYNUMBER = declare("linkage.view_mynumber", "個人番号（マスク表示）の確認")
REVEAL_MYNUMBER = declare(
    "linkage.reveal_mynumber", "個人番号の表示（理由と確認コードが必要）", step_up=True
)
MERGE = declare("linkage.merge", "統合宛名の統合・取消（申請と承認）", step_up=True)
