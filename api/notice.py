"""A line on stderr when a step that is usually quick is not: the first run after an
install compiles the numba kernels (half a minute or more) where later runs load them
from the cache in well under a second, and a command that sits silent meanwhile looks
hung."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO


@dataclass
class SlowNotice:
    """Whether the notice was printed (the step took longer than its `after`)."""

    shown: bool = False


@contextmanager
def notice_if_slow(message: str, after: float = 2.0,
                   stream: TextIO | None = None) -> Iterator[SlowNotice]:
    """Print `message` to `stream` (stderr) if the block is still running `after`
    seconds in; yields a SlowNotice that says whether it was printed."""
    out = sys.stderr if stream is None else stream
    notice = SlowNotice()
    lock = threading.Lock()
    done = False

    def show() -> None:
        with lock:
            if done:
                return
            notice.shown = True
            print(message, file=out, flush=True)

    timer = threading.Timer(after, show)
    timer.daemon = True
    timer.start()
    try:
        yield notice
    finally:
        with lock:
            done = True
        timer.cancel()
