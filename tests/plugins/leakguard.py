"""The leak guard's capture (MN-03): everything the suite logs, requests and shows as an error page.

Why a plugin and not fixtures: the guard must see the whole session — every test, every thread
(the live server answers Playwright from its own thread) and every logger — and must not depend
on each test opting in. At session start it patches a few class-level entry points:

* ``logging.Logger.handle``: every record that passes its logger's level, whatever handlers
  and ``propagate`` say (``django.server`` does not propagate; settings.LOGGING may be
  re-applied), formatted with its args and traceback at once;
* ``BaseHandler.get_response`` (test client, live server) and ``RequestFactory.request``:
  every URL requested, every redirect target, the body of every response >= 400 and the
  <title> of every other HTML page (browser history keeps it);
* the bulk writers of the register (``core.bulk.bulk_insert`` as residents.actions calls it,
  and the COPY lines of a first PostgreSQL load) and ResidentVersion's ``post_init``: every
  氏名 / 氏名カナ / 世帯主氏名 (and their search keys) the suite put into or read from the
  register — feed helpers, the demo city and the e2e town all import through them.

tests/test_zz_leak_guard.py runs last (moved there by ``pytest_collection_modifyitems``) and
scans it all with kenshin.core.leakguard. A test that plants a leak on purpose is exempted
with ``@pytest.mark.leak_expected("why")``.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

GUARD_MARK = "leak_guard"
EXEMPT_MARK = "leak_expected"
SAMPLES = Path("docs/formats/samples")
NAME_COLUMNS = ("氏名", "氏名カナ", "世帯主氏名")


@dataclass(frozen=True)
class Seen:
    """One captured text: channel ("log", "url", "error page"), its source and the test."""

    channel: str
    source: str
    test: str
    text: str

    def __repr__(self) -> str:  # pytest may print reprs on failure: never the text
        return f"<Seen {self.channel} {self.source} ({len(self.text)} chars)>"


@dataclass
class Capture:
    """The session's captures. Its repr is opaque: it holds the very data it guards."""

    seen: list[Seen] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    names_from_run: int = 0  # names recorded while tests ran (not from the sample files)
    exempt: set[str] = field(default_factory=set)
    current: str = "(session)"
    started: int = 0
    collected: int = 0
    deselected: int = 0
    whole_suite: bool = False

    def __repr__(self) -> str:
        return (
            f"<Capture {self.count('log')} log, {self.count('url')} url, "
            f"{self.count('error page')} error page, {self.count('page title')} page title, "
            f"{len(self.names)} names>"
        )

    def count(self, channel: str) -> int:
        return sum(1 for s in self.seen if s.channel == channel)

    def add(self, channel: str, source: str, text: str) -> None:
        # list.append is atomic under the GIL: the live server thread may call this too
        self.seen.append(Seen(channel, source, self.current, text))

    def add_names(self, *values: object) -> None:
        for v in values:
            if isinstance(v, str) and v:
                if v not in self.names:
                    self.names.add(v)
                    self.names_from_run += 1


CAPTURE = pytest.StashKey[Capture]()
_undo: list[Callable[[], None]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{GUARD_MARK}: the leak guard; runs after every other test (MN-03)"
    )
    config.addinivalue_line(
        "markers",
        f"{EXEMPT_MARK}(reason): this test plants a 個人番号 or a name in logs/URLs/error "
        "pages on purpose; the leak guard ignores what it captured",
    )
    config.stash[CAPTURE] = Capture()


def pytest_sessionstart(session: pytest.Session) -> None:
    capture = session.config.stash[CAPTURE]
    capture.whole_suite = _whole_suite(session.config)
    _read_sample_names(session.config.rootpath / SAMPLES, capture)
    _install(capture)


