"""Functions of the intake app (core.permissions registry)."""

from kenshin.core.permissions import declare

IMPORT = declare("intake.import", "検診結果ファイルの取込（確認まで）")
RESOLVE = declare("intake.resolve", "照合保留の解決")
COMMIT = declare("intake.commit", "検診結果ファイルの確定（登録）・承認")
PROFILES = declare("intake.profiles", "列の対応表（プロファイル）の編集")
