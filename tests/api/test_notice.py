"""A step that is usually quick says so when it is not (api/notice.py)."""

import io
import time

from api.notice import notice_if_slow


def test_a_slow_step_prints_its_notice_once_while_it_runs():
    out = io.StringIO()
    with notice_if_slow("compiling...", after=0.05, stream=out) as notice:
        time.sleep(0.3)
        seen_during = out.getvalue()
    assert seen_during == "compiling...\n"
    assert notice.shown
    time.sleep(0.1)
    assert out.getvalue() == "compiling...\n"


def test_a_quick_step_prints_nothing_even_later():
    out = io.StringIO()
    with notice_if_slow("compiling...", after=0.2, stream=out) as notice:
        pass
    time.sleep(0.4)
    assert out.getvalue() == ""
    assert not notice.shown


def test_a_step_that_fails_cancels_its_notice():
    out = io.StringIO()
    try:
        with notice_if_slow("compiling...", after=0.2, stream=out):
            raise KeyError("boom")
    except KeyError:
        pass
    time.sleep(0.4)
    assert out.getvalue() == ""
