"""The Kafka log: topic `qrtrace.scans` (keyed by venue), consumer group `qrtrace-index`.

A thin layer over kafka-python. The consumed offsets live in a file beside the index
(DATA/ingest/kafka-offsets.json, written to a temporary name, fsynced, renamed, the folder
fsynced) right after the index append returns; the group's committed offsets follow, for
tools and for other workers. When the worker is given a partition it seeks to the file's
offset (what this index holds); a partition it never had starts at the group's committed
offset, else at the beginning. (A partition that moves between workers with their own
data folders may thus be read twice across shards; the query merge dedupes by
(person, venue, t_in).) A worker killed between the
index append and the offsets file replays that batch on restart; the index's
exact-duplicate rule (person, venue, t_in) absorbs it, so nothing is lost or doubled.

Records that can never be processed go to `qrtrace.scans.dlq` with headers
`qrtrace-reason` and `qrtrace-source` (topic/partition/offset); `checkpoint` flushes them
before it saves the offsets.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ingest.log import LogError, Record
from ingest.wire import REASON_HEADER

TOPIC = "qrtrace.scans"
DLQ_SUFFIX = ".dlq"
GROUP = "qrtrace-index"
SOURCE_HEADER = "qrtrace-source"
MAX_RECORD_BYTES = 16 * 1024 * 1024


def _kafka_errors():
    from kafka.errors import KafkaError
    return KafkaError


class OffsetsFile:
    """The consumed offsets saved with the index: {partition: next offset} of one topic."""

    def __init__(self, path: Path, topic: str):
        self.path = path
        self.topic = topic
        self.offsets: dict[int, int] = {}
        if path.exists():
            try:
                doc = json.loads(path.read_bytes())
                stored = doc["topics"].get(topic, {})
                self.offsets = {int(p): int(o) for p, o in stored.items()}
                self._doc = doc
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise LogError(f"{path}: not an offsets file ({type(exc).__name__})") from None
        else:
            self._doc = {"format": "qrtrace-kafka-offsets", "version": 1, "topics": {}}

    def save(self, offsets: dict[int, int]) -> None:
        """Merge `offsets` in and write the file atomically and durably."""
        self.offsets.update(offsets)
        self._doc["topics"][self.topic] = {str(p): o for p, o in sorted(self.offsets.items())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(temp, "wb") as out:
            out.write(json.dumps(self._doc).encode())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class KafkaLog:
    """A ScanLog over a Kafka topic, its consumer group, and its dead-letter topic."""

    def __init__(self, bootstrap: str, offsets_path: str | os.PathLike, *, topic: str = TOPIC,
                 group: str = GROUP, dlq_topic: str | None = None,
                 client_id: str = "qrtrace-worker", instance_id: str | None = None):
        """Connect to `bootstrap` (HOST:PORT) and subscribe to `topic` in `group`.

        instance_id: a static group member id (KIP-345), the same across restarts of one
        worker, so that a restarted worker takes its partitions back at once instead of
        waiting for the session of its killed predecessor to time out.

        Raises LogError if the broker cannot be reached or the offsets file is unusable.
        """
        from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer

        self.topic = topic
        self.dlq_topic = dlq_topic or topic + DLQ_SUFFIX
        self.offsets = OffsetsFile(Path(offsets_path), topic)
        log = self

        class _Seek(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                pass  # every polled batch is checkpointed before the next poll

            def on_partitions_assigned(self, assigned):
                log._seek(assigned)

        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap, group_id=group, client_id=client_id,
                group_instance_id=instance_id, session_timeout_ms=30000,
                enable_auto_commit=False, auto_offset_reset="earliest",
                max_partition_fetch_bytes=MAX_RECORD_BYTES, fetch_max_bytes=4 * MAX_RECORD_BYTES,
                fetch_max_wait_ms=100,
            )
            self._consumer.subscribe([topic], listener=_Seek())
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap, client_id=client_id + "-dlq", acks="all",
                max_request_size=MAX_RECORD_BYTES,
            )
        except _kafka_errors() as exc:
            raise LogError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
        self._dlq_pending = 0

    def _seek(self, assigned) -> None:
        # runs on the client's IO thread: no blocking client calls here
        for tp in assigned:
            stored = self.offsets.offsets.get(tp.partition)
            if stored is not None:
                self._consumer.seek(tp, stored)

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to `max_records` records of the assigned partitions."""
        try:
            polled = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except _kafka_errors() as exc:
            raise LogError(f"polling {self.topic} failed: {exc}") from exc
        out = []
        for tp, messages in polled.items():
            out.extend(Record(m.value, list(m.headers or []), m.key, tp.partition, m.offset,
                              tp.topic) for m in messages)
        return out

    def checkpoint(self, records: list[Record]) -> None:
        """Deliver the dead letters, then save the next offsets (file, then the group)."""
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        if self._dlq_pending:
            self._producer.flush()
            self._dlq_pending = 0
        nxt: dict[int, int] = {}
        for r in records:
            nxt[r.partition] = max(nxt.get(r.partition, 0), r.offset + 1)
        if not nxt:
            return
        self.offsets.save(nxt)
        commit = {TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1)
                  for p, o in nxt.items()}
        with contextlib.suppress(Exception):  # the file is the truth; this is a courtesy
            self._consumer.commit_async(commit)

    def dead_letter(self, record: Record, reason: str, value: bytes | None = None) -> None:
        """Send the record (or `value` in its place) to the DLQ topic with its reason."""
        headers = [h for h in record.headers if h[0] not in (REASON_HEADER, SOURCE_HEADER)]
        headers += [(REASON_HEADER, reason.encode()[:1000]),
                    (SOURCE_HEADER, f"{record.topic}/{record.partition}/{record.offset}".encode())]
        self._producer.send(self.dlq_topic, value=record.value if value is None else value,
                            key=record.key, headers=headers)
        self._dlq_pending += 1

    def ready(self) -> bool:
        """True once the group has given this worker partitions."""
        return bool(self._consumer.assignment())

    def lag(self) -> int:
        """Records in the assigned partitions past this worker's position."""
        total = 0
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                return -1
            try:
                total += max(0, high - self._consumer.position(tp, timeout_ms=1000))
            except _kafka_errors():
                return -1
        return total

    def close(self) -> None:
        """Flush dead letters and leave the group."""
        with contextlib.suppress(Exception):
            self._producer.flush(timeout=10)
            self._producer.close(timeout=10)
        with contextlib.suppress(Exception):
            self._consumer.close(autocommit=False)


def ensure_topics(bootstrap: str, topic: str = TOPIC, partitions: int = 1) -> None:
    """Create `topic` with `partitions` and its DLQ topic, unless they exist.

    Raises LogError if the broker cannot be reached."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="qrtrace-admin")
    except _kafka_errors() as exc:
        raise LogError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        for name, n in ((topic, partitions), (topic + DLQ_SUFFIX, 1)):
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, n, 1)])
    finally:
        admin.close()
