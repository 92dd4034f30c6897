"""Functions of the audit app (core.permissions registry)."""

from kenshin.core.permissions import declare

REVIEW = declare("audit.review", "アクセス点検（閲覧履歴・異常検知・点検タスク）")
EXPORT = declare("audit.export", "監査ログの出力", step_up=True)
ACCESS_REVIEW = declare("audit.access_review", "ロール別アクセス点検")
