"""Single scans from many concurrent requests, stored together: one verify, one append,
one fsync for all that arrived meanwhile.

    batcher = ScanBatcher(intake)                 # starts its thread
    result = await batcher.submit(device, venue, token, t_in, t_out, seq)

A check-in point posts one scan per person at the door, and many points post at once.
Handled one by one, each scan pays numpy's fixed costs (verify, dedupe, append) and its
own share of an fsync: a few hundred microseconds, a few thousand scans a second at most.
Here the event loop only queues the scan; one thread takes everything queued, runs
`ScanIntake.submit_groups` over it (each request its own group, so that a rate limit
refuses only the requests over it), and resolves the requests' futures. Under light load
a batch is one scan and nothing waits; under heavy load batches grow by themselves
(the next batch gathers while the current one is written), which is group commit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque

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
        self._pending: deque = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="qrtrace-scan-batcher",
                                        daemon=True)
        self._thread.start()

    async def submit(self, device: int, venue: int, token: bytes, t_in: int, t_out: int,
                     seq: int) -> dict:
        """Store one scan; returns {"seq", "status", "reason"?} once it is durable.
        Raises RateLimited when this scan's device, venue or person is over its limit."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the scan batcher is closed")
            self._pending.append((device, venue, token, t_in, t_out, seq, loop, future))
            self._cond.notify()
        return await future

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                take = min(len(self._pending), self.max_batch)
                items = [self._pending.popleft() for _ in range(take)]
            try:
                self._store(items)
            except Exception as exc:  # every waiting request must hear of it
                logger.exception("storing a batch of single scans failed")
                for item in items:
                    _resolve(item[6], item[7], None, exc)

    def _store(self, items: list) -> None:
        n = len(items)
        device, venue, token, t_in, t_out, seq, loops, futures = zip(*items, strict=True)
        batch = ScanBatch(np.array(venue, np.uint64), np.array(device, np.uint64),
                          np.array(seq, np.uint64), np.array(t_in, np.int64),
                          np.array(t_out, np.int64), np.array(token, dtype=TOKEN_DTYPE))
        outcome, refused = self.intake.submit_groups(batch, np.arange(n, dtype=np.int64))
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        names = np.array(STATUS_NAMES, dtype=object)[outcome.status].tolist()
        reasons = outcome.reason.tolist()
        by_loop: dict = {}
        for i in range(n):
            exc = refused.get(i)
            result = None if exc is not None else {"seq": seq[i], "status": names[i]}
            if result is not None and reasons[i] is not None:
                result["reason"] = reasons[i]
            by_loop.setdefault(loops[i], []).append((futures[i], result, exc))
        for loop, done in by_loop.items():
            loop.call_soon_threadsafe(_resolve_all, done)


def _resolve_all(done: list) -> None:
    for future, result, exc in done:
        if not future.done():
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)


def _resolve(loop, future, result, exc) -> None:
    loop.call_soon_threadsafe(_resolve_all, [(future, result, exc)])
