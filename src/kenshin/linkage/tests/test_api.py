"""The HTTP API in-process (Django test client, the server's URLs and middleware): the wire
format — status codes, error bodies, headers, OpenAPI — rather than the behaviour, which the
contract suite checks through HttpClient against a real server."""

from __future__ import annotations

import inspect
import json
import random

import pytest

from kenshin.core.mynumber import check_digit, find_all
from kenshin.linkage import api, contract, rules, server_settings
from kenshin.linkage.models import LinkageEvent

pytestmark = pytest.mark.django_db

BASE = "/api/linkage/v1/"
JIMU = "kenko_zoshin"
_rng = random.SystemRandom()


def synthetic_my_number() -> str:
    first = "".join(_rng.choice("0123456789") for _ in range(11))
    return first + str(check_digit(first))


def atena_body(my_number: str | None = None, **items) -> dict:
    body = {
        "atena_no": "T" + "".join(_rng.choice("0123456789") for _ in range(10)),
        "name": "試験　次郎",
        "name_kana": "シケン　ジロウ",
        "birth_date": "1961-04-01",
        "sex": 1,
        "address": f"広島県呉市試験町{_rng.randint(1, 10**8)}番地",
        "my_number": my_number,
    }
    body.update(items)
    return body


@pytest.fixture
def server_urls(settings):
    """The linkage server's URLs and middleware on the test client (not the staff site's)."""
    settings.ROOT_URLCONF = server_settings.ROOT_URLCONF
    settings.MIDDLEWARE = server_settings.MIDDLEWARE


@pytest.fixture
def call(client, settings, server_urls):
    """call(operation, body, token=…, jimu=…, actor=…) -> response (POST JSON)."""

    def post(op: str, body: dict | None = None, *, token=None, jimu=JIMU, actor="hokenshi1"):
        headers = {"X-Linkage-Jimu": jimu, "X-Linkage-Actor": actor}
        token = settings.LINKAGE_CREDENTIAL if token is None else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return client.post(
            BASE + op,
            data=json.dumps(body or {}),
            content_type="application/json",
            headers=headers,
        )

    return post


def test_openapi_is_3_1_with_title_version_and_bearer_scheme(client, server_urls) -> None:
    response = client.get(BASE + "openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.1")
    assert schema["info"]["title"] == "Kenshin 番号連携サーバ API"
    assert schema["info"]["version"] == "1"
    schemes = schema["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]


def test_every_contract_method_has_one_post_operation_with_no_query_or_path_parameter(
    client, server_urls
) -> None:
    methods = {
        name
        for name, _ in inspect.getmembers(contract.LinkageClient, inspect.isfunction)
        if not name.startswith("_")
    }
    assert set(api.OPERATIONS) == methods
    paths = client.get(BASE + "openapi.json").json()["paths"]
    for name, path in api.OPERATIONS.items():
        operations = paths[BASE + path.lstrip("/")]
        assert set(operations) == {"post"}, name
        params = operations["post"].get("parameters", [])
        # Nothing travels in the URL: the only parameters are the two call headers.
        assert {p["in"] for p in params} == {"header"}, name
        assert {p["name"] for p in params} == {"X-Linkage-Jimu", "X-Linkage-Actor"}
        assert operations["post"]["security"], name


def test_register_and_find_by_my_number_round_trip_with_no_store(call) -> None:
    number = synthetic_my_number()
    registered = call("register", atena_body(number))
    assert registered.status_code == 200, registered.content
    assert registered["Cache-Control"] == "no-store"
    assert number not in registered.content.decode()  # never echoed
    unified = registered.json()["unified_atena_no"]
    spaced = f"{number[:4]}-{number[4:8]}-{number[8:]}"
    found = call("find-by-my-number", {"my_number": spaced})
    assert found.status_code == 200
    assert found.json() == {"unified_atena_no": unified}
    assert found["Cache-Control"] == "no-store"
    masked = call("masked-my-number", {"unified_atena_no": unified}).json()["masked"]
    assert masked.endswith(number[-4:]) and number not in masked


def test_look_up_events_are_written_in_the_linkage_database(call) -> None:
    before = LinkageEvent.objects.using("linkage").count()
    assert call("find-by-my-number", {"my_number": synthetic_my_number()}).json() == {
        "unified_atena_no": None
    }
    assert LinkageEvent.objects.using("linkage").count() == before + 1


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"token": ""}, "refused"),
        ({"token": "kl_0123456789ab_" + "x" * 43}, "refused"),
        ({"jimu": "chiho_zei"}, "refused"),
        ({"jimu": ""}, "refused"),
    ],
    ids=["no-credential", "unknown-credential", "jimu-not-allowed", "no-jimu"],
)
def test_refused_call_is_403_with_code_and_japanese_message_and_logged(call, kwargs, code) -> None:
    before = LinkageEvent.objects.using("linkage").filter(result="refused").count()
    response = call("find-by-my-number", {"my_number": synthetic_my_number()}, **kwargs)
    assert response.status_code == 403
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["code"] == code
    assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in body["message"])
    assert LinkageEvent.objects.using("linkage").filter(result="refused").count() == before + 1


