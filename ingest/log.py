"""The log that the worker reads scan records from, behind one small interface.

Two backends implement `ScanLog`: `ingest.embedded.EmbeddedLog` (in-process, the
default) and `ingest.kafka_log.KafkaLog` (a Kafka topic, for scale-out). The worker
polls a batch, makes it durable in the index, then calls `checkpoint` with that batch:
only then is the batch acknowledged (embedded) or its offsets saved (Kafka). A record
that can never be processed goes to `dead_letter` with its reason.

Errors::

    IngestError (Exception)     the root of the errors that ingest/ raises
    └── LogError                the log cannot be reached or its checkpoint is unusable
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class IngestError(Exception):
    """The root of the errors that ingest/ raises."""


class LogError(IngestError):
    """The log (a broker, an offsets file) cannot be used."""


class Record(NamedTuple):
    """One record of the log: its bytes, headers, and where it sits (partition, offset).

    A named tuple, not a dataclass: the worker makes one per Kafka record, and a frozen
    dataclass costs four times as much to build (1.9 µs against 0.4 µs).

    `value` is bytes, or a read-only memoryview of the fetched data for the large values
    of a Kafka fetch (ingest.kafka_records): read it as a buffer, or copy it with
    bytes()."""

    value: bytes | memoryview | None
    headers: list[tuple[str, bytes]] | tuple = ()
    key: bytes | None = None
    partition: int = 0
    offset: int = 0
    topic: str = ""


class ScanLog(Protocol):
    """What the worker needs from a log; it never knows which backend it has."""

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to `max_records` records after the last polled ones; [] after timeout_s."""
        ...

    def checkpoint(self, records: list[Record]) -> None:
        """`records` (the last poll's) are durable in the index: acknowledge them."""
        ...

    def dead_letter(self, record: Record, reason: str, value: bytes | None = None) -> None:
        """Keep `record` (or `value` in its place) with the reason it can never be processed.
        Delivered no later than the next `checkpoint` returns."""
        ...

    def ready(self) -> bool:
        """True once the log can deliver records (Kafka: partitions are assigned)."""
        ...

    def lag(self) -> int:
        """Records written to the log and not yet polled (-1 if unknown)."""
        ...

    def close(self) -> None:
        """Release the log's resources; unacknowledged records are polled again later."""
        ...
