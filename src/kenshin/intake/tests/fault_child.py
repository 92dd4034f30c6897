"""The process the fault-injection test kills: set up a city and a staged batch, commit it,
check what the database holds, undo a finished commit. One step per run, JSON on stdout.

Run as ``python -m kenshin.intake.tests.fault_child STEP [BATCH]`` with the database chosen by
the environment (KENSHIN_VAR_DIR for SQLite, DATABASE_URL for PostgreSQL), as the test does.
"""

from __future__ import annotations

import io
import json
import sys
from datetime import date
from pathlib import Path

ACTOR = "fault-injection"


def _setup(workdir: Path) -> dict:
    from django.core.management import call_command

    for alias in ("default", "linkage", "jobs"):
        call_command("migrate", database=alias, verbosity=0)
    from kenshin.core import audit, clock
    from kenshin.core.fiscal import fy_end_age
    from kenshin.demo.city import generate_city
    from kenshin.intake import actions
    from kenshin.intake.tests.helpers import csv_bytes, exam_row
    from kenshin.linkage import services as linkage
    from kenshin.programs import services as programs
    from kenshin.residents import services as residents
    from kenshin.screening import services as screening

    linkage.ensure_embedded_setup(actor="fault")
    with clock.frozen(date(2025, 12, 1)):
        paths = generate_city(workdir / "feed", residents=6_000, seed=11,
                              base_date=date(2025, 4, 1), end_date=date(2025, 4, 1))  # fmt: skip
        reports = residents.import_feed_files(paths, stdout=None, actor="fault")
        assert all(r.ok for r in reports), [str(e) for r in reports for e in r.errors][:5]
        programs.load_shipped()
        people = [p for p in residents.register_as_of(date(2025, 4, 1))
                  if fy_end_age(p["birth_date"], 2025) >= 40]  # fmt: skip
        issued = screening.issue_vouchers(audit.Actor(None, "fault"), 2025,
                                          [p["atena_no"] for p in people])  # fmt: skip
        rows = [
            exam_row(
                voucher_no=issued[p["atena_no"]],
                birth_date=p["birth_date"].isoformat(),
                sex=str(p["sex"]),
                method="fecal_occult_blood",
                day1="negative",
                day2="positive" if i % 10 == 0 else "negative",
                exam_date=f"2025-{6 + i % 5:02d}-{1 + i % 28:02d}",
            )
            for i, p in enumerate(people)
        ]
        data = csv_bytes(rows, encoding="cp932")
        (workdir / "results.csv").write_bytes(data)
        batch = actions.receive_file(ACTOR, io.BytesIO(data), "results.csv", fiscal_year=2025)
        batch = actions.stage_batch(ACTOR, batch.pk)
    return {"batch": batch.pk, "new": batch.counts["new"], "seiken": len(rows[::10])}


def _commit(batch_id: int) -> dict:
    import time

    from kenshin.core import clock
    from kenshin.intake import actions, pipeline
    from kenshin.intake.models import CommitMode, ImportBatch

    with clock.frozen(date(2025, 12, 1)):
        # Warm up what a first call loads (catalogue, vocabularies, the connection), so that
        # START marks the commit itself and its measured length is the window to kill in.
        pipeline.build_context(ImportBatch.objects.get(pk=batch_id).fiscal_year)
        print("START", flush=True)
        started = time.monotonic()
        counts = actions.commit_batch(ACTOR, batch_id, CommitMode.ALL)
    return {"written": counts.written, "seconds": time.monotonic() - started}


def _check(batch_id: int) -> dict:
    from kenshin.intake.models import ImportBatch
    from kenshin.screening.models import Exam, FollowUpCase

    return {
        "exams": Exam.objects.filter(recorded_by=ACTOR).count(),
        "cases": FollowUpCase.objects.filter(exam__recorded_by=ACTOR).count(),
        "state": ImportBatch.objects.get(pk=batch_id).state,
    }


def _reset(batch_id: int) -> dict:
    """Undo a commit that finished before the kill, so the next run starts from the same state."""
    from django.db import transaction

    from kenshin.intake.models import BatchState, ImportBatch
    from kenshin.screening.models import Exam, FollowUpCase

    with transaction.atomic():
        FollowUpCase.objects.filter(exam__recorded_by=ACTOR).delete()
        Exam.objects.filter(recorded_by=ACTOR).delete()
        ImportBatch.objects.filter(pk=batch_id).update(state=BatchState.STAGED, committed_by="",
                                                       committed_at=None)  # fmt: skip
    return _check(batch_id)


def _upload_again(workdir: Path) -> dict:
    from kenshin.core import clock
    from kenshin.intake import actions

    with clock.frozen(date(2025, 12, 1)):
        data = (workdir / "results.csv").read_bytes()
        batch = actions.receive_file(ACTOR, io.BytesIO(data), "results.csv", fiscal_year=2025)
        same = actions.receive_file(ACTOR, io.BytesIO(data.replace(b"\r\n", b"\n")),
                                    "results-lf.csv", fiscal_year=2025)  # fmt: skip
        same = actions.stage_batch(ACTOR, same.pk)
    return {"state": batch.state, "relf_new": same.counts["new"],
            "relf_unchanged": same.counts["unchanged"]}  # fmt: skip


def main() -> None:
    import django

    django.setup()
    step, arg = sys.argv[1], sys.argv[2]
    if step == "setup":
        out = _setup(Path(arg))
    elif step == "commit":
        out = _commit(int(arg))
    elif step == "check":
        out = _check(int(arg))
    elif step == "reset":
        out = _reset(int(arg))
    else:
        out = _upload_again(Path(arg))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
