"""A line on stderr when a step that is usually quick is not: the first run after an
install compiles the numba kernels (half a minute or more) where later runs load them
from the cache in well under a second, and a command that sits silent meanwhile looks
hung."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class SlowNotice:
    """Whether the notice was printed (the step took longer than its `after`)."""

    shown: bool = False


@contextmanager
def notice_if_slow(message: str, after: float = 2.0,
                   say: Callable[[str], None] | None = None) -> Iterator[SlowNotice]:
    """Show `message` if the block is still running `after` seconds in, with `say`
    (default: a line on stderr; a progress bar's own write keeps the bar whole);
    yields a SlowNotice that says whether it was shown."""
    show_line = say or (lambda text: print(text, file=sys.stderr, flush=True))
    notice = SlowNotice()
    lock = threading.Lock()
    done = False

    def show() -> None:
        with lock:
            if done:
                return
            notice.shown = True
            show_line(message)

    timer = threading.Timer(after, show)
    timer.daemon = True
    timer.start()
    try:
        yield notice
    finally:
        with lock:
            done = True
        timer.cancel()
