"""Everything a running API needs, opened once from its Settings and closed at shutdown.

    service = Service.open(settings)    # keys, index, venues, registry, audit log, intake
    ...
    service.close()

The data folder holds, beside the index and the key ring: registry.sqlite3 (principals,
cases, QR points), venues.json, and audit/audit.log. With `settings.kafka`, scans are
produced to the topic and an in-process worker (consumer group qrtrace-index) indexes
them into this folder's index, which the officials' queries read.

With `writer` (a follower process of `qrtrace serve --workers N`, api/workers.py), the
index is a read-only tracing.follower.IndexFollower of the folder and the checked scans
go to the writer process (api/writer.py), which owns the index, the rate limits, the
retention purge and Kafka. What any process changes reaches the others through the data
folder: the registry (SQLite, re-read within RECHECK_S), the audit log (appended under
flock), keys.json and venues.json (a stat at each use: a venue saved through one process
is known to the next request of any other), and the revocations (re-read within
RECHECK_S).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from api.audit import AuditLog, audit_path
from api.batcher import ScanBatcher
from api.cases import CaseService
from api.filewatch import FileWatch
from api.intake import IndexSink, KafkaSink, LocalStore, ScanIntake
from api.keystore import KEYS_FILE, load_keyring
from api.metrics import Metrics
from api.ratelimit import ScanLimiter
from api.registry import Registry
from api.revocations import export_revocations
from api.settings import Settings
from decoder import KeyRing, RevocationList
from ingest.runtime import index_path, offsets_path, private_data_folder
from tracing.index import CheckinIndex
from tracing.venues import VENUES_FILE, VenueTable

logger = logging.getLogger("qrtrace.api")
RECHECK_S = 1.0  # how soon a revocation made by another process is seen


@contextmanager
def _file_lock(path: Path):
    """An exclusive flock on `path` (created if needed), held for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Service:
    """The opened parts of the service (see the module docstring).

    Attributes: settings, index, registry, audit, venues, intake, cases, and
    admin_token_created (the admin token made on this first start, to print once).
    """

    def __init__(self, settings: Settings, writer=None, process: str = "writer") -> None:
        """Open (creating on first use) every part in `settings.data`; with `writer` (an
        api.writer.RemoteStore), as a follower process named `process` ("follower 2",
        shown by /healthz). Raises the parts' own errors
        (KeystoreError, TracingError, RegistryError, AuditError, LogError)."""
        self.settings = settings
        self.metrics = Metrics()
        data = private_data_folder(settings.data)  # citizens' movements: owner only
        self._lock = threading.Lock()
        self._keyring: KeyRing | None = load_keyring(data)
        self._revoked: RevocationList | None = None
        self._closers: list = []
        self._closing = False
        self._kafka_log = None
        self._kafka_writer: KafkaSink | None = None  # with --kafka: its failing, if any
        self.writer = writer
        self.process = process
        self.readiness_checks: list = []  # callables: a problem (str) or None
        if writer is None:
            self.index = CheckinIndex.open(index_path(data),
                                           retention_days=settings.retention_days)
            self.index.reserve_key_tables()  # every scan of the server is appended here
        else:
            from tracing.follower import IndexFollower
            self.index = IndexFollower.open(index_path(data))
            self._closers.append(writer.close)
        self._closers.append(self.index.close)
        self.registry = Registry(data)
        self._closers.insert(0, self.registry.close)
        self.audit = AuditLog(audit_path(data),
                              sync_wait=settings.audit_fsync_before_answer)
        self._closers.insert(0, self.audit.close)
        self._venues = VenueTable.load(data)
        self._venues_watch = FileWatch(data / VENUES_FILE)
        self._keys_watch = FileWatch(data / KEYS_FILE)
        self._revoked_checked = time.monotonic()
        self.admin_token_created = None
        if writer is None:
            self.index.set_venue_dwell(*self._venues.resolved_dwell())
            self.admin_token_created = self._ensure_admin()
            export_revocations(data, self.registry)  # for Kafka workers elsewhere
            sink = IndexSink(self.index) if settings.kafka is None else self._kafka_sink()
            store = LocalStore(sink, ScanLimiter(settings.scan_limits))
        else:
            store = writer
        self.intake = ScanIntake(
            store, self.keyring, self.revoked,
            retention_days=settings.retention_days,
            future_skew_s=settings.limits.future_skew_s)
        self.batcher = ScanBatcher(self.intake, on_outcome=self.metrics.count_scans)
        self._closers.insert(0, self.batcher.close)
        if writer is None:
            self._retention_stop = threading.Event()
            self._retention = threading.Thread(target=self._retention_loop, daemon=True,
                                               name="qrtrace-retention")
            self._retention.start()
            self._closers.insert(0, self._stop_retention)
        shards = self._shards(settings)
        self.cases = CaseService(self.registry, self.index, self.audit, self.keyring,
                                 venues=lambda: self.venues, shards=shards)
        self._closers.insert(0, self.cases.close)

    def _shards(self, settings: Settings) -> list:
        """Clients of the shard servers that traces cover besides this index; each is
        also a readiness check (a trace without one of them would be wrong)."""
        if not settings.shards:
            return []
        from api.shard_client import RemoteShard

        if settings.shard_token is None:
            raise ValueError("shards need a shard token (QRTRACE_SHARD_TOKEN)")
        shards = [RemoteShard(url, settings.shard_token.value, timeout_s=10.0)
                  for url in settings.shards]
        for shard in shards:
            self.readiness_checks.append(shard.problem)
            self._closers.insert(0, shard.close)
        return shards

    def _ensure_admin(self) -> str | None:
        token = self.settings.admin_token
        if token is not None:
            if revoked := self.registry.ensure_admin_token(token.value):
                logger.warning("admin tokens revoked: QRTRACE_ADMIN_TOKEN is the admin's "
                               "token now", extra={"fields": {"principals": revoked}})
            return None
        if self.registry.has_admin():
            return None
        _, created = self.registry.add_principal("admin", "admin")
        return created

    def _kafka_sink(self) -> KafkaSink:
        from kafka import KafkaProducer

        from ingest.kafka_log import BOOTSTRAP_TIMEOUT_MS, KafkaLog, ensure_topics
        from ingest.worker import Worker

        bootstrap = self.settings.kafka
        ensure_topics(bootstrap, self.settings.topic,
                      retention_days=self.settings.retention_days)
        # not idempotent: kafka-python's idempotent producer takes a record the broker
        # refuses (too large) as fatal, and then fails every later send; the index
        # counts a scan sent twice as a duplicate anyway
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2,
                                 max_request_size=32 * 1024 * 1024, enable_idempotence=False,
                                 bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
        log = KafkaLog(bootstrap, offsets_path(self.settings.data), topic=self.settings.topic,
                       group=self.settings.group)
        producer.partitions_for(self.settings.topic)  # metadata now: fail fast, not later
        self._kafka_log = log
        # the worker asks self.keyring for the current ring once a batch: a rotation
        # made through any process reaches it
        worker = Worker(log, self.index, self.keyring, revoked=self.revoked)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), name="qrtrace-worker",
                                  daemon=True)
        thread.start()

        def close() -> None:
            stop.set()
            thread.join(timeout=30)
            log.close()
            producer.close(timeout=10)

        self._closers.insert(0, close)
        self._kafka_writer = KafkaSink(producer, self.settings.topic)
        return self._kafka_writer

    # ---- things that change while serving ------------------------------------------

    def keyring(self) -> KeyRing:
        """The current key ring: reloaded after a rotation through this process at
        once, after one through another process (or the CLI) at the next use."""
        with self._lock:
            if self._keyring is None or self._keys_watch.changed():
                self._keyring = load_keyring(self.settings.data)
            return self._keyring

    def reload_keyring(self) -> None:
        """Read the key ring again (after a rotation or retirement), here and in the
        writer process."""
        with self._lock:
            self._keyring = None
        self.keyring()
        if self.writer is not None:
            self.writer.reload("keys")

    def revoked(self) -> RevocationList:
        """Revoked personal and venue token ids: reloaded after a revocation through
        this process at once, after one through another process within RECHECK_S."""
        with self._lock:
            now = time.monotonic()
            if self._revoked is None or now - self._revoked_checked >= RECHECK_S:
                self._revoked = RevocationList.of(self.registry.revoked_token_ids())
                self._revoked_checked = now
            return self._revoked

    def reload_revoked(self) -> None:
        """Forget the cached revocation list (after a revocation), here and in the
        writer process."""
        with self._lock:
            self._revoked = None
        if self.writer is not None:
            self.writer.reload("revoked")

    @property
    def venues(self) -> VenueTable:
        """The venue table (venues.json), as last saved by any process."""
        if self._venues_watch.changed():
            self.reload_venues()
        return self._venues

    def save_venues(self, venues) -> None:
        """Add or replace venues: venues.json (read, changed and written under a lock
        shared by the server's processes) and the index's dwell times."""
        data = Path(self.settings.data)
        with _file_lock(data / "venues.lock"):
            table = VenueTable.load(data)
            table.update(venues)
            table.save(data)
        with self._lock:
            self._venues = table
            self._venues_watch.seen_now()
        if self.writer is None:
            self.index.set_venue_dwell(*table.resolved_dwell())
        else:
            self.writer.reload("venues")  # the writer sets the dwell times
            self.index.refresh()
        self.cases.forget_pages()  # names and visit ends may have changed

    def reload_venues(self) -> None:
        """Read venues.json again (saved by another process); the writer applies the
        dwell times to the index, a follower reads them from it."""
        with self._lock:
            table = self._venues = VenueTable.load(self.settings.data)
            self._venues_watch.seen_now()
        if self.writer is None:
            self.index.set_venue_dwell(*table.resolved_dwell())
        else:
            self.index.refresh()
        cases = getattr(self, "cases", None)
        if cases is not None:
            cases.forget_pages()

    def close(self) -> None:
        """Stop the Kafka worker (if any) and close every part."""
        self._closing = True
        for close in self._closers:
            try:
                close()
            except Exception:  # closing the rest matters more than one failure
                logger.exception("error while closing the service")

    def _retention_loop(self) -> None:
        """Delete expired check-ins from every file: a minute after start, then every
        settings.purge_every_s (the purge rewrites the base segment and holds appends
        for that long, so it is not run more often than needed)."""
        wait = min(60.0, self.settings.purge_every_s)
        while not self._retention_stop.wait(wait):
            wait = self.settings.purge_every_s
            try:
                now = int(time.time())
                removed = self.index.purge(now)
                # a case whose window ended before the horizon has no check-in left
                cases = self.registry.delete_cases_ended_before(
                    now - self.index.retention_days * 86400)
                if removed or cases:
                    self.cases.forget_pages()
                logger.info("retention purge", extra={"fields": {"removed": removed,
                                                                 "cases_deleted": cases}})
            except Exception:  # keep serving; the next round tries again
                logger.exception("retention purge failed")

    def _stop_retention(self) -> None:
        self._retention_stop.set()
        self._retention.join(timeout=60)

    def readiness_problems(self) -> list[str]:
        """What keeps the service from taking scans and queries ([] when ready)."""
        problems = []
        if self._closing:
            problems.append("the service is shutting down")
        problems += [p for check in self.readiness_checks if (p := check()) is not None]
        log = self._kafka_log
        if log is not None and not log.ready():
            problems.append(
                f"the Kafka consumer has not been given partitions of {log.topic} (yet): "
                f"if a qrtrace worker runs in its group {log.group!r} too, the topic "
                "needs a partition for each member, or the worker another --group")
        if self._kafka_writer is not None and self._kafka_writer.failing is not None:
            problems.append(self._kafka_writer.failing)
        return problems