def test_unknown_unified_number_is_404_not_found(call) -> None:
    unknown = rules.unified_atena_no(rules.MAX_SERIAL)
    response = call("person", {"unified_atena_no": unknown})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_wrong_check_digit_is_422_invalid_without_the_value(call) -> None:
    number = synthetic_my_number()
    wrong = number[:11] + str((int(number[11]) + 1) % 10)
    response = call("find-by-my-number", {"my_number": wrong})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid"
    assert wrong not in response.content.decode()


def test_deciding_ones_own_merge_request_is_409_conflict(call) -> None:
    a = call("register", atena_body(synthetic_my_number())).json()["unified_atena_no"]
    b = call("register", atena_body(name="試験　三郎")).json()["unified_atena_no"]
    asked = call("merges/request", {"survivor": a, "absorbed": b, "reason": "同一人物の疑い"})
    assert asked.status_code == 200, asked.content
    response = call("merges/decide", {"request_id": asked.json()["id"], "approve": True})
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


def test_schema_errors_are_422_in_japanese_naming_fields_never_values(call) -> None:
    number = synthetic_my_number()
    body = atena_body(
        my_number=number * 4,  # too long: the value must not come back
        birth_date="1961-13-45",
        sex="男",
    )
    del body["name_kana"]
    response = call("register", body)
    assert response.status_code == 422
    assert response["Cache-Control"] == "no-store"
    payload = response.json()
    assert payload["code"] == "invalid"
    message = payload["message"]
    for label in ("個人番号", "生年月日", "性別", "カナ氏名"):
        assert label in message
    text = response.content.decode("unicode_escape")
    assert not find_all(text)
    assert "1961-13-45" not in text and "男" not in text


def test_batch_errors_name_the_item(call) -> None:
    response = call("register-many", {"atenas": [atena_body(), atena_body(birth_date="x")]})
    assert response.status_code == 422
    assert "2 件目の生年月日" in response.json()["message"]


def test_body_that_is_not_json_is_422_in_japanese(call, client, settings) -> None:
    response = client.post(
        BASE + "find-by-my-number",
        data="{not json",
        content_type="application/json",
        headers={
            "Authorization": f"Bearer {settings.LINKAGE_CREDENTIAL}",
            "X-Linkage-Jimu": JIMU,
            "X-Linkage-Actor": "hokenshi1",
        },
    )
    assert response.status_code in (400, 422)
    assert response.json()["code"] == "invalid"
    assert "{not json" not in response.content.decode()


@pytest.mark.leak_expected("sends a 個人番号 in a query string to show the server ignores it")
def test_my_number_in_a_query_string_is_not_accepted(client, settings, server_urls) -> None:
    """A GET with the number in the URL is no operation at all, and a POST reads the number
    only from its body, never from the query string."""
    number = synthetic_my_number()
    headers = {
        "Authorization": f"Bearer {settings.LINKAGE_CREDENTIAL}",
        "X-Linkage-Jimu": JIMU,
        "X-Linkage-Actor": "hokenshi1",
    }
    url = BASE + "find-by-my-number"
    get = client.get(url, {"my_number": number}, headers=headers)
    assert get.status_code == 405
    post = client.post(
        url + "?my_number=" + number, data="{}", content_type="application/json", headers=headers
    )
    assert post.status_code == 422  # the body is required; the query string is ignored
    assert "個人番号" in post.json()["message"]
    assert number not in post.content.decode()


def test_unexpected_error_is_500_json_without_details(call, monkeypatch, caplog) -> None:
    from kenshin.linkage import clients

    def boom(self, my_number, *, actor):
        raise RuntimeError(my_number)

    monkeypatch.setattr(clients.InProcessClient, "find_by_my_number", boom)
    number = synthetic_my_number()
    response = call("find-by-my-number", {"my_number": number})
    assert response.status_code == 500
    assert response.json() == {"code": "error", "message": "番号連携サーバの内部エラーです。"}
    assert number not in caplog.text
    assert "RuntimeError" in caplog.text


