"""Functions of the programs app (core.permissions registry)."""

from kenshin.core.permissions import declare

VIEW = declare("programs.view", "検診事業の定義の閲覧")
EDIT = declare("programs.edit", "検診事業の定義の変更（翌年度への複写・調整）", step_up=True)
