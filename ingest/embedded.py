"""The embedded log: in-process, the default on one machine (no Kafka).

Producers (the API, `qrtrace ingest`) `submit` records and get a future each; the worker
polls everything pending in one batch, appends it to the index in one call (one fsync
for all of them: group commit), and `checkpoint` then resolves those futures. A producer
that waits on its future knows its scans are durable. Records that are never
checkpointed (the process dies) were never acknowledged: the producer sends them again,
and the index's exact-duplicate rule absorbs what had been stored.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future

from ingest.log import Record


class EmbeddedLog:
    """A ScanLog in memory: a queue of submitted records with acknowledgement futures."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: deque[tuple[Record, Future]] = deque()
        self._inflight: dict[int, Future] = {}
        self._next_offset = 0
        self._closed = False
        self.dead_letters: list[tuple[Record, str]] = []

    def submit(self, value: bytes, headers: list[tuple[str, bytes]] | None = None,
               key: bytes | None = None) -> Future:
        """Queue one record; the future resolves (to its offset) once it is durable, or
        once it is dead-lettered. Raises RuntimeError if the log is closed."""
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the embedded log is closed")
            record = Record(value, list(headers or []), key, 0, self._next_offset, "embedded")
            self._next_offset += 1
            self._pending.append((record, future))
            self._cond.notify_all()
        return future

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to `max_records` pending records; waits up to timeout_s for the first."""
        with self._cond:
            if not self._pending and not self._closed:
                self._cond.wait(timeout_s)
            out = []
            while self._pending and len(out) < max_records:
                record, future = self._pending.popleft()
                self._inflight[record.offset] = future
                out.append(record)
            return out

    def checkpoint(self, records: list[Record]) -> None:
        """Acknowledge `records`: their producers' futures resolve."""
        with self._cond:
            futures = [(r.offset, self._inflight.pop(r.offset, None)) for r in records]
        for offset, future in futures:
            if future is not None and not future.done():
                future.set_result(offset)

    def dead_letter(self, record: Record, reason: str, value: bytes | None = None) -> None:
        """Keep the record and its reason in `dead_letters` (in memory)."""
        kept = record if value is None else Record(value, record.headers, record.key,
                                                   record.partition, record.offset)
        with self._cond:
            self.dead_letters.append((kept, reason))

    def ready(self) -> bool:
        """Always: records are in memory."""
        return True

    def lag(self) -> int:
        """Records submitted and not yet polled."""
        with self._cond:
            return len(self._pending)

    def close(self) -> None:
        """Refuse new records; pending ones stay unacknowledged (their futures fail)."""
        with self._cond:
            self._closed = True
            left = list(self._pending) + [(None, f) for f in self._inflight.values()]
            self._pending.clear()
            self._inflight.clear()
            self._cond.notify_all()
        for _, future in left:
            if not future.done():
                future.set_exception(
                    RuntimeError("the embedded log closed before this record was durable"))
