"""A step that is usually quick says so when it is not (api/notice.py)."""

import time

from api.notice import notice_if_slow


def _wait_for(shown: list) -> None:
    """Let a slow step run until its notice shows (on a loaded machine the timer's
    thread may wake late), for at most 10 s."""
    deadline = time.monotonic() + 10
    while not shown and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_slow_step_prints_its_notice_once_while_it_runs():
    shown = []
    with notice_if_slow("compiling...", after=0.05, say=shown.append) as notice:
        _wait_for(shown)
        time.sleep(0.1)
        seen_during = list(shown)
    assert seen_during == ["compiling..."]
    assert notice.shown
    time.sleep(0.1)
    assert shown == ["compiling..."]


def test_the_notice_goes_to_stderr_by_default(capsys):
    with notice_if_slow("compiling...", after=0.05) as notice:
        deadline = time.monotonic() + 10
        while not notice.shown and time.monotonic() < deadline:
            time.sleep(0.01)
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
