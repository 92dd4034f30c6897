"""Synthetic 個人番号 and direct vault rows for the vault's tests (rotation, dump).

Why direct rows and not the client: these tests are about storage (what the bytes on disk
hold, what rotation does to them), and need thousands of rows fast. The numbers are random
11 digits with the 総務省令 check digit: valid-looking, never anyone's.
"""

from __future__ import annotations

import random

from django.utils import timezone

from kenshin.core.mynumber import check_digit
from kenshin.linkage import crypto
from kenshin.linkage.models import MyNumber, Person


def synthetic_numbers(n: int, seed: int = 4) -> list[str]:
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < n:
        d11 = f"{rng.randrange(10**11):011d}"
        seen.add(d11 + str(check_digit(d11)))
    return sorted(seen)


def store(numbers: list[str], *, first_id: int = 1, key_id: int | None = None) -> list[int]:
    """One Person and one MyNumber per number, ids from ``first_id``; returns the person ids."""
    ring = crypto.keyring()
    key_id = ring.active_key_id if key_id is None else key_id
    now = timezone.now()
    ids = list(range(first_id, first_id + len(numbers)))
    Person.objects.bulk_create(
        [
            Person(
                id=pid, municipality_code="341002", unified_atena_no=f"{pid:015d}", created_at=now
            )
            for pid in ids
        ],
        batch_size=2000,
    )
    MyNumber.objects.bulk_create(
        [
            MyNumber(
                person_id=pid,
                key_id=key_id,
                ciphertext=ring.encrypt(number, pid, key_id),
                blind_index=ring.blind_index(number),
                updated_at=now,
            )
            for pid, number in zip(ids, numbers, strict=True)
        ],
        batch_size=2000,
    )
    return ids
