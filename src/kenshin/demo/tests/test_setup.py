"""`kenshin demo setup`: builds the city once, prints fresh demo passwords every time."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from kenshin.core import clock
from kenshin.residents import services

pytestmark = pytest.mark.django_db


def test_setup_refuses_outside_demo_mode(settings):
    settings.DEMO_MODE = False
    with pytest.raises(CommandError, match="KENSHIN_DEMO=1"):
        call_command("demo", "setup", "--residents", "50")


def test_setup_builds_the_city_once_and_prints_working_accounts(settings, tmp_path):
    settings.DEMO_MODE = True
    settings.VAR_DIR = tmp_path
    with clock.frozen(date(2026, 11, 26)):
        first = io.StringIO()
        call_command("demo", "setup", "--residents", "200", "--seed", "5", stdout=first)
        second = io.StringIO()
        call_command("demo", "setup", "--residents", "200", "--seed", "5", stdout=second)
    assert "住民 200 人のデモの街を生成しています" in first.getvalue()
    assert "デモの街は用意済みです" in second.getvalue()
    # FY2026 受診券 once, one for each person eligible for something, valid numbers.
    from kenshin.screening import services as screening
    from kenshin.screening import vouchers

    issued = screening.voucher_count(2026)
    assert issued == len(screening.eligible_atena_nos(2026)) > 0
    assert "令和8年度の受診券は発行済みです" in second.getvalue()
    assert vouchers.find_voucher(vouchers.voucher_no(2026, 1)) is not None
    assert sum(services.count_current().values()) > 200  # residents plus 異動 since 2023
    text = second.getvalue()
    for username in ("kanri", "kacho", "hokenshi", "jimu", "etsuran", "clinic"):
        password = re.search(rf"利用者ID {username}\s+パスワード (\S+)", text).group(1)
        assert get_user_model().objects.get(username=username).check_password(password)
        assert f"確認コード: kenshin demo totp {username}" in text


def test_demo_accounts_have_their_roles_a_clinic_and_a_working_second_factor(settings, tmp_path):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from kenshin.accounts import grants
    from kenshin.accounts.models import Institution

    settings.DEMO_MODE = True
    settings.VAR_DIR = tmp_path
    with clock.frozen(date(2026, 11, 26)):
        out = io.StringIO()
        call_command("demo", "setup", "--residents", "50", "--seed", "7", stdout=out)
        assert sorted(Institution.objects.values_list("code", flat=True)) == [
            "3410000011",
            "3410000029",
        ]
        user_model = get_user_model()
        admin = user_model.objects.get(username="kanri")
        assert not admin.is_superuser and "system_admin" in {
            g.role_code for g in grants.grants_of(admin)
        }
        clinic = user_model.objects.get(username="clinic")
        assert clinic.institution.code == "3410000011"
        assert {(g.scope_kind, g.scope_value) for g in grants.grants_of(clinic)} == {
            ("clinic", "3410000011")
        }
    code = io.StringIO()
    call_command("demo", "totp", "hokenshi", stdout=code)
    device = TOTPDevice.objects.get(user__username="hokenshi", confirmed=True)
    assert device.verify_token(code.getvalue().strip())


def test_totp_command_refuses_outside_demo_mode(settings):
    settings.DEMO_MODE = False
    with pytest.raises(CommandError, match="KENSHIN_DEMO=1"):
        call_command("demo", "totp", "hokenshi")


def test_totp_command_names_an_unknown_user(settings):
    settings.DEMO_MODE = True
    with pytest.raises(CommandError, match="nobody"):
        call_command("demo", "totp", "nobody")


def test_interrupted_setup_resumes(settings, tmp_path):
    """A run killed part-way leaves some files imported and no marker: the next run finishes."""
    from kenshin.demo.city import generate_city
    from kenshin.demo.management.commands.demo import BASE_DATE, END_DATE

    settings.DEMO_MODE = True
    settings.VAR_DIR = tmp_path
    with clock.frozen(date(2026, 11, 26)):
        paths = generate_city(
            tmp_path / "demo" / "feed-100-2", residents=100, seed=2, base_date=BASE_DATE,
            end_date=END_DATE,
        )  # fmt: skip
        services.import_feed_files(paths[:3], stdout=None, actor="interrupted")
        partial = sum(services.count_current().values())
        out = io.StringIO()
        call_command("demo", "setup", "--residents", "100", "--seed", "2", stdout=out)
    text = out.getvalue()
    assert text.count("取込済みのファイルです") == 3  # the three files taken in before the kill
    assert (tmp_path / "demo" / "feed-100-2" / ".imported").exists()
    assert sum(services.count_current().values()) > partial
