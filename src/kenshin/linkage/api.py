"""The 番号連携サーバ's HTTP API (django-ninja, OpenAPI 3.1), served by `kenshin linkage serve`.

Why one operation per contract method, each a thin shell: the API builds
``clients.InProcessClient(token, jimu)`` and calls the same method, so the HTTP adapter can
never check less, log less or answer differently from the in-process one — the contract test
suite runs against both. Credential, 事務 and actor are checked (and a refusal logged) inside
that one code path; this module only moves JSON.

Why POST for every look-up: a 個人番号 (or a 宛名番号, or a 統合宛名番号) must never travel in a
URL — URLs end up in access logs, proxies and monitoring. Bodies are never logged.

Errors: a contract error becomes its ``http_status`` with ``{"code", "message"}`` (Japanese,
never the value); a request that does not fit the schema becomes 422 with a Japanese message
naming the field — pydantic's own messages would echo the input. Every response carries
``Cache-Control: no-store``: some carry a 個人番号.
"""

from __future__ import annotations

import json
import logging
import traceback
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security.http import HttpBearer

from kenshin.linkage import clients, contract, gateway
from kenshin.linkage import schemas as s

logger = logging.getLogger(__name__)

JIMU_HEADER = "X-Linkage-Jimu"
ACTOR_HEADER = "X-Linkage-Actor"

DESCRIPTION = f"""\
番号連携サーバ（団体内統合宛名番号・個人番号の保管庫）を業務システムから呼び出す API です。

- 認証: `Authorization: Bearer <認証情報>`（`kenshin linkage credential issue` で発行）。
- すべての呼出しに `{JIMU_HEADER}`（事務コード。システムに許可されたもの）と
  `{ACTOR_HEADER}`（操作者: 職員のユーザー名またはジョブ名）を付けます。
- 個人番号は URL にもクエリ文字列にも載せません。照会もすべて POST の JSON 本文です。
- 誤りは `{{"code": ..., "message": ...}}`（refused 403, invalid 422, not_found 404,
  conflict 409）。メッセージは日本語で、個人番号を含みません。
- 呼出しはすべて番号連携サーバのログ（LinkageEvent）に記録されます。個人番号は記録しません。
"""

_CALL_HEADERS = {
    "parameters": [
        {
            "in": "header",
            "name": JIMU_HEADER,
            "required": True,
            "schema": {"type": "string"},
            "description": "事務コード（例: kenko_zoshin）",
        },
        {
            "in": "header",
            "name": ACTOR_HEADER,
            "required": True,
            "schema": {"type": "string"},
            "description": "操作者（職員のユーザー名またはジョブ名）",
        },
    ]
}
_ERRORS = {
    403: s.ErrorOut,
    404: s.ErrorOut,
    409: s.ErrorOut,
    422: s.ErrorOut,
}


@dataclass(frozen=True)
class BearerToken:
    """The credential a request presents, unchecked (InProcessClient, or for a request that
    does not fit the schema :func:`_refuse_or_log_invalid`, checks it — gateway.authenticate).
    Not gateway.Caller, which is what an *accepted* credential becomes."""

    token: str

    def __repr__(self) -> str:  # never the token
        return "<BearerToken>"


class BearerCredential(HttpBearer):
    """Reads ``Authorization: Bearer …`` without judging it.

    Why it never fails: a missing or wrong credential must be refused *and logged* by the one
    code path (InProcessClient), like a wrong 事務 code. ninja's HttpBearer would answer 401
    before that, and logs the header in DEBUG mode.
    """

    def __call__(self, request: HttpRequest) -> BearerToken:
        return BearerToken(_token(request))

    def authenticate(self, request: HttpRequest, token: str) -> BearerToken:  # pragma: no cover
        return BearerToken(token)


def _token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class LinkageAPI(NinjaAPI):
    """NinjaAPI whose every response, errors included, is ``no-store``."""

    def create_response(self, request: HttpRequest, data: Any, **kwargs: Any) -> HttpResponse:
        response = super().create_response(request, data, **kwargs)
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response