def pytest_sessionfinish(session: pytest.Session) -> None:
    while _undo:
        _undo.pop()()


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    """Move the guard to the very end, after every other plugin (randomisers, pytest-django's
    TestCase ordering) has had its say."""
    result = yield
    guards = [i for i in items if i.get_closest_marker(GUARD_MARK)]
    if guards:
        items[:] = [i for i in items if not i.get_closest_marker(GUARD_MARK)] + guards
    config.stash[CAPTURE].collected = len(items)
    return result


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash[CAPTURE].deselected += len(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    capture = item.config.stash[CAPTURE]
    capture.current = item.nodeid
    capture.started += 1
    exempt = item.get_closest_marker(EXEMPT_MARK)
    if exempt is not None:
        if not exempt.args:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{EXEMPT_MARK} needs a reason")
        capture.exempt.add(item.nodeid)
    _install(capture)  # idempotent; puts back anything a test replaced for good
    try:
        return (yield)
    finally:
        capture.current = "(between tests)"


@pytest.fixture
def leak_capture(request: pytest.FixtureRequest) -> Capture:
    """The session's captures (for tests/test_zz_leak_guard.py)."""
    return request.config.stash[CAPTURE]


def _whole_suite(config: pytest.Config) -> bool:
    """True when pytest was run without paths (the configured testpaths: the whole suite).

    Only then may the guard insist that it captured something; `pytest tests/test_zz_…` alone
    or `pytest src/kenshin/core` legitimately request no page at all.
    """
    return config.args_source == pytest.Config.ArgsSource.TESTPATHS


def _read_sample_names(folder: Path, capture: Capture) -> None:
    for path in sorted(folder.glob("*.csv")):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("cp932", errors="replace")
        for row in csv.DictReader(text.splitlines()):
            capture.names.update(row[c] for c in NAME_COLUMNS if row.get(c))


# --- patches -------------------------------------------------------------------------------------

_FORMATTER = logging.Formatter()
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _install(capture: Capture) -> None:
    """Install every patch once per session (a no-op when they are in place)."""
    from django.core.handlers.base import BaseHandler
    from django.test.client import AsyncRequestFactory, RequestFactory

    from kenshin.core import bulk
    from kenshin.residents import actions

    _patch(logging.Logger, "handle", _log_wrapper(capture))
    _patch(BaseHandler, "get_response", _response_wrapper(capture))
    _patch(BaseHandler, "get_response_async", _async_response_wrapper(capture))
    _patch(RequestFactory, "request", _factory_wrapper(capture))
    _patch(AsyncRequestFactory, "request", _factory_wrapper(capture))
    _patch(bulk, "bulk_insert", _bulk_wrapper(capture))
    _patch(actions, "bulk_insert", _bulk_wrapper(capture))
    _patch(actions, "_copy_line", _copy_line_wrapper(capture))
    _connect_post_init(capture)
    # The project's own loggers are scanned down to DEBUG: an operator may run with
    # KENSHIN_LOG_LEVEL=DEBUG, and a name printed at DEBUG is a leak then.
    kenshin = logging.getLogger("kenshin")
    if kenshin.level == logging.NOTSET or kenshin.level > logging.DEBUG:
        previous = kenshin.level
        kenshin.setLevel(logging.DEBUG)
        _undo.append(lambda: kenshin.setLevel(previous))


def _patch(owner: object, attr: str, make: Callable[[Callable], Callable]) -> None:
    current = getattr(owner, attr)
    if getattr(current, "_leak_guard", False):
        return
    wrapped = make(current)
    wrapped._leak_guard = True  # type: ignore[attr-defined]
    setattr(owner, attr, wrapped)
    _undo.append(lambda: setattr(owner, attr, current))


def _log_wrapper(capture: Capture) -> Callable[[Callable], Callable]:
    def make(original: Callable) -> Callable:
        @functools.wraps(original)
        def handle(self: logging.Logger, record: logging.LogRecord) -> object:
            if not self.disabled:
                capture.add("log", record.name, _format(record))
                _maybe_admin_mail(capture, record)
            return original(self, record)

        return handle

    return make


def _format(record: logging.LogRecord) -> str:
    """What any handler could write: the message with its args, traceback and stack."""
    try:
        text = record.getMessage()
    except Exception:  # a broken format string still shows its parts somewhere
        text = f"{record.msg!s} {record.args!r}"
    if record.exc_info:
        text += "\n" + _FORMATTER.formatException(record.exc_info)
    elif record.exc_text:
        text += "\n" + record.exc_text
    if record.stack_info:
        text += "\n" + record.stack_info
    return text


def _maybe_admin_mail(capture: Capture, record: logging.LogRecord) -> None:
    """Django mails 500s to settings.ADMINS with the request's POST data and frame locals.

    Captured only when ADMINS is set (otherwise nothing is sent): it is a log channel then.
    """
    from django.conf import settings

    if not settings.ADMINS or record.levelno < logging.ERROR:
        return
    request = getattr(record, "request", None)
    if request is None or not record.exc_info:
        return
    from django.views.debug import ExceptionReporter

    reporter = ExceptionReporter(request, *record.exc_info, is_email=True)
    capture.add("log", f"{record.name} (mail_admins)", reporter.get_traceback_text())


def _url_of(request: object) -> str:
    """The URL as the client sent it. Not get_full_path(): WSGI hands the query string over
    as UTF-8 bytes read as Latin-1, and get_full_path() would quote that mojibake."""
    query = request.META.get("QUERY_STRING", "")  # type: ignore[attr-defined]
    try:
        query = query.encode("latin-1").decode("utf-8")
    except UnicodeError:
        pass
    return request.path + (f"?{query}" if query else "")  # type: ignore[attr-defined]


def _record_response(capture: Capture, request: object, response: object) -> None:
    path = _url_of(request)
    capture.add("url", request.method or "", path)  # type: ignore[attr-defined]
    status = response.status_code  # type: ignore[attr-defined]
    location = response.get("Location") if hasattr(response, "get") else None  # type: ignore[attr-defined]
    if location:
        capture.add("url", f"redirect {status}", location)
    if getattr(response, "streaming", False):
        return
    if status >= 400:
        body = response.content.decode(response.charset or "utf-8", "replace")  # type: ignore[attr-defined]
        capture.add("error page", f"{status} {path}", body)
    elif "html" in response.get("Content-Type", ""):  # type: ignore[attr-defined]
        # A page's title is kept in the browser's history and shown in its tab list, on a
        # terminal other people use: it is a URL-like channel, whatever the page shows.
        head = response.content[:4096].decode(response.charset or "utf-8", "replace")  # type: ignore[attr-defined]
        title = _TITLE.search(head)
        if title:
            capture.add("page title", f"{status} {path}", title.group(1))


def _response_wrapper(capture: Capture) -> Callable[[Callable], Callable]:
    def make(original: Callable) -> Callable:
        @functools.wraps(original)
        def get_response(self: object, request: object) -> object:
            response = original(self, request)
            _record_response(capture, request, response)
            return response

        return get_response

    return make


def _async_response_wrapper(capture: Capture) -> Callable[[Callable], Callable]:
    def make(original: Callable) -> Callable:
        @functools.wraps(original)
        async def get_response_async(self: object, request: object) -> object:
            response = await original(self, request)
            _record_response(capture, request, response)
            return response

        return get_response_async

    return make


def _factory_wrapper(capture: Capture) -> Callable[[Callable], Callable]:
    """RequestFactory requests go straight to a view, past any handler: record the URL here."""

    def make(original: Callable) -> Callable:
        @functools.wraps(original)
        def request(self: object, **kwargs: object) -> object:
            req = original(self, **kwargs)
            capture.add("url", f"{req.method} (RequestFactory)", _url_of(req))
            return req

        return request

    return make


def _bulk_wrapper(capture: Capture) -> Callable[[Callable], Callable]:
    """Every resident row written in bulk (imports: feed helpers, the demo city, the e2e town).

    Rows that only reached the parser (rules tests, hypothesis' arbitrary text) are not
    names of residents the application could show, and would make noise.
    """

    def make(original: Callable) -> Callable:
        @functools.wraps(original)
        def bulk_insert(model: type, fields: Sequence[str], rows: Iterable, *a, **kw) -> object:
            if model._meta.label_lower == "residents.residentversion":  # type: ignore[attr-defined]
                rows = list(rows)
                at = [fields.index(f) for f in _NAME_FIELDS if f in fields]
                for row in rows:
                    capture.add_names(*(row[i] for i in at))
            return original(model, fields, rows, *a, **kw)

        return bulk_insert

    return make


def _copy_line_wrapper(capture: Capture) -> Callable[[Callable], Callable]:
    """PostgreSQL's first full load streams COPY lines made by actions._copy_line(mc, rec, …),
    where rec is the parser's tuple (name, kana, kana key, name key … household head)."""

    def make(original: Callable) -> Callable:
        @functools.wraps(original)
        def copy_line(mc: str, rec: tuple, *args: object) -> str:
            capture.add_names(rec[4], rec[5], rec[6], rec[7], rec[16])
            return original(mc, rec, *args)

        return copy_line

    return make


_NAME_FIELDS = ("name", "name_kana", "kana_key", "name_key", "household_head_name")


def _connect_post_init(capture: Capture) -> None:
    """Residents made or loaded through the ORM (a test may create one directly)."""
    from django.apps import apps
    from django.db.models.signals import post_init

    model = apps.get_model("residents", "ResidentVersion")

    def receiver(sender: type, instance: object, **kwargs: object) -> None:
        values = instance.__dict__  # never instance.name: a deferred field would query
        capture.add_names(
            values.get("name"), values.get("name_kana"), values.get("household_head_name")
        )

    if _state.get("post_init"):
        return
    post_init.connect(receiver, sender=model, weak=False, dispatch_uid=_UID)
    _state["post_init"] = True
    _undo.append(lambda: post_init.disconnect(sender=model, dispatch_uid=_UID))
    _undo.append(lambda: _state.pop("post_init", None))


_UID = "kenshin-leak-guard"
_state: dict[str, bool] = {}


# --- the verdict ---------------------------------------------------------------------------------


def findings(capture: Capture) -> list[str]:
    """Masked, printable findings over everything captured (exempted tests left out)."""
    from kenshin.core.leakguard import NameMatcher, scan

    matcher = NameMatcher(capture.names)
    out: list[str] = []
    cache: dict[str, bool] = {}
    for s in capture.seen:
        if s.test in capture.exempt:
            continue
        if cache.get(s.text) is False:  # the same text (a repeated log line) was clean
            continue
        hits = scan(s.text, matcher, where=f"{s.channel} [{s.source}] @ {s.test}")
        cache[s.text] = bool(hits)
        out.extend(str(f) for f in hits)
    return out
