"""The Kafka log: topic `qrtrace.scans` (keyed by venue), consumer group `qrtrace-index`.

A thin layer over kafka-python. Workers are static group members (KIP-345): a restarted
worker takes its partitions back without a rebalance, as long as it is back within the
session timeout.

Where a worker's durable state ends, per partition, is kept in two places:

- the offsets file beside the index (DATA/ingest/kafka-offsets.json: written to a
  temporary name, fsynced, renamed, the folder fsynced), saved right after the index
  append returns (durable: the index's write-ahead log) and the batch's dead letters are
  delivered;
- the group's committed offsets in Kafka, committed synchronously right after the file
  (retried through a broker restart, up to `commit_timeout_s`), and always before the next
  poll. kafka-python rebalances only inside `poll`, so when a partition is revoked from a
  live worker its committed offset is exactly where that worker's index ends. A poll that
  fails for a reason that may pass (the broker is restarting) returns nothing and is
  tried again.

A partition given to a worker is paused until the worker has positioned it at
max(its offsets file, the group's committed offset): its own index holds everything
before the first, and the index of the worker that had it before holds everything before
the second. Where the file is ahead (its predecessor in this folder was killed between
the file and the commit) the file's offset is committed at once.

What a kill -9 at any moment does:

- between the index append and the offsets file: the restarted worker reads the batch
  again; the index's exact-duplicate rule (person, venue, t_in) absorbs it, so nothing is
  lost or doubled; its dead letters may be sent twice (the DLQ is at least once; the
  `qrtrace-source` header names the record, so copies are recognisable);
- between the offsets file and the commit: the restarted worker starts from its file;
- in either window, if the partition is given to ANOTHER worker (with another data
  folder) before the killed one is back (it stays down beyond the session timeout, or a
  worker joins the group while it is down), the other worker starts from the committed
  offset and indexes that last batch again: those check-ins are then in both shards.
  Nothing is lost; nothing in qrtrace merges shards yet. This window cannot be closed
  without one store for both the index and the offsets.

Records that can never be processed go to `qrtrace.scans.dlq` with headers
`qrtrace-reason` and `qrtrace-source` (topic/partition/offset); `checkpoint` flushes them
before it saves the offsets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path

from ingest import kafka_receive
from ingest.kafka_records import install
from ingest.log import LogError, Record
from ingest.wire import REASON_HEADER

TOPIC = "qrtrace.scans"
DLQ_SUFFIX = ".dlq"
GROUP = "qrtrace-index"
SOURCE_HEADER = "qrtrace-source"
# on a dead letter sent without its value (too large for the DLQ topic): its length
TRUNCATED_HEADER = "qrtrace-truncated"
MAX_RECORD_BYTES = 16 * 1024 * 1024
# how long a client made at start waits for a first answer from the broker: a broker that
# is starting answers within it; a wrong address is named after it, not after
# kafka-python's 30 s (a review waited 33 s for `serve --kafka` to say so)
BOOTSTRAP_TIMEOUT_MS = 10_000

logger = logging.getLogger("qrtrace.ingest")


def _kafka_errors():
    from kafka.errors import KafkaError
    return KafkaError


class OffsetsFile:
    """The consumed offsets saved with the index: {partition: next offset} of one topic,
    and the topic's id (Kafka gives a topic a new id when it is deleted and made again:
    the offsets of the old one mean nothing in the new one)."""

    def __init__(self, path: Path, topic: str):
        self.path = path
        self.topic = topic
        self.offsets: dict[int, int] = {}
        self.topic_id: str | None = None
        if path.exists():
            try:
                doc = json.loads(path.read_bytes())
                stored = doc["topics"].get(topic, {})
                self.offsets = {int(p): int(o) for p, o in stored.items()}
                topic_id = doc.get("topic_ids", {}).get(topic)
                self.topic_id = None if topic_id is None else str(topic_id)
                self._doc = doc
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise LogError(f"{path}: not an offsets file ({type(exc).__name__})") from None
        else:
            self._doc = {"format": "qrtrace-kafka-offsets", "version": 1, "topics": {}}

    def save(self, offsets: dict[int, int]) -> None:
        """Merge `offsets` in and write the file atomically and durably."""
        self.offsets.update(offsets)
        self._doc["topics"][self.topic] = {str(p): o for p, o in sorted(self.offsets.items())}
        if self.topic_id is not None:
            self._doc.setdefault("topic_ids", {})[self.topic] = self.topic_id
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
                 client_id: str = "qrtrace-worker", instance_id: str | None = None,
                 session_timeout_s: float = 30.0, commit_timeout_s: float = 120.0,
                 fetch_max_bytes: int = 4 * MAX_RECORD_BYTES):
        """Connect to `bootstrap` (HOST:PORT) and subscribe to `topic` in `group`.

        instance_id: a static group member id (KIP-345), the same across restarts of one
        worker, so that a restarted worker takes its partitions back at once instead of
        waiting for the session of its killed predecessor to time out.
        commit_timeout_s: how long `checkpoint` keeps trying to commit (the broker may be
        restarting) before it raises LogError.

        Raises LogError if the broker cannot be reached or the offsets file is unusable.
        """
        from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer

        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.instance_id = instance_id
        self.dlq_topic = dlq_topic or topic + DLQ_SUFFIX
        self.offsets = OffsetsFile(Path(offsets_path), topic)
        self.commit_timeout_s = commit_timeout_s
        # partitions given to us and not yet positioned (paused until then)
        self._to_position: set = set()
        # partitions whose offsets file is ahead of the group's committed offset
        self._uncommitted: set[int] = set()
        log = self

        class _Listener(ConsumerRebalanceListener):
            # runs on the client's IO thread, inside the worker's poll (between batches):
            # no blocking client calls here
            def on_partitions_revoked(self, revoked):
                log._revoked(revoked, lost=False)

            def on_partitions_lost(self, lost):
                log._revoked(lost, lost=True)

            def on_partitions_assigned(self, assigned):
                log._assigned(assigned)

        kafka_receive.install()  # fewer copies of fetched bytes
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap, group_id=group, client_id=client_id,
                group_instance_id=instance_id, session_timeout_ms=int(session_timeout_s * 1000),
                enable_auto_commit=False, auto_offset_reset="earliest",
                max_partition_fetch_bytes=MAX_RECORD_BYTES, fetch_max_bytes=fetch_max_bytes,
                fetch_max_wait_ms=100, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            )
            self._consumer.subscribe([topic], listener=_Listener())
            # fetched record batches split in one call each, not a record at a time
            self._batched = install(self._consumer)
            # not idempotent: kafka-python's idempotent producer takes a record the
            # broker refuses as too large as fatal, and fails every later send
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap, client_id=client_id + "-dlq", acks="all",
                max_request_size=MAX_RECORD_BYTES, enable_idempotence=False,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            )
        except _kafka_errors() as exc:
            raise LogError(f"cannot reach Kafka at {bootstrap} within "
                           f"{BOOTSTRAP_TIMEOUT_MS // 1000} s: {exc}") from exc
        self._dlq_pending = 0
        self._dlq_sent: list = []  # (future or the error of its send, (key, headers, value))

    # ---- the group's calls (IO thread) ---------------------------------------------

    def _assigned(self, assigned) -> None:
        self._consumer.pause(*assigned)
        self._to_position = set(assigned)
        logger.info("assigned", extra={"fields": {
            "topic": self.topic, "partitions": sorted(tp.partition for tp in assigned)}})

    def _revoked(self, revoked, lost: bool) -> None:
        self._to_position -= set(revoked)
        behind = sorted(tp.partition for tp in revoked if tp.partition in self._uncommitted)
        fields = {"topic": self.topic, "partitions": sorted(tp.partition for tp in revoked)}
        if behind:
            # the next owner starts from the committed offset: it will index our last
            # batch of these partitions again
            logger.error("revoked before the commit of a durable batch",
                         extra={"fields": {**fields, "uncommitted": behind}})
        else:
            logger.info("lost" if lost else "revoked", extra={"fields": fields})
        self._uncommitted.difference_update(tp.partition for tp in revoked)

    # ---- the worker's calls --------------------------------------------------------

    def _position(self) -> None:
        """Start each newly given partition at max(offsets file, committed) and resume it."""
        from kafka.structs import OffsetAndMetadata

        todo = self._to_position & self._consumer.assignment()
        self._to_position = set(todo)
        self._check_topic_id()
        heal = {}
        for tp in sorted(todo):
            try:
                committed = self._consumer.committed(tp, timeout_ms=10_000)
            except _kafka_errors() as exc:
                logger.warning("committed offset unknown", extra={"fields": {
                    "partition": tp.partition, "error": str(exc)}})
                return  # stays paused; tried again at the next poll
            stored = self.offsets.offsets.get(tp.partition)
            starts = [o for o in (stored, committed) if o is not None]
            if starts:
                self._consumer.seek(tp, max(starts))
            if stored is not None and (committed is None or stored > committed):
                heal[tp] = OffsetAndMetadata(stored, "", -1)
                self._uncommitted.add(tp.partition)
        if heal:
            self._commit(heal)
        self._consumer.resume(*todo)
        self._to_position.clear()

    def _check_topic_id(self) -> None:
        """Forget the offsets file's offsets if they belong to an earlier topic of this
        name: after a topic is deleted and made again, its new records would otherwise
        be skipped up to the old offsets."""
        # the id comes with the metadata the assignment needed (Metadata v10+, Kafka 2.8+);
        # kafka-python keeps it on the consumer's cluster view only
        found = self._consumer._cluster.topic_id(self.topic)
        if found is None:
            return  # an older broker: nothing to compare
        found = str(found)
        known = self.offsets.topic_id
        if known is not None and known != found and self.offsets.offsets:
            logger.error("topic recreated: its saved offsets are dropped", extra={"fields": {
                "topic": self.topic, "old_topic_id": known, "topic_id": found,
                "dropped": {str(p): o for p, o in sorted(self.offsets.offsets.items())}}})
            self.offsets.offsets.clear()
        self.offsets.topic_id = found

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to `max_records` records of the assigned partitions."""
        try:
            if self._to_position:
                self._position()
            polled = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
            if self._to_position:  # this poll brought an assignment: none of its records
                self._position()
        except _kafka_errors() as exc:
            if not exc.retriable:
                raise LogError(f"polling {self.topic} failed: {exc}") from exc
            # the broker is away (restarting, say): nothing polled, try again later
            logger.warning("poll failed", extra={"fields": {
                "topic": self.topic, "error": f"{type(exc).__name__}: {exc}"}})
            time.sleep(min(timeout_s, 1.0))
            return []
        out = []
        for tp, messages in polled.items():
            if self._batched:  # already Records
                out.extend(messages)
                continue
            partition, topic = tp.partition, tp.topic
            out.extend([Record(m.value, m.headers or (), m.key, partition, m.offset, topic)
                        for m in messages])
        return out

    def checkpoint(self, records: list[Record]) -> None:
        """Deliver the dead letters, then save the next offsets: the file, then the group.

        Raises LogError if the group's offsets cannot be committed within
        commit_timeout_s."""
        from kafka.structs import OffsetAndMetadata

        if self._dlq_pending:
            self._deliver_dead_letters()
        nxt: dict[int, int] = {}
        for r in records:
            nxt[r.partition] = max(nxt.get(r.partition, 0), r.offset + 1)
        if not nxt:
            return
        self.offsets.save(nxt)
        # with any earlier commit that the group refused, of the partitions still ours
        owned = {tp.partition for tp in self._consumer.assignment()}
        self._uncommitted = (self._uncommitted & owned) | set(nxt)
        self._commit({self._tp(p): OffsetAndMetadata(self.offsets.offsets[p], "", -1)
                      for p in sorted(self._uncommitted)})

    def _tp(self, partition: int):
        from kafka import TopicPartition
        return TopicPartition(self.topic, partition)

    def _commit(self, offsets: dict) -> None:
        """Commit `offsets` to the group, retrying what may pass later (the broker is
        restarting) for up to commit_timeout_s; raises LogError after that."""
        deadline = time.monotonic() + self.commit_timeout_s
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            try:
                self._consumer.commit(offsets, timeout_ms=max(left_ms, 1))
                break
            except _kafka_errors() as exc:
                if not exc.retriable:
                    # the group went on without us (our session expired): our partitions
                    # are someone else's now, and they start from the committed offset
                    logger.error("commit refused", extra={"fields": {
                        "topic": self.topic,
                        "partitions": sorted(tp.partition for tp in offsets),
                        "error": f"{type(exc).__name__}: {exc}"}})
                    return
                if time.monotonic() >= deadline:
                    raise LogError(f"committing offsets of {self.topic} failed for "
                                   f"{self.commit_timeout_s:g} s: {exc}") from exc
                time.sleep(0.2)
        self._uncommitted.difference_update(tp.partition for tp in offsets)

    def dead_letter(self, record: Record, reason: str, value: bytes | None = None) -> None:
        """Send the record (or `value` in its place) to the DLQ topic with its reason.
        Delivered (or LogError) by the next `checkpoint`."""
        headers = [h for h in record.headers if h[0] not in (REASON_HEADER, SOURCE_HEADER)]
        headers += [(REASON_HEADER, reason.encode()[:1000]),
                    (SOURCE_HEADER, f"{record.topic}/{record.partition}/{record.offset}".encode())]
        value = record.value if value is None else value
        letter = (record.key, headers, None if value is None else bytes(value))
        self._dlq_sent.append((self._send_letter(*letter), letter))
        self._dlq_pending += 1

    def _send_letter(self, key, headers, value):
        """The producer's future for one dead letter, or the error that refused it at once
        (kafka-python refuses a record over max_request_size before sending it)."""
        try:
            return self._producer.send(self.dlq_topic, value=value, key=key, headers=headers)
        except _kafka_errors() as exc:
            return exc

    def _deliver_dead_letters(self) -> None:
        """Wait for every dead letter sent since the last checkpoint. One that the broker
        or the client refuses as too large goes again without its value and with its
        reason cut to 200 bytes (a header names its length; the record is still in its
        source topic, at the offset the source header names), so that one huge poison
        record cannot stop its partition. Raises LogError for any other failure: the
        offsets are then not saved, and the records are read again."""
        from kafka.errors import MessageSizeTooLargeError, RecordListTooLargeError

        too_large = (MessageSizeTooLargeError, RecordListTooLargeError)
        self._producer.flush()
        sent, self._dlq_sent, self._dlq_pending = self._dlq_sent, [], 0
        for attempt in (0, 1):
            again = []
            for outcome, (key, headers, value) in sent:
                error = outcome if isinstance(outcome, Exception) else None
                if error is None:
                    try:
                        outcome.get(timeout=self.commit_timeout_s)
                    except _kafka_errors() as exc:
                        error = exc
                if error is None:
                    continue
                if attempt == 0 and isinstance(error, too_large) and value:
                    logger.warning("dead letter too large for its topic: sent without its "
                                   "value", extra={"fields": {
                                       "topic": self.dlq_topic, "bytes": len(value),
                                       "source": dict(headers).get(SOURCE_HEADER, b"").decode()}})
                    stripped = [(k, v[:200] if k == REASON_HEADER else v) for k, v in headers]
                    stripped.append((TRUNCATED_HEADER, str(len(value)).encode()))
                    again.append((self._send_letter(key, stripped, b""), (key, stripped, b"")))
                    continue
                raise LogError(f"a dead letter could not be written to {self.dlq_topic}: "
                               f"{type(error).__name__}: {error}; the offsets are not saved")
            if not again:
                return
            self._producer.flush()
            sent = again

    def ready(self) -> bool:
        """True once the group has given this worker partitions and they are positioned."""
        return bool(self._consumer.assignment()) and not self._to_position

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

    def close(self, leave: bool = False) -> None:
        """Flush dead letters and close. A static member keeps its partitions for the
        session timeout (a restart takes them back without a rebalance); with `leave`,
        it is removed from the group at once, so that its partitions move now."""
        with contextlib.suppress(Exception):
            self._producer.flush(timeout=10)
            self._producer.close(timeout=10)
        with contextlib.suppress(Exception):
            self._consumer.close(autocommit=False)
        if leave and self.instance_id:
            leave_group(self.bootstrap, self.group, self.instance_id)


