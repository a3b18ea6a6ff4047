"""Single scans from many concurrent requests, stored together: one verify, one append,
one fsync for all that arrived meanwhile.

    batcher = ScanBatcher(intake)                 # starts its thread
    result = await batcher.submit(device, venue, token, t_in, t_out, seq)

A check-in point posts one scan per person at the door, and many points post at once.
Handled one by one, each scan pays numpy's fixed costs (verify, dedupe, append) and its
own share of an fsync: a few hundred microseconds, a few thousand scans a second at most.
Here the event loop only gathers the scan, and hands what it gathered to one thread once
a turn (from a callback behind the requests that were ready with it); the thread takes
everything handed over, runs
`ScanIntake.submit_groups` over it (each request its own group, so that a rate limit
refuses only the requests over it), and resolves the requests' futures. Under light load
a batch is one scan and nothing waits; under heavy load batches grow by themselves
(the next batch gathers while the current one is written), which is group commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading

import numpy as np

from api.intake import STATUS_NAMES, ScanIntake
from ingest.events import TOKEN_DTYPE, ScanBatch

logger = logging.getLogger("qrtrace.api")
MAX_BATCH = 4096


class ScanBatcher:
    """Coalesces single scans into batches for `intake` (see the module docstring)."""

    def __init__(self, intake: ScanIntake, on_outcome=None, max_batch: int = MAX_BATCH
                 ) -> None:
        """`on_outcome(IntakeOutcome)` is called after each stored batch (metrics)."""
        self.intake = intake
        self.on_outcome = on_outcome
        self.max_batch = max_batch
        # per event loop, the scans submitted since its last hand-over; the loop hands
        # them to the thread as one list, from a callback that runs after the requests
        # that were ready with them (a lock and a wake-up per loop turn, not per scan)
        self._gathering: dict[asyncio.AbstractEventLoop, list] = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()  # (loop, scans) lists
        self._lock = threading.Lock()  # closing vs handing over
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="qrtrace-scan-batcher",
                                        daemon=True)
        self._thread.start()

    async def submit(self, device: int, venue: int, token: bytes, t_in: int, t_out: int,
                     seq: int) -> dict:
        """Store one scan; returns {"seq", "status", "reason"?} once it is durable.
        Raises RateLimited when this scan's device, venue or person is over its limit."""
        if self._closed:
            raise RuntimeError("the scan batcher is closed")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        gathering = self._gathering.get(loop)
        if gathering is None:
            gathering = self._gathering[loop] = []
            loop.call_soon(self._hand_over, loop)
        gathering.append((device, venue, token, t_in, t_out, seq, future))
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """In `loop`: queue what it gathered for the thread."""
        scans = self._gathering.pop(loop)
        with self._lock:
            if not self._closed:
                self._queue.put((loop, scans))
                return
        _resolve_all([(s[6], None, RuntimeError("the scan batcher is closed"))
                      for s in scans])

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        closing = False
        while not closing:
            work = [self._queue.get()]  # waits without the GIL
            while True:  # and whatever else was handed over meanwhile
                try:
                    work.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if work[-1] is None:
                closing = True
                work.pop()
            items = [(*scan[:6], loop, scan[6]) for loop, scans in work for scan in scans]
            for at in range(0, len(items), self.max_batch):
                part = items[at:at + self.max_batch]
                try:
                    self._store(part)
                except Exception as exc:  # every waiting request must hear of it
                    logger.exception("storing a batch of single scans failed")
                    _resolve_by_loop(part, [(item[7], None, exc) for item in part])

    def _store(self, items: list) -> None:
        n = len(items)
        device, venue, token, t_in, t_out, seq, _loops, futures = zip(*items, strict=True)
        batch = ScanBatch(np.array(venue, np.uint64), np.array(device, np.uint64),
                          np.array(seq, np.uint64), np.array(t_in, np.int64),
                          np.array(t_out, np.int64), np.array(token, dtype=TOKEN_DTYPE))
        outcome, refused = self.intake.submit_groups(batch, np.arange(n, dtype=np.int64))
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        names = np.array(STATUS_NAMES, dtype=object)[outcome.status].tolist()
        reasons = outcome.reason.tolist()
        done = []
        for i in range(n):
            exc = refused.get(i)
            result = None if exc is not None else {"seq": seq[i], "status": names[i]}
            if result is not None and reasons[i] is not None:
                result["reason"] = reasons[i]
            done.append((futures[i], result, exc))
        _resolve_by_loop(items, done)


def _resolve_by_loop(items: list, done: list) -> None:
    """Resolve each item's future (done[i]) from its own loop: one call a loop."""
    by_loop: dict = {}
    for item, outcome in zip(items, done, strict=True):
        by_loop.setdefault(item[6], []).append(outcome)
    for loop, outcomes in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_resolve_all, outcomes)


def _resolve_all(done: list) -> None:
    for future, result, exc in done:
        if not future.done():
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

