"""`kenshin demo setup` — the demo city and demo accounts, for the README's demo command.

Only meaningful with KENSHIN_DEMO=1: it creates accounts with printed passwords, which no
real installation may have.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from kenshin.accounts import services as accounts
from kenshin.core import audit, clock
from kenshin.linkage import services as linkage
from kenshin.programs import services as programs
from kenshin.residents import services as residents
from kenshin.screening import services as screening

# Two contracted clinics with 10-digit 医療機関コード (広島県 34, synthetic numbers).
DEMO_INSTITUTIONS = (
    ("3410000011", "くれ中央クリニック（デモ）"),
    ("3410000029", "みなと内科医院（デモ）"),
)
# (利用者ID, 表示名, roles, scope): one account per standard role, a clinic user scoped to
# the first demo clinic.
DEMO_ACCOUNTS: tuple[tuple[str, str, list[str], tuple[str, str] | None], ...] = (
    ("kanri", "システム管理者 高橋（デモ）", ["system_admin"], None),
    ("kacho", "課長 中村（デモ）", ["kacho"], None),
    # A second holder of linkage.merge: a 統合宛名 merge needs a requester and an approver.
    ("kacho2", "課長補佐 田中（デモ）", ["kacho"], None),
    ("hokenshi", "保健師 山本（デモ）", ["hokenshi"], None),
    ("jimu", "事務 佐々木（デモ）", ["jimu"], None),
    ("etsuran", "閲覧 小林（デモ）", ["etsuran"], None),
    ("clinic", "くれ中央クリニック 受付（デモ）", ["clinic"], ("clinic", "3410000011")),
)
# Only these accounts' codes are ever printed by `kenshin demo totp` (never a real user's).
DEMO_USERNAMES: tuple[str, ...] = tuple(a[0] for a in DEMO_ACCOUNTS)
BASE_DATE = date(2023, 4, 1)
END_DATE = date(2026, 10, 31)


class Command(BaseCommand):
    help = "デモの街（合成データ）とデモ用アカウントを用意します（KENSHIN_DEMO=1 のときだけ）"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        setup = sub.add_parser(
            "setup", help="デモの街を生成して取り込み、デモ用アカウントを作ります"
        )
        setup.add_argument("--residents", type=int, default=20_000)
        setup.add_argument("--seed", type=int, default=1)
        totp = sub.add_parser("totp", help="デモ用アカウントの現在の確認コード（6桁）を表示します")
        totp.add_argument("username")

    def handle(self, *args, **options):
        if not settings.DEMO_MODE:
            raise CommandError("デモ用のコマンドです。KENSHIN_DEMO=1 のときだけ使えます")
        if options["action"] == "totp":
            self._totp(options["username"])
            return
        self._prepare_linkage()
        done = self._marker(options["residents"], options["seed"])
        if done.exists() and residents.count_current():
            total = sum(residents.count_current().values())
            self.stdout.write(f"デモの街は用意済みです（住民記録 {total:,} 人）。生成を省きます。")
        else:
            # Also after an interrupted run: imports are idempotent per file, so the files
            # already taken in are skipped and the rest follow.
            self._build_city(options["residents"], options["seed"])
            done.write_text("imported\n", encoding="utf-8")
        # The 呉市-like default catalogues FY2024–FY2026 (migrations load no data); a year the
        # demo's staff have already adjusted is left as it is.
        for fiscal_year, outcome in programs.load_shipped(audit.Actor.system("demo")):
            self.stdout.write(f"検診事業の定義 {fiscal_year}年度: {outcome}")
        self._exam_history(options["seed"])
        self._rosters()
        self._vouchers()
        self._intake_sample(options["seed"])
        self.stdout.write("")
        for code, name in DEMO_INSTITUTIONS:
            accounts.ensure_institution(code, name)
        self.stdout.write("デモ用アカウント（パスワードは起動のたびに新しく発行します）:")
        for username, display, roles, scope in DEMO_ACCOUNTS:
            password, _ = accounts.ensure_demo_user(username, display, roles, scope)
            self.stdout.write(
                f"  利用者ID {username:<10} パスワード {password}   {display}\n"
                f"      確認コード: kenshin demo totp {username}"
            )
        self.stdout.write("")
        self.stdout.write(
            "ログイン後の確認コード（6桁）は、別の端末で"
            "「KENSHIN_DEMO=1 uv run kenshin demo totp 利用者ID」を実行すると表示されます"
            "（スマートフォンの認証アプリの代わり。デモ環境だけの機能です）。"
        )
        self.stdout.write("")

    def _totp(self, username: str) -> None:
        """Print a demo account's current code: the demo's stand-in for a phone app.

        Refused for any name the demo did not create, so a real account added to a demo
        installation never has its second factor printed by a command.
        """
        try:
            code = accounts.demo_totp_code(username, demo_usernames=DEMO_USERNAMES)
        except LookupError:
            raise CommandError(
                f"{username} はデモ用アカウントではないか、認証アプリが登録されていません。"
                f"確認コードを表示できるのはデモ用アカウント（{'、'.join(DEMO_USERNAMES)}）だけです"
            ) from None
        self.stdout.write(code)

    def _prepare_linkage(self) -> None:
        """The embedded 番号連携サーバ, before any resident is imported (imports register
        every resident there): a key file under var/keys/ unless keys come from the
        environment, and this system with a credential file. Its tables are created by
        `kenshin migrate --database linkage` (scripts/demo)."""
        key_file = Path(settings.LINKAGE_KEY_FILE) if settings.LINKAGE_KEY_FILE else None
        if key_file is not None and not linkage.keys_from_environment() and not key_file.exists():
            call_command("linkage", "keys", "init", stdout=self.stdout)
        linkage.ensure_embedded_setup(actor="demo")

    @staticmethod
    def _feed_dir(n: int, seed: int) -> Path:
        return Path(settings.VAR_DIR) / "demo" / f"feed-{n}-{seed}"

    def _marker(self, n: int, seed: int) -> Path:
        """Written only after every file of the city was imported without error."""
        return self._feed_dir(n, seed) / ".imported"

    def _build_city(self, n: int, seed: int) -> None:
        from kenshin.demo.city import generate_city

        out = self._feed_dir(n, seed)
        self.stdout.write(f"住民 {n:,} 人のデモの街を生成しています（seed {seed}）…")
        paths = generate_city(out, residents=n, seed=seed, base_date=BASE_DATE, end_date=END_DATE)
        self.stdout.write(f"{len(paths)} 個の住民記録ファイルを取り込みます…")
        reports = residents.import_feed_files(paths, stdout=self.stdout, actor="demo")
        if any(r.errors for r in reports):
            raise CommandError("デモの街の取り込みに失敗しました")

    def _vouchers(self) -> None:
        """FY2026 受診券 for everyone eligible (one per person, every programme), once — so the
        entry of paper 受診票 can find people by number, as a city's staff do."""
        if screening.voucher_count(2026):
            self.stdout.write("令和8年度の受診券は発行済みです。")
            return
        with clock.frozen(date(2026, 4, 1)):
            issued = screening.issue_vouchers(
                audit.Actor.system("demo"), 2026, screening.eligible_atena_nos(2026)
            )
        self.stdout.write(
            f"令和8年度の受診券 {len(issued):,} 枚を発行しました（番号は受診台帳に出ます）。"
        )

    def _intake_sample(self, seed: int) -> None:
        """A clinic's result file for this city, to try 結果ファイル取込 with."""
        from kenshin.demo.intake_samples import write_result_file

        path = Path(settings.VAR_DIR) / "demo" / "kekka-2026-11-clinic.csv"
        if not path.exists():
            with clock.frozen(date(2026, 11, 26)):
                write_result_file(path, seed)
        self.stdout.write(f"結果ファイル取込の試し用ファイル: {path}")

    def _rosters(self) -> None:
        """The FY2025 and FY2026 rosters (対象者名簿), built once so the pages have data."""
        for fiscal_year in (2025, 2026):
            if screening.last_build(fiscal_year) is not None:
                self.stdout.write(f"{fiscal_year}年度の対象者名簿は作成済みです。")
                continue
            report = screening.build_roster(fiscal_year, actor=audit.Actor.system("demo"))
            eligible = sum(v["eligible"] for v in report.per_method.values())
            self.stdout.write(
                f"{fiscal_year}年度の対象者名簿を作りました（基準日 {report.as_of}、"
                f"{report.inserted:,} 行、対象 {eligible:,} 件、{report.seconds:.1f} 秒）。"
            )

    def _exam_history(self, seed: int) -> None:
        """Five years of screenings FY2022–FY2026 (demo/exams.py) — results, 要精検 and what
        became of each 精検 by today — once: a city with any exam of those years already has
        its history, so a second setup adds nothing. Written before the rosters: the FY2025
        roster reads FY2022–FY2024, the FY2026 roster FY2025 (HPV 追跡検査 included)."""
        from kenshin.demo.exams import FISCAL_YEARS, generate_exam_history

        years = f"{FISCAL_YEARS[0]}〜{FISCAL_YEARS[-1]}年度"
        existing = screening.exam_count(FISCAL_YEARS)
        if existing:
            self.stdout.write(f"受診歴（{years}）は用意済みです（{existing:,} 件）。")
            return
        self.stdout.write(f"受診歴（{years}、結果と精密検査の経過を含む）を生成しています…")
        started = time.monotonic()
        rows = generate_exam_history(seed=seed, institutions=[c for c, _ in DEMO_INSTITUTIONS],
                                     register_start=BASE_DATE, register_end=END_DATE)  # fmt: skip
        written = screening.record_exam_history(rows, actor="demo", source=f"demo seed {seed}")
        self.stdout.write(
            f"受診歴 {written:,} 件を登録しました（{time.monotonic() - started:.1f} 秒）。"
        )
