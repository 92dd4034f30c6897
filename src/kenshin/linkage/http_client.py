"""The HTTP adapter of the linkage contract: a business system talking to `kenshin linkage serve`.

Why one ``httpx.Client`` per HttpClient: keep-alive. A look-up is a few hundred microseconds of
server work; a new TCP (and TLS) connection per call would cost more than the call. HTTP/1.1
on purpose: one request per connection at a time is what gunicorn's threads serve best, and the
client is thread-safe (httpx pools connections per thread of use).

Errors come back as the same contract exception classes the in-process adapter raises
(contract.ERRORS by ``code``), with the server's Japanese message, so callers cannot tell the
adapters apart. A server that cannot be reached is a plain ``LinkageError``. Nothing here logs
a request or response body, and httpx's own loggers see only method, URL and status — the URL
never holds personal data (every look-up is a POST body).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from kenshin.linkage import contract
from kenshin.linkage import schemas as s

API_PATH = "api/linkage/v1/"


class HttpClient:
    """contract.LinkageClient over HTTP. ``credential`` is the bearer token; ``jimu`` the
    事務 code sent with every call."""

    def __init__(self, base_url: str, credential: str, jimu: str, *, timeout: float = 10.0):
        base = base_url if base_url.endswith("/") else base_url + "/"
        # A missing credential or 事務 code is sent as a missing header: the server refuses
        # and logs the call, as in-process (an empty "Bearer " is not even valid HTTP).
        headers = {"Accept": "application/json"}
        if credential.strip():
            headers["Authorization"] = f"Bearer {credential.strip()}"
        if jimu.strip():
            headers["X-Linkage-Jimu"] = jimu.strip()
        self._http = httpx.Client(
            base_url=base + API_PATH,
            headers=headers,
            timeout=timeout,
            http1=True,
            http2=False,
            follow_redirects=False,
            trust_env=False,  # never send the credential through an environment proxy
        )
        self.base_url = base
        self.jimu = jimu

    def __repr__(self) -> str:  # never the credential
        return f"<HttpClient {self.base_url} jimu={self.jimu}>"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ transport

    def _call(self, path: str, actor: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.post(
                path,
                json=body if body is not None else {},
                headers={"X-Linkage-Actor": encode_actor(actor)} if actor.strip() else None,
            )
        except httpx.TimeoutException as exc:
            raise contract.LinkageError("番号連携サーバが時間内に応答しませんでした。") from exc
        except httpx.HTTPError as exc:
            raise contract.LinkageError("番号連携サーバに接続できません。") from exc
        if response.status_code == 200:
            return response.json()
        raise _error_of(response)

    # ------------------------------------------------------------ contract

    def register(self, atena: contract.AtenaIn, *, actor: str) -> contract.Registration:
        return s.registration(self._call("register", actor, s.atena_json(atena)))

    def register_many(
        self, atenas: Sequence[contract.AtenaIn], *, actor: str
    ) -> list[contract.Registration]:
        if not atenas:
            return []
        data = self._call("register-many", actor, {"atenas": [s.atena_json(a) for a in atenas]})
        return [s.registration(r) for r in data]

    def find_by_my_number(self, my_number: str, *, actor: str) -> str | None:
        return self._call("find-by-my-number", actor, {"my_number": my_number})["unified_atena_no"]

    def find_by_atena(self, atena_no: str, *, actor: str, system_code: str = "") -> str | None:
        body = {"atena_no": atena_no, "system_code": system_code}
        return self._call("find-by-atena", actor, body)["unified_atena_no"]

    def atenas_of(self, unified_atena_no: str, *, actor: str) -> list[contract.AtenaRef]:
        data = self._call("atenas-of", actor, {"unified_atena_no": unified_atena_no})
        return [contract.AtenaRef(**a) for a in data]

    def person(self, unified_atena_no: str, *, actor: str) -> contract.PersonView:
        return s.person(self._call("person", actor, {"unified_atena_no": unified_atena_no}))

    def masked_my_number(self, unified_atena_no: str, *, actor: str) -> str | None:
        return self._call("masked-my-number", actor, {"unified_atena_no": unified_atena_no})[
            "masked"
        ]

    def reveal_my_number(self, unified_atena_no: str, *, actor: str, purpose: str) -> str | None:
        body = {"unified_atena_no": unified_atena_no, "purpose": purpose}
        return self._call("reveal-my-number", actor, body)["my_number"]

    def duplicate_candidates(self, *, actor: str) -> list[contract.CandidateView]:
        return [s.candidate(c) for c in self._call("duplicate-candidates", actor)]

    def request_merge(
        self, survivor: str, absorbed: str, *, actor: str, reason: str
    ) -> contract.MergeView:
        body = {"survivor": survivor, "absorbed": absorbed, "reason": reason}
        return s.merge(self._call("merges/request", actor, body))

    def request_unmerge(self, merge_id: int, *, actor: str, reason: str) -> contract.MergeView:
        body = {"merge_id": merge_id, "reason": reason}
        return s.merge(self._call("merges/request-unmerge", actor, body))

    def decide_merge(self, request_id: int, *, actor: str, approve: bool) -> contract.MergeView:
        body = {"request_id": request_id, "approve": approve}
        return s.merge(self._call("merges/decide", actor, body))

    def merges(self, *, actor: str, unified_atena_no: str = "") -> list[contract.MergeView]:
        data = self._call("merges", actor, {"unified_atena_no": unified_atena_no})
        return [s.merge(m) for m in data]


def encode_actor(actor: str) -> str:
    """Header values are ASCII: a name in Japanese travels percent-encoded after ``utf-8''``
    (the RFC 8187 form); api.py decodes it."""
    actor = actor.strip()
    if actor.isascii() and actor.isprintable():
        return actor
    return "utf-8''" + quote(actor, safe="")


def _error_of(response: httpx.Response) -> contract.LinkageError:
    """The contract exception the server's JSON error names (its class by ``code``)."""
    try:
        data = response.json()
        code, message = str(data["code"]), str(data["message"])
    except (ValueError, KeyError, TypeError):
        return contract.LinkageError(
            f"番号連携サーバから予期しない応答がありました（HTTP {response.status_code}）。"
        )
    return contract.ERRORS.get(code, contract.LinkageError)(message)
