"""The vault's sub-commands of ``kenshin linkage``: keys, rotate-key, grant-roles.

    kenshin linkage keys init | new [--activate] | activate N | retire N | status
    kenshin linkage rotate-key [--batch N] [--limit-batches N]
    kenshin linkage grant-roles --linkage-role R --main-role M [--dry-run]

A thin shell over keys.py, rotation.py and provision.py, dispatched to by the management
command (management/commands/linkage.py). Output is Japanese; key material is never printed.
"""

from __future__ import annotations

import getpass
from typing import Any

from django.db import DatabaseError

from kenshin.linkage import crypto, keys, provision, rotation

ACTIONS = ("keys", "rotate-key", "grant-roles")


def default_actor() -> str:
    """Who an operator's command is logged as, unless --actor says otherwise (every
    ``kenshin linkage`` sub-command uses this one)."""
    try:
        return f"cli:{getpass.getuser()}"[:150]
    except (KeyError, OSError):  # pragma: no cover - no user name in a container
        return "cli"


def add_arguments(subparsers: Any) -> None:
    """Add keys / rotate-key / grant-roles to the ``kenshin linkage`` sub-command parser."""
    k = subparsers.add_parser(
        "keys", help="個人番号の暗号鍵（鍵ファイル）の作成・追加・切替・廃止・状態"
    )
    ksub = k.add_subparsers(dest="keys_action", required=True)
    ksub.add_parser("init", help="鍵ファイルを作成します（暗号鍵 1 と検索索引の鍵）")
    new = ksub.add_parser("new", help="次の番号の暗号鍵を追加します")
    new.add_argument("--activate", action="store_true", help="追加した鍵を使用中にします")
    act = ksub.add_parser("activate", help="新しく暗号化するときの鍵を切り替えます")
    act.add_argument("key_id", type=int)
    ret = ksub.add_parser("retire", help="使われなくなった鍵を廃止します（鍵の値を削除）")
    ret.add_argument("key_id", type=int)
    ksub.add_parser("status", help="鍵番号・使用中の鍵・鍵ごとの件数（鍵の値は表示しません）")
    for p in (new, act, ret):
        p.add_argument("--actor", default="", help="操作者として記録する名前")

    rot = subparsers.add_parser(
        "rotate-key", help="すべての個人番号を使用中の鍵で暗号化し直します（中断しても再開可）"
    )
    rot.add_argument("--batch", type=int, default=5000, help="1 回の処理件数（既定 5000）")
    rot.add_argument(
        "--limit-batches", type=int, default=None, help="この回数で止めます（続きは再実行）"
    )
    rot.add_argument("--actor", default="", help="操作者として記録する名前")

    gr = subparsers.add_parser(
        "grant-roles", help="番号連携データベースを番号連携サーバのロール専用にします"
    )
    gr.add_argument("--linkage-role", default="", help="番号連携サーバのロール（PostgreSQL）")
    gr.add_argument("--main-role", default="", help="主系アプリのロール（PostgreSQL）")
    gr.add_argument("--dry-run", action="store_true", help="実行する SQL を表示するだけにします")


def handle(options: dict, stdout: Any, stderr: Any) -> int:
    """Run the sub-command in ``options["action"]``; 0 on success, 1 on a refusal."""
    action = options.get("action")
    try:
        if action == "keys":
            return _keys(options, stdout)
        if action == "rotate-key":
            return _rotate(options, stdout)
        if action == "grant-roles":
            return _grant(options, stdout, stderr)
    except (
        keys.KeyFileError,
        crypto.KeysUnavailable,
        crypto.DecryptError,
        provision.ProvisionError,
    ) as exc:
        stderr.write(str(exc))
        return 1
    except DatabaseError as exc:
        stderr.write(f"番号連携データベースでエラーが起きました（{type(exc).__name__}）")
        return 1
    stderr.write(f"不明な操作です: {action}")
    return 2


