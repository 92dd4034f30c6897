"""The set-based roster build makes exactly the decisions of programs.rules.decide.

A seeded population with people placed on every boundary the rules have (1 April births,
leap days, 喫煙指数 599/600, 節目 ages, move-ins, HPV follow-ups due on the first and last day
of the year, deaths and move-outs on the base date) is built with the SQL path and each row is
compared with the reference function; people outside a method's population must have no row.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from kenshin.core import clock
from kenshin.programs import services as programs
from kenshin.programs.rules import History, PersonFacts, coupon_cohort, decide, exemption
from kenshin.residents.models import FiscalCategory, ResidentVersion
from kenshin.screening import build as roster_build
from kenshin.screening.facts import history_of, person_facts
from kenshin.screening.models import Exam, Exclusion, RosterEntry

MC = "342025"
FY = 2025
BASE = date(2025, 4, 1)
PROGRAMME_OF = {
    "gastric_xray": "gastric", "gastric_endoscopy": "gastric", "chest_xray": "lung",
    "sputum_cytology": "lung", "fecal_occult_blood": "colorectal", "mammography": "breast",
    "breast_ultrasound": "breast",
    "cytology": "cervical", "hpv_primary": "cervical", "periodontal_exam": "periodontal",
    "dxa": "osteoporosis", "hepatitis_test": "hepatitis",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _catalogues(settings):
    settings.MUNICIPALITY_CODE = MC
    with clock.frozen(date(2026, 11, 26)):
        programs.load_shipped()
        yield


def _version(atena_no: str, sex: int, birth: date, status: str, *, kind: str = "full_load",
             valid_from: date = date(2020, 1, 1), valid_to: date | None = None) -> ResidentVersion:  # fmt: skip
    return ResidentVersion(
        municipality_code=MC, atena_no=atena_no, valid_from=valid_from, valid_to=valid_to,
        change_kind=kind, receipt_date=valid_from, name="試験　花子", name_kana="シケン　ハナコ",
        kana_key="シケンハナコ", name_key="試験花子", sex=sex, birth_date=birth,
        address="広島県呉市中央四丁目1番6号", household_no="2" + atena_no[1:],
        relationship="世帯主", household_head_name="試験　花子", status=status, feed_id=1,
        source_row=1,
    )  # fmt: skip


def _boundary_births(rng: random.Random) -> list[date]:
    births = []
    for age in range(18, 95):
        year = FY + 1 - age  # 年度末年齢 = age for births 2 April (year-1) … 1 April (year)
        births += [date(year, 4, 1), date(year - 1, 4, 2), date(year, 4, 2)]
        if year % 4 == 0:
            births.append(date(year, 2, 29))
    births += [date(rng.randint(1925, 2007), rng.randint(1, 12), rng.randint(1, 28))
               for _ in range(150)]  # fmt: skip
    return births


def _populate(seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    versions, categories, exams = [], [], []
    atena_nos = []
    for i, birth in enumerate(_boundary_births(rng)):
        atena = f"1{i:09d}"
        atena_nos.append(atena)
        sex = rng.choice((1, 2, 2))
        roll = rng.random()
        if roll < 0.05:  # died or moved out on the base date itself, or just before
            day = rng.choice((BASE, BASE - timedelta(days=1), BASE + timedelta(days=1)))
            versions.append(_version(atena, sex, birth, "resident", valid_to=day))
            versions.append(_version(atena, sex, birth, rng.choice(("deceased", "moved_out")),
                                     kind="death", valid_from=day))  # fmt: skip
        elif roll < 0.08:
            versions.append(_version(atena, sex, birth, "non_resident"))
        elif roll < 0.20:  # moved in: before the previous FY, within it, on the base date, later
            day = rng.choice((date(2024, 3, 31), date(2024, 4, 1), date(2025, 1, 15), BASE,
                              date(2025, 6, 1)))  # fmt: skip
            versions.append(_version(atena, sex, birth, "resident", kind="move_in",
                                     valid_from=day))  # fmt: skip
        else:
            versions.append(_version(atena, sex, birth, "resident"))
        for fy in (2024, 2025):
            if rng.random() < 0.9:
                categories.append(FiscalCategory(
                    municipality_code=MC, fiscal_year=fy, atena_no=atena, feed_id=1,
                    insurance_category=rng.choice(("national_health_insurance", "late_elderly",
                                                   "other")),
                    tax_category=rng.choice(("taxed", "taxed", "exempt", "public_assistance")),
                ))  # fmt: skip
        for _ in range(rng.choice((0, 0, 1, 2, 4))):
            method = rng.choice(list(PROGRAMME_OF))
            fy = rng.choice((2019, 2020, 2021, 2022, 2023, 2024, 2024, 2025))
            exam_date = date(fy, rng.randint(4, 12), rng.randint(1, 28))
            due = None
            if method == "hpv_primary" and rng.random() < 0.5:
                due = rng.choice((date(fy + 1, 4, 1), date(2025, 4, 1), date(2026, 3, 31),
                                  date(2026, 4, 1)))  # fmt: skip
            smoking = rng.choice((None, 599, 600, 800, 0)) if method in (
                "chest_xray", "sputum_cytology") else None  # fmt: skip
            exams.append(Exam(
                municipality_code=MC, atena_no=atena, fiscal_year=fy, programme=PROGRAMME_OF[method],
                method=method, exam_date=exam_date, setting="individual",
                smoking_index=smoking, follow_up_due=due,
            ))  # fmt: skip
    ResidentVersion.objects.bulk_create(versions)
    FiscalCategory.objects.bulk_create(categories)
    Exam.objects.bulk_create(exams)
    return atena_nos


def _expected(atena_no: str, base: date) -> dict[str, tuple[bool, str]]:
    catalogue = programs.catalogue(FY)
    facts = person_facts(atena_no, FY, base)
    history, _smoking = history_of(atena_no, FY, base)
    if facts is None:
        facts = PersonFacts(sex=1, birth_date=date(1950, 1, 1), status=None)
        history = History()
    out = {}
    for method in catalogue.methods:
        if not method.rostered:
            continue
        d = decide(catalogue, method, facts, history, base)
        if d.reason not in roster_build.OUT_OF_POPULATION:
            out[method.code] = (d.eligible, d.reason)
    return out


def _stored(atena_no: str) -> dict[str, tuple[bool, str]]:
    return {
        m: (e, r)
        for m, e, r in RosterEntry.objects.filter(fiscal_year=FY, atena_no=atena_no).values_list(
            "method", "computed_eligible", "computed_reason"
        )
    }


@pytest.mark.django_db
def test_sql_build_decides_every_person_like_the_reference_rules():
    atena_nos = _populate()
    report = roster_build.build_roster(FY)
    assert report.inserted == RosterEntry.objects.count() > 500
    mismatches = []
    for atena in atena_nos:
        expected, stored = _expected(atena, BASE), _stored(atena)
        if expected != stored:
            mismatches.append((atena, expected, stored))
    assert mismatches == []
    # Exemptions (both tax periods) and coupons agree with the reference functions too.
    catalogue = programs.catalogue(FY)
    rows = RosterEntry.objects.values_list(
        "atena_no", "method", "exemption", "exemption_early", "coupon_no"
    )
    seen = set()
    for atena, code, ex, ex_early, coupon_no in rows:
        facts = person_facts(atena, FY, BASE)
        method = catalogue.method(code)
        cohort = coupon_cohort(method, facts.birth_date, facts.sex, FY)
        assert ex == exemption(catalogue, facts, has_coupon=cohort, early=False)
        assert ex_early == exemption(catalogue, facts, has_coupon=cohort, early=True)
        assert bool(coupon_no) == cohort
        seen |= {ex, ex_early}
    assert {"", "public_assistance", "coupon", "tax_exempt"} <= seen
    numbers = [c for *_, c in rows if c]
    assert len(numbers) == len(set(numbers))
    reasons = set(RosterEntry.objects.values_list("computed_reason", flat=True))
    # The population really exercises the rules (not a vacuous comparison).
    assert {"annual", "cohort", "catch_up", "screened_last_year", "milestone",
            "coupon", "first_hpv", "within_interval", "never_tested", "tested_before",
            "follow_up", "move_in"} <= reasons  # fmt: skip


@pytest.mark.django_db
def test_rebuild_is_idempotent_and_keeps_overrides_exclusions_and_coupons():
    atena_nos = _populate(seed=11)
    roster_build.build_roster(FY)
    entry = RosterEntry.objects.filter(fiscal_year=FY, method="gastric_xray").first()
    entry.override_eligible = False
    entry.eligible = False
    entry.reason = "override"
    entry.override_note = "胃切除後"
    entry.save()
    # Written directly here; actions.override also moves the entry in the stored 対象者数
    # table, which a rebuild recounts only for the methods it changes.
    from kenshin.screening import lists

    lists.refresh_counts(FY, methods=["gastric_xray"])
    Exclusion.objects.create(
        municipality_code=MC, fiscal_year=FY, programme="lung", atena_no=atena_nos[5],
        reason="workplace", recorded_by="t", recorded_at=clock.now(),
    )  # fmt: skip
    coupons = dict(RosterEntry.objects.exclude(coupon_no="").values_list("atena_no", "coupon_no"))
    assert coupons and all(c.startswith(("2025B", "2025C")) for c in coupons.values())
    again = roster_build.build_roster(FY)
    lung_rows = RosterEntry.objects.filter(atena_no=atena_nos[5], programme="lung").count()
    assert again.inserted == 0 and again.left == 0
    assert again.changed == lung_rows  # only the 受診不要 just recorded
    entry.refresh_from_db()
    assert (entry.eligible, entry.reason, entry.override_eligible) == (False, "override", False)
    assert (
        dict(RosterEntry.objects.exclude(coupon_no="").values_list("atena_no", "coupon_no"))
        == coupons
    )
    third = roster_build.build_roster(FY)
    assert (third.inserted, third.changed, third.left) == (0, 0, 0)
    _assert_counts_match_a_recount()


@pytest.mark.django_db
def test_top_up_marks_the_dead_and_adds_the_newcomers():
    atena_nos = _populate(seed=3)
    roster_build.build_roster(FY)
    alive = RosterEntry.objects.filter(computed_reason="annual").values_list("atena_no", flat=True)
    gone = alive.first()
    rows = RosterEntry.objects.filter(fiscal_year=FY, atena_no=gone).count()
    ResidentVersion.objects.filter(atena_no=gone, valid_to__isnull=True).update(
        valid_to=date(2025, 5, 10)
    )
    current = ResidentVersion.objects.filter(atena_no=gone).order_by("-valid_from").first()
    died = _version(gone, current.sex, current.birth_date, "deceased", kind="death",
                    valid_from=date(2025, 5, 10))  # fmt: skip
    newcomer = _version("1999999999", 2, date(1980, 7, 7), "resident", kind="move_in",
                        valid_from=date(2025, 5, 20))  # fmt: skip
    ResidentVersion.objects.bulk_create([died, newcomer])
    top_up = date(2025, 6, 1)
    report = roster_build.build_roster(FY, as_of=top_up)
    assert report.left >= rows
    assert set(
        RosterEntry.objects.filter(atena_no=gone).values_list("eligible", "computed_reason")
    ) == {(False, "deceased")}
    assert RosterEntry.objects.filter(atena_no="1999999999", eligible=True).exists()
    # Every row still agrees with the reference rules on the new base date: people in the
    # population as rows, people who left as kept rows with the reason they left.
    catalogue = programs.catalogue(FY)
    for atena in [*atena_nos, "1999999999"]:
        stored = _stored(atena)
        expected = _expected(atena, top_up)
        assert {
            m: v for m, v in stored.items() if v[1] not in roster_build.OUT_OF_POPULATION
        } == expected
        facts = person_facts(atena, FY, top_up)
        for method, (eligible, reason) in stored.items():
            if reason in roster_build.OUT_OF_POPULATION:
                d = decide(
                    catalogue,
                    catalogue.method(method),
                    facts,
                    history_of(atena, FY, top_up)[0],
                    top_up,
                )
                assert (eligible, reason) == (False, d.reason)
    # The top-up recounted only the methods it changed; the stored table equals a recount.
    _assert_counts_match_a_recount()


def _assert_counts_match_a_recount() -> None:
    from kenshin.screening import lists

    def table(cells):
        return sorted(
            (c.method, c.sex, c.band, c.population, c.eligible, c.excluded)
            for c in cells
            if c.population or c.eligible or c.excluded
        )

    stored = table(lists.stored_counts(FY))
    assert stored and stored == table(lists.refresh_counts(FY))


@pytest.mark.django_db
def test_a_base_date_far_from_the_fiscal_year_is_refused_before_anything_is_written():
    _populate(seed=5)
    with pytest.raises(roster_build.RosterBuildError, match="2023-04-01 は2025年度"):
        roster_build.build_roster(FY, as_of=date(2023, 4, 1))
    assert not RosterEntry.objects.exists()
    # February before the year (early invitations) and the year's last day are accepted.
    assert roster_build.build_roster(FY, as_of=date(2025, 2, 1)).inserted > 0
    assert roster_build.build_roster(FY, as_of=date(2026, 3, 31)).build_id


@pytest.mark.django_db
def test_an_override_gives_way_when_the_person_dies_and_counts_follow():
    from kenshin.screening import actions, lists

    atena_nos = _populate(seed=13)
    roster_build.build_roster(FY)
    entry = RosterEntry.objects.filter(method="chest_xray", computed_reason="annual").first()
    actions.override("tester", FY, "chest_xray", entry.atena_no, True, "主治医の依頼")
    ResidentVersion.objects.filter(atena_no=entry.atena_no, valid_to__isnull=True).update(
        valid_to=date(2025, 6, 1)
    )
    current = ResidentVersion.objects.filter(atena_no=entry.atena_no).first()
    ResidentVersion.objects.bulk_create([
        _version(entry.atena_no, current.sex, current.birth_date, "deceased", kind="death",
                 valid_from=date(2025, 6, 1)),
    ])  # fmt: skip
    roster_build.build_roster(FY, as_of=date(2025, 7, 1))
    entry.refresh_from_db()
    assert (entry.eligible, entry.reason, entry.computed_reason) == (False, "deceased", "deceased")
    # The kept row is not counted in the population any more; the stored table agrees with
    # a fresh count of the rows of people still in the population.
    cells = {(c.method, c.sex, c.band): c for c in lists.refresh_counts(FY)}
    stored = RosterEntry.objects.filter(method="chest_xray").exclude(
        computed_reason__in=roster_build.OUT_OF_POPULATION
    )
    assert sum(c.population for (m, _s, _b), c in cells.items() if m == "chest_xray") == (
        stored.count()
    )
    assert len(atena_nos) > 200


@pytest.mark.django_db
def test_a_rebuild_without_a_date_keeps_the_latest_base_date_and_never_goes_back():
    _populate(seed=17)
    roster_build.build_roster(FY, as_of=date(2025, 7, 1))
    again = roster_build.build_roster(FY)  # no date: the latest base date, not 1 April
    assert again.as_of == date(2025, 7, 1) and again.changed == 0
    with pytest.raises(roster_build.RosterBuildError, match="前回の対象者抽出の基準日 2025-07-01"):
        roster_build.build_roster(FY, as_of=date(2025, 4, 1))


@pytest.mark.django_db(transaction=True)
def test_a_failed_build_leaves_the_roster_as_it_was_and_its_record_unfinished(monkeypatch):
    from kenshin.screening.models import RosterBuild

    _populate(seed=19)
    first = roster_build.build_roster(FY)
    rows = sorted(RosterEntry.objects.values_list("method", "atena_no", "computed_reason"))

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(roster_build, "_number_coupons", broken)
    with pytest.raises(RuntimeError):
        roster_build.build_roster(FY, as_of=date(2025, 7, 1))
    assert sorted(RosterEntry.objects.values_list("method", "atena_no", "computed_reason")) == rows
    failed = RosterBuild.objects.exclude(pk=first.build_id).get()
    assert failed.finished_at is None and failed.as_of == date(2025, 7, 1)
    # The next build without a date starts again from the last finished one's base date.
    monkeypatch.undo()
    assert roster_build.build_roster(FY).as_of == BASE


@pytest.mark.django_db
def test_the_roster_is_stored_by_its_key_alone():
    """The roster's speed rests on being keyed by (団体コード, 年度, 検査方法, 宛名番号) with no
    surrogate id — on SQLite a WITHOUT ROWID table. A later migration that rebuilds the table
    from the model (any AlterField on SQLite) would quietly drop that form; this test says so.
    """
    from django.db import connection

    table = RosterEntry._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT sql FROM sqlite_master WHERE name = %s", [table])
            ddl = cursor.fetchone()[0]
            assert ddl.rstrip().endswith("WITHOUT ROWID"), ddl
            assert '"id"' not in ddl
        else:
            cursor.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)",
                [table],
            )
            # The same columns, the year first (migration 0009: the key sorts faster so).
            assert [r[0] for r in cursor.fetchall()] == [
                "fiscal_year", "method", "atena_no", "municipality_code",
            ]  # fmt: skip
            cursor.execute("SELECT count(*) FROM pg_indexes WHERE tablename = %s", [table])
            assert cursor.fetchone()[0] == 1  # the key is the only index
            # Partitioned by 年度 (migration 0009), so that a first build keys its rows once.
            cursor.execute(
                "SELECT pg_get_partkeydef(c.oid) FROM pg_class c WHERE c.oid = %s::regclass",
                [table],
            )
            assert cursor.fetchone()[0] == "LIST (fiscal_year)"


def _partitions() -> dict[str, int]:
    """PostgreSQL: the roster's attached partitions → their rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [RosterEntry._meta.db_table],
        )
        names = sorted(r[0] for r in cursor.fetchall())
        counts = {}
        for name in names:
            cursor.execute(f"SELECT count(*) FROM {name}")
            counts[name] = cursor.fetchone()[0]
    return counts


