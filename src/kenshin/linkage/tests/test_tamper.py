"""Ciphertext moved between rows in the database (no key needed to do that) is caught at the
interface: the call fails with the contract's error and the access log records it (MN-04)."""

from __future__ import annotations

from datetime import date

import pytest

from kenshin.linkage import testing
from kenshin.linkage.clients import InProcessClient
from kenshin.linkage.contract import AtenaIn, LinkageError
from kenshin.linkage.models import LinkageEvent, MyNumber
from kenshin.linkage.tests.conftest import synthetic_my_number

pytestmark = pytest.mark.django_db(databases=["default", "linkage"])


def _atena(atena_no: str, number: str) -> AtenaIn:
    return AtenaIn(
        atena_no=atena_no, name="試験　一郎", name_kana="シケン　イチロウ",
        birth_date=date(1970, 1, 1), sex=1, address=f"広島県呉市試験町{atena_no}",
        my_number=number,
    )  # fmt: skip


def test_ciphertext_swapped_between_rows_is_refused_and_logged():
    client = InProcessClient(testing.provision(), "kenko_zoshin")
    a, b = client.register_many(
        [_atena("T1", synthetic_my_number()), _atena("T2", synthetic_my_number())], actor="t"
    )
    row_a = MyNumber.objects.get(person__unified_atena_no=a.unified_atena_no)
    row_b = MyNumber.objects.get(person__unified_atena_no=b.unified_atena_no)
    MyNumber.objects.filter(pk=row_a.pk).update(ciphertext=bytes(row_b.ciphertext))

    with pytest.raises(LinkageError, match="復号できませんでした") as caught:
        client.reveal_my_number(a.unified_atena_no, actor="t", purpose="inquiry")
    assert type(caught.value) is LinkageError
    last = LinkageEvent.objects.order_by("-id").first()
    assert (last.operation, last.result) == ("reveal_my_number", "error")
    assert last.detail == {"reason": "DecryptError"}
    # The other person's row is untouched and still answers.
    assert client.masked_my_number(b.unified_atena_no, actor="t").startswith("**** ****")
