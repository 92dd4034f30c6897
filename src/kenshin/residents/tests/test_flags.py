"""閲覧注意の住民 (ResidentFlag): who is flagged on which day, setting a flag (audited), and the
notice on the person page (LOG-07)."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from django.urls import reverse

from kenshin.audit.models import AuditEvent
from kenshin.core import audit
from kenshin.residents import services
from kenshin.residents.actions import import_feed_file
from kenshin.residents.models import ResidentFlag
from kenshin.residents.tests.conftest import person

pytestmark = pytest.mark.django_db


def flag(atena_no: str, kind: str, start: date, end: date | None = None) -> None:
    from django.conf import settings

    ResidentFlag.objects.create(
        municipality_code=settings.MUNICIPALITY_CODE,
        atena_no=atena_no,
        kind=kind,
        valid_from=start,
        valid_to=end,
    )


@pytest.fixture
def flags():
    flag("1000000001", "dv", date(2026, 4, 1), date(2027, 3, 31))
    flag("1000000002", "vip", date(2026, 12, 1))
    flag("1000000003", "dv", date(2025, 4, 1), date(2026, 3, 31))


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 3, 31), {"1000000003"}),  # last day of a measure still counts
        (date(2026, 4, 1), {"1000000001"}),
        (date(2026, 11, 30), {"1000000001"}),
        (date(2026, 12, 1), {"1000000001", "1000000002"}),
        (date(2027, 4, 1), {"1000000002"}),
    ],
)
def test_flagged_atena_nos_on_a_day(flags, day, expected):
    assert services.flagged_atena_nos(None, day) == expected


def test_flagged_atena_nos_by_kind(flags):
    assert services.flagged_atena_nos(["vip"], date(2027, 1, 1)) == {"1000000002"}
    assert services.flagged_atena_nos(["dv"], date(2027, 1, 1)) == {"1000000001"}


def test_flags_of_defaults_to_today_in_japan(flags):
    # The residents tests stand on 2026-11-26 (conftest).
    assert [f.kind_label for f in services.flags_of("1000000001")] == ["DV等支援措置"]
    assert services.flags_of("1000000002") == []
    assert services.flags_of("1000000003") == []


def test_flag_periods_overlapping_a_range(flags):
    found = services.flag_periods(["dv"], date(2026, 3, 1), date(2026, 4, 30))
    assert [(f.atena_no, f.valid_from) for f in found] == [
        ("1000000001", date(2026, 4, 1)),
        ("1000000003", date(2025, 4, 1)),
    ]


def test_set_flag_writes_the_flag_and_an_audit_event_without_its_kind(make_user):
    kacho = make_user("kacho1", roles=["kacho"])
    info = services.set_flag(kacho, "1000000009", "dv", date(2026, 11, 1), "支援措置 第12号")
    assert info.kind == "dv" and services.flags_of("1000000009")
    (event,) = AuditEvent.objects.filter(function="residents.flag")
    assert event.event == audit.Event.CREATE
    assert event.subject_ref == "1000000009" and event.username == "kacho1"
    assert json.loads(event.detail) == {"flag_id": info.flag_id}
    assert "dv" not in event.detail and "支援措置" not in event.detail


def test_set_flag_twice_updates_the_same_period(make_user):
    kacho = make_user("kacho1", roles=["kacho"])
    services.set_flag(kacho, "1000000009", "vip", date(2026, 11, 1))
    services.set_flag(kacho, "1000000009", "vip", date(2026, 11, 1), valid_to=date(2026, 12, 31))
    assert ResidentFlag.objects.count() == 1
    events = list(AuditEvent.objects.filter(function="residents.flag").order_by("seq"))
    assert [e.event for e in events] == [audit.Event.CREATE, audit.Event.UPDATE]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "dv", date(2026, 1, 1)), "宛名番号を入力してください"),
        (("1000000009", "celebrity", date(2026, 1, 1)), "種類が正しくありません"),
    ],
)
def test_set_flag_refuses_bad_input(make_user, args, message):
    with pytest.raises(ValueError, match=message):
        services.set_flag(make_user("kacho1", roles=["kacho"]), *args)
    assert not ResidentFlag.objects.exists()


def test_household_of_lists_current_members(feed_file):
    rows = [
        person(宛名番号="1000000001", 世帯番号="2000000001"),
        person(宛名番号="1000000002", 世帯番号="2000000001", 続柄="妻"),
        person(宛名番号="1000000003", 世帯番号="2000000009"),
    ]
    assert import_feed_file(feed_file(rows), actor="test").ok
    assert services.household_of("1000000002") == {"1000000001", "1000000002"}
    assert services.households_of(["1000000001", "1000000003", "9999999999"]) == {
        "1000000001": {"1000000001", "1000000002"},
        "1000000003": {"1000000003"},
    }


def test_person_page_shows_a_notice_for_a_flagged_person(make_user, signed_in, feed_file):
    rows = [person(宛名番号="1000000001"), person(宛名番号="1000000002", 世帯番号="2000000002")]
    assert import_feed_file(feed_file(rows), actor="test").ok
    flag("1000000001", "dv", date(2026, 4, 1))
    client = signed_in(make_user("hokenshi1", roles=["hokenshi"]))
    for atena_no, shown in (("1000000001", True), ("1000000002", False)):
        html = client.post(
            reverse("residents:search"), {"purpose": "inquiry", "atena_no": atena_no}
        ).content.decode()
        link = re.search(r'href="(/residents/view/[^"]+)"', html).group(1)
        page = client.get(link).content.decode()
        assert ("閲覧注意：DV等支援措置" in page) is shown


def test_flag_screen_is_for_the_kacho_only(make_user, signed_in):
    url = reverse("residents:flags")
    assert signed_in(make_user("hokenshi1", roles=["hokenshi"])).get(url).status_code == 403
    kacho = signed_in(make_user("kacho1", roles=["kacho"]))
    assert kacho.get(url).status_code == 200
    response = kacho.post(
        url, {"atena_no": "1000000005", "kind": "vip", "valid_from": "2026-11-01", "note": ""}
    )
    assert response.status_code == 302
    assert services.flagged_atena_nos(["vip"]) == {"1000000005"}