@pytest.mark.django_db(transaction=True)
def test_a_first_build_on_postgresql_fills_and_keys_a_partition_of_its_year(monkeypatch):
    """The first build of a year writes into a new partition and keys it afterwards; a failed
    one leaves no partition behind, and a year that has its partition already (emptied since)
    is built through the partitioned table, with the same rows."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("partitions are PostgreSQL's (SQLite keeps one WITHOUT ROWID table)")
    table = RosterEntry._meta.db_table
    with connection.cursor() as cursor:  # an earlier test's committed build may have made it
        cursor.execute(f"DROP TABLE IF EXISTS {table}_fy{FY}")
    _populate(seed=23)

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(roster_build, "_number_coupons", broken)
        with pytest.raises(RuntimeError):
            roster_build.build_roster(FY)
    assert _partitions() == {f"{table}_default": 0}

    report = roster_build.build_roster(FY)
    rows = sorted(RosterEntry.objects.values_list("method", "atena_no", "computed_reason"))
    assert _partitions() == {f"{table}_default": 0, f"{table}_fy{FY}": report.inserted}
    assert report.inserted == len(rows) > 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
            [f"{table}_fy{FY}"],
        )
        assert cursor.fetchone()[0] == 1

    RosterEntry.objects.filter(fiscal_year=FY).delete()
    again = roster_build.build_roster(FY)
    assert again.inserted == len(rows)
    assert sorted(RosterEntry.objects.values_list("method", "atena_no", "computed_reason")) == rows
    assert _partitions()[f"{table}_fy{FY}"] == len(rows)


@pytest.mark.django_db
def test_a_first_build_reports_and_counts_what_a_recount_finds():
    """A first build takes its row total from its own INSERTs (no count of the table); the
    report and the stored 対象者数 table must still equal a fresh count of the rows."""
    from kenshin.screening import lists
    from kenshin.screening.models import RosterCount

    atena_nos = _populate()
    for atena_no in atena_nos[::5]:  # some of them 40 and over: in the lung roster
        Exclusion.objects.create(
            municipality_code=MC, fiscal_year=FY, programme="lung", atena_no=atena_no,
            reason="workplace", recorded_by="t", recorded_at=clock.now(),
        )  # fmt: skip
    report = roster_build.build_roster(FY)
    assert report.inserted == RosterEntry.objects.filter(fiscal_year=FY).count()
    assert report.changed == 0 and report.unchanged == 0
    stored = sorted(
        RosterCount.objects.filter(fiscal_year=FY).values_list(
            "method", "sex", "band", "population", "eligible", "excluded"
        )
    )
    recount = sorted(
        (c.method, c.sex, c.band, c.population, c.eligible, c.excluded)
        for c in lists.refresh_counts(FY)
    )
    assert stored == recount and sum(c[3] for c in stored) == report.inserted
    assert sum(c[5] for c in stored) > 0  # 受診不要 counted in the first build's own counts


@pytest.mark.django_db
def test_a_first_build_as_a_role_that_only_writes_rows_goes_through_the_parent():
    """docs/security.md runs the app as a role that may read and write rows but not make
    tables: a first build then writes through the partitioned table (no partition of its own)
    and still succeeds, with the same rows."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("roles and partitions are PostgreSQL's")
    table = RosterEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}_fy{FY}")
    _populate(seed=29)
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        cursor.execute("CREATE ROLE kenshin_test_rows_only NOLOGIN")
        cursor.execute("GRANT USAGE ON SCHEMA public TO kenshin_test_rows_only")
        cursor.execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
            "TO kenshin_test_rows_only"
        )
        cursor.execute(
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO kenshin_test_rows_only"
        )
        cursor.execute("SET LOCAL ROLE kenshin_test_rows_only")
    report = roster_build.build_roster(FY)
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
    assert report.inserted == RosterEntry.objects.filter(fiscal_year=FY).count() > 0
    parts = _partitions()
    assert f"{table}_fy{FY}" not in parts and parts[f"{table}_default"] == report.inserted
