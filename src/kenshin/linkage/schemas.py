"""The JSON shapes of the 番号連携サーバ's HTTP API (api.py), one per contract dataclass.

Why separate pydantic schemas instead of exposing the contract dataclasses directly: the wire
format is a published interface (OpenAPI 3.1) that must carry limits (lengths, ranges) a
business system can read before it calls, while the dataclasses stay plain Python for the
in-process adapter. ``to_*`` helpers convert both ways so http_client.py and api.py agree.

Lengths follow the model columns; a 個人番号 field accepts any spelling up to 40 characters
(full-width digits, hyphens, spaces) because normalising it is the server's job
(mynumber.normalize inside the one code path), and a wrong value must be refused there with
the same Japanese message as in-process.
"""

from __future__ import annotations

from datetime import date

from ninja import Schema
from pydantic import Field

from kenshin.linkage import contract

MY_NUMBER_MAX = 40
BATCH_MAX = 10_000  # one register_many call (one transaction); a feed sends more in several


class AtenaInSchema(Schema):
    atena_no: str = Field(min_length=1, max_length=15, description="業務システムの宛名番号")
    name: str = Field(min_length=1, max_length=100, description="漢字氏名")
    name_kana: str = Field(min_length=1, max_length=100, description="カナ氏名")
    birth_date: date = Field(description="生年月日")
    sex: int = Field(ge=1, le=9, description="性別（住基コード: 1 男, 2 女）")
    address: str = Field(min_length=1, max_length=200, description="住所")
    my_number: str | None = Field(
        default=None, max_length=MY_NUMBER_MAX, description="個人番号（任意。応答では返しません）"
    )

    def to_contract(self) -> contract.AtenaIn:
        return contract.AtenaIn(**self.model_dump())


class RegisterManyIn(Schema):
    atenas: list[AtenaInSchema] = Field(min_length=1, max_length=BATCH_MAX)


class MyNumberQuery(Schema):
    my_number: str = Field(min_length=1, max_length=MY_NUMBER_MAX, description="個人番号")


class AtenaQuery(Schema):
    atena_no: str = Field(min_length=1, max_length=15, description="宛名番号")
    system_code: str = Field(
        default="", max_length=32, description="宛名番号のシステム（省略時は呼出し元）"
    )


class UnifiedQuery(Schema):
    unified_atena_no: str = Field(min_length=1, max_length=15, description="団体内統合宛名番号")


class RevealQuery(UnifiedQuery):
    purpose: str = Field(min_length=1, max_length=200, description="表示の目的")


class MergesQuery(Schema):
    unified_atena_no: str = Field(default="", max_length=15)


class MergeRequestIn(Schema):
    survivor: str = Field(min_length=1, max_length=15, description="残す統合宛名番号")
    absorbed: str = Field(min_length=1, max_length=15, description="統合される統合宛名番号")
    reason: str = Field(min_length=1, max_length=200, description="理由")


class UnmergeRequestIn(Schema):
    merge_id: int = Field(ge=1, description="取り消す統合の申請番号")
    reason: str = Field(min_length=1, max_length=200, description="理由")


class MergeDecisionIn(Schema):
    request_id: int = Field(ge=1, description="申請番号")
    approve: bool = Field(description="true: 承認して実施, false: 却下")


# ---------------------------------------------------------------- responses


class RegistrationOut(Schema):
    atena_no: str
    unified_atena_no: str
    outcome: str
    duplicate_suspected: bool = False


class UnifiedOut(Schema):
    unified_atena_no: str | None


class AtenaRefOut(Schema):
    system_code: str
    atena_no: str


class PersonOut(Schema):
    unified_atena_no: str
    merged_into: str | None
    has_my_number: bool
    atenas: list[AtenaRefOut]


class MaskedOut(Schema):
    masked: str | None = Field(description="**** **** 3214 の形。個人番号が無ければ null")


class RevealedOut(Schema):
    my_number: str | None


class CandidateOut(Schema):
    id: int
    unified_a: str
    unified_b: str
    basis: str


class MergeOut(Schema):
    id: int
    kind: str
    survivor: str
    absorbed: str
    status: str
    requested_by: str
    decided_by: str
    reason: str


class ErrorOut(Schema):
    code: str = Field(description="refused / invalid / not_found / conflict / error")
    message: str = Field(description="日本語のメッセージ（個人番号は含みません）")


# ---------------------------------------------------------------- JSON → contract (client side)


def registration(data: dict) -> contract.Registration:
    return contract.Registration(**data)


def person(data: dict) -> contract.PersonView:
    return contract.PersonView(
        unified_atena_no=data["unified_atena_no"],
        merged_into=data["merged_into"],
        has_my_number=data["has_my_number"],
        atenas=[contract.AtenaRef(**a) for a in data["atenas"]],
    )


def candidate(data: dict) -> contract.CandidateView:
    return contract.CandidateView(**data)


def merge(data: dict) -> contract.MergeView:
    return contract.MergeView(**data)


def atena_json(atena: contract.AtenaIn) -> dict:
    """A contract AtenaIn as the request body item (the date as ISO 8601)."""
    return {
        "atena_no": atena.atena_no,
        "name": atena.name,
        "name_kana": atena.name_kana,
        "birth_date": atena.birth_date.isoformat(),
        "sex": atena.sex,
        "address": atena.address,
        "my_number": atena.my_number,
    }
