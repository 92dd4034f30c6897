"""受診券番号: issuing numbers to people and finding the person behind a number.

A number is the fiscal year's last two digits, a serial of seven digits, and a check digit
(Luhn, as on payment cards): ``2600000017``. Why a check digit: paper 受診票 are keyed by hand,
and a slipped or swapped digit must be refused, not matched to someone else's voucher (the
Luhn digit catches every single-digit error and most swaps of neighbours).

Issuing many at once is one bulk insert; the letters that print them come later and call
:func:`issue_vouchers` (the demo city issues some so that manual entry can be tried).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from kenshin.core import audit, clock
from kenshin.core.text import normalize_digits
from kenshin.screening.models import Voucher

SERIAL_DIGITS = 7


def luhn_digit(digits: str) -> str:
    """The check digit that makes ``digits`` + it pass the Luhn test."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # doubled: these will sit at odd positions once the digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def is_well_formed(number: str) -> bool:
    """Ten digits whose last is the Luhn check digit of the rest."""
    return (
        len(number) == 3 + SERIAL_DIGITS
        and number.isascii()  # "²" is a digit to str.isdigit
        and number.isdigit()
        and (luhn_digit(number[:-1]) == number[-1])
    )


def voucher_no(fiscal_year: int, serial: int) -> str:
    body = f"{fiscal_year % 100:02d}{serial:0{SERIAL_DIGITS}d}"
    return body + luhn_digit(body)


def issue_vouchers(
    actor: Any, fiscal_year: int, atena_nos: Iterable[str], *, programme: str = ""
) -> dict[str, str]:
    """Issue one new 受診券番号 to each person (for one programme, or all when blank)."""
    mc = settings.MUNICIPALITY_CODE
    wanted = list(dict.fromkeys(atena_nos))
    with transaction.atomic():
        # The serial goes on from the year's highest; the unique constraint refuses a clash
        # with a concurrent issue (one of the two transactions fails and can be run again).
        last = Voucher.objects.filter(municipality_code=mc, fiscal_year=fiscal_year).aggregate(
            m=Max("voucher_no")
        )["m"]
        serial = int(last[2:-1]) if last else 0
        issued_on, by = clock.today(), audit.actor_of(actor).username
        out: dict[str, str] = {}
        rows = []
        for atena_no in wanted:
            serial += 1
            number = voucher_no(fiscal_year, serial)
            out[atena_no] = number
            rows.append(Voucher(municipality_code=mc, fiscal_year=fiscal_year, voucher_no=number,
                                atena_no=atena_no, programme=programme, issued_on=issued_on,
                                issued_by=by))  # fmt: skip
        Voucher.objects.bulk_create(rows, batch_size=5000)
        if rows:
            audit.record(
                audit.Event.CREATE, actor, audit.Subject("voucher", str(fiscal_year)),
                function="screening.vouchers", fiscal_year=fiscal_year, programme=programme,
                rows=len(rows),
            )  # fmt: skip
    return out


def find_voucher(number: str) -> Voucher | None:
    """The voucher with this number (full-width digits and spaces forgiven), or None."""
    number = normalize_digits(number or "").replace(" ", "").replace("-", "")
    if not is_well_formed(number):
        return None
    return Voucher.objects.filter(
        municipality_code=settings.MUNICIPALITY_CODE, voucher_no=number
    ).first()


def vouchers_of(atena_no: str) -> list[Voucher]:
    """Every voucher issued to a person, newest year first (for the ledger)."""
    return list(
        Voucher.objects.filter(
            municipality_code=settings.MUNICIPALITY_CODE, atena_no=atena_no
        ).order_by("-fiscal_year", "voucher_no")
    )
