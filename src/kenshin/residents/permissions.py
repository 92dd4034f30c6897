"""Functions of the residents app (core.permissions registry)."""

from kenshin.core.permissions import declare

SEARCH = declare("residents.search", "住民の検索")
VIEW = declare("residents.view", "住民記録の閲覧")
FLAG = declare("residents.flag", "閲覧注意の住民の設定")
IMPORT = declare("residents.import", "住民記録ファイルの取込（サーバー上のコマンド）")