api = LinkageAPI(
    title="Kenshin 番号連携サーバ API",
    version="1",
    description=DESCRIPTION,
    auth=BearerCredential(),
    urls_namespace="linkage-api",
    docs_url=None,  # the Swagger page loads scripts from a CDN; openapi.json is enough
)


def _client(request: HttpRequest) -> clients.InProcessClient:
    return clients.InProcessClient(request.auth.token, request.headers.get(JIMU_HEADER, ""))


def _actor(request: HttpRequest) -> str:
    value = request.headers.get(ACTOR_HEADER, "")
    if value.startswith("utf-8''"):  # http_client.encode_actor: a non-ASCII name
        return unquote(value[7:], errors="replace")
    return value


def _unified(found: str | None) -> HttpResponse:
    """The look-ups' answer, rendered directly: the hot path (bench target ≥ 500/s over HTTP)
    skips ninja's response validation, which costs more than the look-up's own SQL here. The
    shape is the declared UnifiedOut, and test_api checks it."""
    body = json.dumps({"unified_atena_no": found})
    response = HttpResponse(body, content_type=api.get_content_type())
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


# ---------------------------------------------------------------- errors


FIELD_LABELS = {
    "atena_no": "宛名番号",
    "name": "氏名",
    "name_kana": "カナ氏名",
    "birth_date": "生年月日",
    "sex": "性別",
    "address": "住所",
    "my_number": "個人番号",
    "atenas": "宛名の一覧",
    "system_code": "システムコード",
    "unified_atena_no": "団体内統合宛名番号",
    "purpose": "目的",
    "survivor": "残す統合宛名番号",
    "absorbed": "統合される統合宛名番号",
    "reason": "理由",
    "merge_id": "統合の申請番号",
    "request_id": "申請番号",
    "approve": "承認",
}
PROBLEMS = {
    "missing": "がありません",
    "string_too_long": "が長すぎます",
    "string_too_short": "が空です",
    "too_long": "の件数が多すぎます",
    "too_short": "が空です",
    "string_type": "は文字列で指定してください",
    "int_parsing": "は整数で指定してください",
    "int_type": "は整数で指定してください",
    "int_from_float": "は整数で指定してください",
    "bool_parsing": "は true / false で指定してください",
    "bool_type": "は true / false で指定してください",
    "greater_than_equal": "が範囲外です",
    "less_than_equal": "が範囲外です",
    "date_from_datetime_parsing": "は YYYY-MM-DD の形で指定してください",
    "date_parsing": "は YYYY-MM-DD の形で指定してください",
    "date_type": "は YYYY-MM-DD の形で指定してください",
    "list_type": "は配列で指定してください",
    "model_attributes_type": "は JSON のオブジェクトで指定してください",
    "dict_type": "は JSON のオブジェクトで指定してください",
}


def describe_validation_error(errors: list[dict]) -> str:
    """A Japanese sentence naming the fields that did not fit — never their values."""
    parts: list[str] = []
    for error in errors:
        if error.get("type") == "json_invalid":
            parts.append("本文が JSON として読めません")
            continue
        where: list[str] = []
        for item in error.get("loc", ())[1:]:  # loc[0] is "body"
            if isinstance(item, int):
                where.append(f"{item + 1} 件目の")
            elif item in FIELD_LABELS:
                where.append(FIELD_LABELS[item])
            # other parts ("payload", schema names) say nothing to the caller
        label = "".join(where) or "本文"
        parts.append(label + PROBLEMS.get(error.get("type", ""), "が正しくありません"))
    unique = list(dict.fromkeys(parts))
    more = f" ほか {len(unique) - 5} 件" if len(unique) > 5 else ""
    return "入力が正しくありません: " + "、".join(unique[:5]) + more


