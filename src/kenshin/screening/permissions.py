"""Functions of the screening app (core.permissions registry)."""

from kenshin.core.permissions import declare

VIEW_ROSTER = declare("screening.view_roster", "対象者名簿の閲覧")
BUILD_ROSTER = declare("screening.build_roster", "対象者抽出の実行")
EXCLUDE = declare("screening.exclude", "受診不要の登録・取消")
OVERRIDE = declare("screening.override", "対象者判定の変更（職員の判断）", step_up=True)
EXPORT_ROSTER = declare("screening.export_roster", "対象者名簿の出力", step_up=True)
ENTER_RESULT = declare("screening.enter_result", "検診結果の登録")
FOLLOW_UP = declare("screening.follow_up", "精密検査の追跡")
VIEW_EXAMS = declare("screening.view_exams", "受診台帳・ワークリストの閲覧")
