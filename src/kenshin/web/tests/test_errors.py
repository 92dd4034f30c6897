"""Error reports (the ADMINS mail, the debug page) carry no personal data (MN-03, DATA-01)."""

from __future__ import annotations

import sys

from django.test import RequestFactory
from django.views.debug import ExceptionReporter

# Built at run time: the HTML report quotes source lines, and the check is about values.
SEARCHED_NAME = "　".join(["ヤマダ", "タロウ"])
BIRTH = "-".join(["1985", "04", "01"])


def _report_of_failing_search() -> tuple[str, str]:
    request = RequestFactory().post("/residents/", {"kana": SEARCHED_NAME, "birth_date": BIRTH})
    secret_local = f"{SEARCHED_NAME} {BIRTH}"  # a frame variable holding personal data
    try:
        raise RuntimeError("search failed")
    except RuntimeError:
        exc_type, exc_value, tb = sys.exc_info()
    assert secret_local  # keep the local alive in the frame
    reporter = ExceptionReporter(request, exc_type, exc_value, tb)
    return reporter.get_traceback_text(), reporter.get_traceback_html()


def test_error_report_hides_post_values_and_frame_variables():
    text, html = _report_of_failing_search()
    for report in (text, html):
        assert SEARCHED_NAME not in report
        assert BIRTH not in report
    assert "search failed" in text  # the report itself is still useful
    assert "kana" in text  # parameter names stay, values are replaced