def _error(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    return api.create_response(request, {"code": code, "message": message}, status=status)


@api.exception_handler(contract.LinkageError)
def _linkage_error(request: HttpRequest, exc: contract.LinkageError) -> HttpResponse:
    return _error(request, exc.http_status, exc.code, str(exc))


def _refuse_or_log_invalid(request: HttpRequest) -> HttpResponse | None:
    """A request whose body did not fit is still a call: authenticate it like any other.

    Why: ninja validates the body before our operation (and so InProcessClient) runs. Without
    this, a wrong credential or 事務 with a malformed body would get 422 instead of the 403
    an in-process call gets, and the call would leave no LinkageEvent — but every call writes
    one. Returns the 403 (the gateway logged the refusal), or None after logging the accepted
    caller's call as ``invalid``.
    """
    operation = _event_operation(request)
    try:
        caller = gateway.authenticate(
            _token(request), request.headers.get(JIMU_HEADER, ""), _actor(request), operation
        )
    except contract.Refused as exc:
        return _linkage_error(request, exc)
    gateway.record(caller, operation, "", contract.InvalidInput.code)
    return None


def _event_operation(request: HttpRequest) -> str:
    """The LinkageEvent operation of the request's path (as InProcessClient names it)."""
    for method, path in OPERATIONS.items():
        if request.path.endswith(path):
            return EVENT_OPERATIONS.get(method, method)
    return "unknown"


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    refused = _refuse_or_log_invalid(request)
    if refused is not None:
        return refused
    return _error(request, 422, contract.InvalidInput.code, describe_validation_error(exc.errors))


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(request, 403, contract.Refused.code, "認証情報がありません。")


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # ninja's own (a body that is not JSON, none at all): its English text may quote the
    # body. A request that cannot be read is invalid input, as the contract's 422.
    status = 422 if exc.status_code == 400 else exc.status_code
    if status == 422:
        refused = _refuse_or_log_invalid(request)
        if refused is not None:
            return refused
    return _error(request, status, contract.InvalidInput.code, "要求の本文を読み取れません。")


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    """A bug. The log gets the exception class and the stack, not the exception's text or
    local variables (either may hold a request value)."""
    logger.error(
        "番号連携 API の内部エラー: %s %s %s\n%s",
        request.method,
        request.path,
        type(exc).__name__,
        "".join(traceback.format_tb(exc.__traceback__)),
    )
    return _error(request, 500, contract.LinkageError.code, "番号連携サーバの内部エラーです。")


# ---------------------------------------------------------------- operations


def _spec(ok: Any) -> dict:
    return {"response": {200: ok, **_ERRORS}, "openapi_extra": _CALL_HEADERS}


@api.post("/register", **_spec(s.RegistrationOut), summary="宛名の登録・更新")
def register(request: HttpRequest, payload: s.AtenaInSchema):
    """宛名を登録（または更新）し、統合宛名番号が無ければ採番します。"""
    return asdict(_client(request).register(payload.to_contract(), actor=_actor(request)))


@api.post("/register-many", **_spec(list[s.RegistrationOut]), summary="宛名の一括登録")
def register_many(request: HttpRequest, payload: s.RegisterManyIn):
    """register と同じことを一括で（1 トランザクション）。"""
    atenas = [a.to_contract() for a in payload.atenas]
    return [asdict(r) for r in _client(request).register_many(atenas, actor=_actor(request))]


@api.post("/find-by-my-number", **_spec(s.UnifiedOut), summary="個人番号から統合宛名番号")
def find_by_my_number(request: HttpRequest, payload: s.MyNumberQuery):
    """個人番号（全角・ハイフン付きも可）を持つ人の統合宛名番号。無ければ null。"""
    found = _client(request).find_by_my_number(payload.my_number, actor=_actor(request))
    return _unified(found)


@api.post("/find-by-atena", **_spec(s.UnifiedOut), summary="宛名番号から統合宛名番号")
def find_by_atena(request: HttpRequest, payload: s.AtenaQuery):
    """業務システムの宛名番号（省略時は呼出し元システムのもの）に紐付く統合宛名番号。"""
    found = _client(request).find_by_atena(
        payload.atena_no, actor=_actor(request), system_code=payload.system_code
    )
    return _unified(found)


@api.post("/atenas-of", **_spec(list[s.AtenaRefOut]), summary="統合宛名番号から宛名番号")
def atenas_of(request: HttpRequest, payload: s.UnifiedQuery):
    """統合宛名番号に紐付くすべての業務宛名番号（逆引き）。"""
    refs = _client(request).atenas_of(payload.unified_atena_no, actor=_actor(request))
    return [asdict(r) for r in refs]


@api.post("/person", **_spec(s.PersonOut), summary="統合宛名")
def person(request: HttpRequest, payload: s.UnifiedQuery):
    """統合宛名番号とその紐付け。個人番号は返さず、保管の有無だけ。"""
    return asdict(_client(request).person(payload.unified_atena_no, actor=_actor(request)))


@api.post("/masked-my-number", **_spec(s.MaskedOut), summary="個人番号（マスク表示）")
def masked_my_number(request: HttpRequest, payload: s.UnifiedQuery):
    """個人番号を `**** **** 3214` の形で。保管していなければ null。"""
    masked = _client(request).masked_my_number(payload.unified_atena_no, actor=_actor(request))
    return {"masked": masked}


@api.post("/reveal-my-number", **_spec(s.RevealedOut), summary="個人番号（全桁）")
def reveal_my_number(request: HttpRequest, payload: s.RevealQuery):
    """個人番号の全桁。業務システムが操作者の権限と直前の二要素認証を確かめた上で呼びます。
    目的は記録されます。"""
    number = _client(request).reveal_my_number(
        payload.unified_atena_no, actor=_actor(request), purpose=payload.purpose
    )
    return {"my_number": number}


@api.post("/duplicate-candidates", **_spec(list[s.CandidateOut]), summary="重複候補")
def duplicate_candidates(request: HttpRequest):
    """未処理の重複候補（古い順）。"""
    return [asdict(c) for c in _client(request).duplicate_candidates(actor=_actor(request))]


@api.post("/merges", **_spec(list[s.MergeOut]), summary="統合の履歴")
def merges(request: HttpRequest, payload: s.MergesQuery):
    """統合・統合取消の申請と結果（新しい順）。統合宛名番号で絞り込めます。"""
    views = _client(request).merges(
        actor=_actor(request), unified_atena_no=payload.unified_atena_no
    )
    return [asdict(m) for m in views]


@api.post("/merges/request", **_spec(s.MergeOut), summary="統合の申請")
def request_merge(request: HttpRequest, payload: s.MergeRequestIn):
    """absorbed を survivor に統合する申請。承認は別の人が行います。"""
    view = _client(request).request_merge(
        payload.survivor, payload.absorbed, actor=_actor(request), reason=payload.reason
    )
    return asdict(view)


@api.post("/merges/request-unmerge", **_spec(s.MergeOut), summary="統合取消の申請")
def request_unmerge(request: HttpRequest, payload: s.UnmergeRequestIn):
    """実施済みの統合を取り消す申請。承認は別の人が行います。"""
    view = _client(request).request_unmerge(
        payload.merge_id, actor=_actor(request), reason=payload.reason
    )
    return asdict(view)


@api.post("/merges/decide", **_spec(s.MergeOut), summary="申請の承認・却下")
def decide_merge(request: HttpRequest, payload: s.MergeDecisionIn):
    """承認（実施）または却下。申請した本人は決められません。"""
    view = _client(request).decide_merge(
        payload.request_id, actor=_actor(request), approve=payload.approve
    )
    return asdict(view)


# Every LinkageClient method has exactly one operation here (test_api checks it).
OPERATIONS = {
    "register": "/register",
    "register_many": "/register-many",
    "find_by_my_number": "/find-by-my-number",
    "find_by_atena": "/find-by-atena",
    "atenas_of": "/atenas-of",
    "person": "/person",
    "masked_my_number": "/masked-my-number",
    "reveal_my_number": "/reveal-my-number",
    "duplicate_candidates": "/duplicate-candidates",
    "merges": "/merges",
    "request_merge": "/merges/request",
    "request_unmerge": "/merges/request-unmerge",
    "decide_merge": "/merges/decide",
}
# The LinkageEvent operation where it differs from the method's name (clients.InProcessClient
# names them; test_api checks the two agree).
EVENT_OPERATIONS = {
    "register_many": "register",
    "request_merge": "merge_request",
    "request_unmerge": "unmerge_request",
    "decide_merge": "merge_decide",
}