def test_healthz(client, server_urls, db) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


# --- a body that does not fit is still an authenticated, logged call --------------------------


def _last_event() -> LinkageEvent:
    return LinkageEvent.objects.using("linkage").order_by("-id").first()


@pytest.mark.parametrize(
    "kwargs",
    [{"token": ""}, {"token": "kl_0123456789ab_" + "x" * 43}, {"jimu": "chiho_zei"}],
    ids=["no-credential", "unknown-credential", "jimu-not-allowed"],
)
@pytest.mark.parametrize("body", ["schema", "not-json"])
def test_bad_credential_with_a_bad_body_is_refused_403_and_logged(
    call, client, settings, kwargs, body
) -> None:
    """The same answer an in-process call gets: authentication comes before the body."""
    number = synthetic_my_number()
    before = LinkageEvent.objects.using("linkage").count()
    if body == "schema":
        response = call("find-by-my-number", {"my_number": number * 4}, **kwargs)
    else:
        token = kwargs.get("token", settings.LINKAGE_CREDENTIAL)
        headers = {"X-Linkage-Jimu": kwargs.get("jimu", JIMU), "X-Linkage-Actor": "hokenshi1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = client.post(
            BASE + "find-by-my-number",
            data="{not json",
            content_type="application/json",
            headers=headers,
        )
    assert response.status_code == 403
    assert response.json()["code"] == "refused"
    assert number not in response.content.decode()
    assert LinkageEvent.objects.using("linkage").count() == before + 1
    event = _last_event()
    assert (event.operation, event.result) == ("find_by_my_number", "refused")


@pytest.mark.parametrize(
    ("op", "body", "operation"),
    [
        ("find-by-my-number", {"my_number": "MYNUMBER" * 4}, "find_by_my_number"),
        ("register", {"atena_no": "X1"}, "register"),
        ("register-many", {"atenas": "none"}, "register"),
        ("merges/request", {"survivor": 1}, "merge_request"),
        ("merges/request-unmerge", {"merge_id": "x"}, "unmerge_request"),
        ("merges/decide", {"request_id": 1}, "merge_decide"),
        ("person", {}, "person"),
    ],
)
def test_good_credential_with_a_bad_body_is_422_and_logged_invalid(
    call, op, body, operation
) -> None:
    number = synthetic_my_number()
    body = {
        k: (v.replace("MYNUMBER", number) if isinstance(v, str) else v) for k, v in body.items()
    }
    before = LinkageEvent.objects.using("linkage").count()
    response = call(op, body)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid"
    assert not find_all(response.content.decode("unicode_escape"))  # never echoes a value
    assert LinkageEvent.objects.using("linkage").count() == before + 1
    event = _last_event()
    assert (event.operation, event.result, event.actor) == (operation, "invalid", "hokenshi1")
    assert event.system_code == "kenshin" and event.jimu_code == JIMU
    assert number not in json.dumps(event.detail)


def test_good_credential_with_a_body_that_is_not_json_is_422_and_logged_invalid(
    client, settings, server_urls
) -> None:
    before = LinkageEvent.objects.using("linkage").count()
    response = client.post(
        BASE + "reveal-my-number",
        data="{not json",
        content_type="application/json",
        headers={
            "Authorization": f"Bearer {settings.LINKAGE_CREDENTIAL}",
            "X-Linkage-Jimu": JIMU,
            "X-Linkage-Actor": "hokenshi1",
        },
    )
    assert response.status_code == 422
    assert LinkageEvent.objects.using("linkage").count() == before + 1
    event = _last_event()
    assert (event.operation, event.result) == ("reveal_my_number", "invalid")


def test_event_operations_are_the_in_process_clients_names() -> None:
    """api.EVENT_OPERATIONS (used for a body that never reached InProcessClient) says what
    InProcessClient logs for each method."""
    import re

    from kenshin.linkage import clients

    for method in api.OPERATIONS:
        source = inspect.getsource(getattr(clients.InProcessClient, method))
        logged = re.search(r'self\._caller\(actor, "([a-z_]+)"\)', source).group(1)
        assert api.EVENT_OPERATIONS.get(method, method) == logged, method