def leave_group(bootstrap: str, group: str, instance_id: str, timeout_s: float = 15.0) -> None:
    """Remove the static member `instance_id` from `group` (its partitions move at once).
    Gives up after timeout_s and logs it, without raising: the session timeout removes
    the member later."""
    def remove():
        from kafka.admin import KafkaAdminClient, MemberToRemove

        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="qrtrace-admin",
                                     bootstrap_timeout_ms=int(timeout_s * 1000),
                                     request_timeout_ms=int(timeout_s * 1000))
            try:
                admin.remove_group_members(group, [MemberToRemove(group_instance_id=instance_id)])
            finally:
                admin.close()
        except Exception as exc:
            failed.append(exc)

    failed: list[Exception] = []
    # a daemon thread: a broker that does not answer must not keep a stopping worker alive
    leaving = threading.Thread(target=remove, name="qrtrace-leave", daemon=True)
    leaving.start()
    leaving.join(timeout_s)
    fields = {"group": group, "instance_id": instance_id}
    if leaving.is_alive() or failed:
        error = str(failed[0]) if failed else f"no answer within {timeout_s:g} s"
        logger.warning("could not leave the group", extra={"fields": {**fields, "error": error}})
    else:
        logger.info("left the group", extra={"fields": fields})


def ensure_topics(bootstrap: str, topic: str = TOPIC, partitions: int = 1,
                  retention_days: int | None = None) -> None:
    """Create `topic` with `partitions` and its DLQ topic, unless they exist. With
    `retention_days`, the topics are made to keep records that long (retention.ms), as
    the index keeps check-ins: scans and dead letters hold personal tokens. A topic that
    exists and keeps records longer (or forever) is left as it is, with a warning in the
    log: its retention is the operator's to change.

    Raises LogError if the broker cannot be reached."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="qrtrace-admin",
                                 bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    except _kafka_errors() as exc:
        raise LogError(f"cannot reach Kafka at {bootstrap} within "
                       f"{BOOTSTRAP_TIMEOUT_MS // 1000} s: {exc}") from exc
    keep_ms = None if retention_days is None else retention_days * 86_400_000
    configs = {} if keep_ms is None else {"retention.ms": str(keep_ms)}
    try:
        for name, n in ((topic, partitions), (topic + DLQ_SUFFIX, 1)):
            try:
                admin.create_topics([NewTopic(name, n, 1, topic_configs=configs)])
                continue
            except TopicAlreadyExistsError:
                pass
            if keep_ms is None:
                continue
            described = admin.describe_configs(  # "all": a broker default too
                [ConfigResource(ConfigResourceType.TOPIC, name, configs=["retention.ms"])],
                config_filter="all")
            kept = int(described["topic"][name]["retention.ms"]["value"])
            if kept < 0 or kept > keep_ms:
                logger.warning("topic keeps records longer than the retention period", extra={
                    "fields": {"topic": name, "retention_ms": kept, "wanted_ms": keep_ms,
                               "fix": f"kafka-configs --alter --entity-type topics "
                                      f"--entity-name {name} --add-config "
                                      f"retention.ms={keep_ms}"}})
    finally:
        admin.close()