def _keys(options: dict, out: Any) -> int:
    which = options["keys_action"]
    actor = options.get("actor") or default_actor()
    if which == "init":
        path = keys.init()
        out.write(
            f"鍵ファイル {path} を作成しました（暗号鍵 1 を使用中、検索索引の鍵は別）。"
            "この鍵ファイルを失うと個人番号は復号できません。安全な場所にバックアップしてください"
        )
    elif which == "new":
        key_id = keys.new_key(activate=options["activate"], actor=actor)
        if options["activate"]:
            out.write(
                f"鍵 {key_id} を追加し、使用中にしました。"
                "続けて kenshin linkage rotate-key を実行してください"
            )
        else:
            out.write(f"鍵 {key_id} を追加しました（使用中の鍵は変わりません）")
    elif which == "activate":
        keys.activate(options["key_id"], actor=actor)
        out.write(
            f"鍵 {options['key_id']} を使用中にしました。"
            "続けて kenshin linkage rotate-key を実行してください"
        )
    elif which == "retire":
        key_id = options["key_id"]
        if keys.retire(key_id, actor=actor) == "file":
            out.write(f"鍵 {key_id} を廃止しました（鍵の値は鍵ファイルから削除しました）")
        else:
            out.write(
                f"鍵 {key_id} で暗号化された個人番号はありません。鍵は環境変数から読み込まれて"
                f"いるため、{crypto.ENV_KEYS} から鍵 {key_id} を外してください"
            )
    else:
        _status(keys.status(), out)
    return 0


def _status(st: keys.KeyStatus, out: Any) -> None:
    where = "環境変数" if st.source == "environment" else f"鍵ファイル {st.path}"
    out.write(f"鍵の読み込み元: {where}")
    out.write(f"使用中の鍵: {st.active_key_id}")
    for key_id in st.key_ids:
        mark = "（使用中）" if key_id == st.active_key_id else ""
        rows = f"{st.rows.get(key_id, 0):,} 件" if not st.rows_error else "—"
        out.write(f"  鍵 {key_id}{mark}: {rows}")
    if st.retired_key_ids:
        out.write("廃止済みの鍵番号: " + ", ".join(map(str, st.retired_key_ids)))
    orphans = {k: n for k, n in st.rows.items() if k not in st.key_ids}
    for key_id, n in sorted(orphans.items()):
        out.write(f"  注意: 鍵 {key_id} がないため復号できない個人番号が {n:,} 件あります")
    if st.rows_error:
        out.write(st.rows_error)


def _rotate(options: dict, out: Any) -> int:
    result = rotation.rotate_all(
        batch_size=max(1, options["batch"]),
        progress=getattr(out, "_out", out),  # the raw stream: the line rewrites itself
        stop_after=options.get("limit_batches"),
        actor=options.get("actor") or default_actor(),
    )
    rate = result.rows / result.seconds if result.seconds > 0 else 0.0
    out.write(
        f"鍵 {result.active_key_id} で {result.rows:,} 件を暗号化し直しました"
        f"（{result.seconds:.1f} 秒、{rate:,.0f} 件/秒）"
    )
    if result.remaining:
        out.write(
            f"ほかの鍵の個人番号が {result.remaining:,} 件残っています。"
            "もう一度 rotate-key を実行すると続きから再開します"
        )
    else:
        old = sorted(k for k in crypto.keyring().key_ids if k != result.active_key_id)
        if old:
            out.write(
                "すべての個人番号が使用中の鍵になりました。古い鍵は "
                + " / ".join(f"kenshin linkage keys retire {k}" for k in old)
                + " で廃止できます"
            )
    return 0


def _grant(options: dict, out: Any, err: Any) -> int:
    result = provision.grant_roles(
        linkage_role=options.get("linkage_role") or "",
        main_role=options.get("main_role") or "",
        dry_run=options.get("dry_run", False),
    )
    if result.vendor == "postgresql" and (options.get("dry_run") or not result.applied):
        out.write("-- 実行する SQL（--dry-run のため未実行）")
        for statement in result.statements:
            out.write(statement + ";")
    elif result.vendor == "postgresql":
        out.write(f"{len(result.statements)} 件の GRANT/REVOKE を実行しました")
    for note in result.notes:
        out.write(note)
    for warning in result.warnings:
        err.write("注意: " + warning)
    return 1 if result.warnings and result.applied else 0
