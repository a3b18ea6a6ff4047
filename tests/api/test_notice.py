"""A step that is usually quick says so when it is not (api/notice.py)."""

import time

from api.notice import notice_if_slow


def test_a_slow_step_prints_its_notice_once_while_it_runs():
    shown = []
    with notice_if_slow("compiling...", after=0.05, say=shown.append) as notice:
        time.sleep(0.3)
        seen_during = list(shown)
    assert seen_during == ["compiling..."]
    assert notice.shown
    time.sleep(0.1)
    assert shown == ["compiling..."]


def test_the_notice_goes_to_stderr_by_default(capsys):
    with notice_if_slow("compiling...", after=0.05):
        time.sleep(0.3)
    assert capsys.readouterr().err == "compiling...\n"


def test_a_quick_step_prints_nothing_even_later():
    shown = []
    with notice_if_slow("compiling...", after=0.2, say=shown.append) as notice:
        pass
    time.sleep(0.4)
    assert shown == []
    assert not notice.shown


def test_a_step_that_fails_cancels_its_notice():
    shown = []
    try:
        with notice_if_slow("compiling...", after=0.2, say=shown.append):
            raise KeyError("boom")
    except KeyError:
        pass
    time.sleep(0.4)
    assert shown == []
