"""Everything a running API needs, opened once from its Settings and closed at shutdown.

    service = Service.open(settings)    # keys, index, venues, registry, audit log, intake
    ...
    service.close()

The data folder holds, beside the index and the key ring: registry.sqlite3 (principals,
cases, QR points), venues.json, and audit/audit.log. With `settings.kafka`, scans are
produced to the topic and an in-process worker (consumer group qrtrace-index) indexes
them into this folder's index, which the officials' queries read.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from api.audit import AuditLog
from api.batcher import ScanBatcher
from api.cases import CaseService
from api.intake import IndexSink, KafkaSink, ScanIntake
from api.keystore import load_keyring
from api.metrics import Metrics
from api.ratelimit import ScanLimiter
from api.registry import Registry
from api.settings import Settings
from decoder import KeyRing, RevocationList
from ingest.runtime import index_path, offsets_path
from tracing.index import CheckinIndex
from tracing.venues import VenueTable

logger = logging.getLogger("qrtrace.api")


class Service:
    """The opened parts of the service (see the module docstring).

    Attributes: settings, index, registry, audit, venues, intake, cases, and
    admin_token_created (the admin token made on this first start, to print once).
    """

    def __init__(self, settings: Settings) -> None:
        """Open (creating on first use) every part in `settings.data`. Raises the parts'
        own errors (KeystoreError, TracingError, RegistryError, AuditError, LogError)."""
        self.settings = settings
        self.metrics = Metrics()
        data = Path(settings.data)
        data.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._keyring: KeyRing | None = load_keyring(data)
        self._revoked: RevocationList | None = None
        self._closers: list = []
        self._closing = False
        self._kafka_log = None
        self._kafka_worker = None
        self.index = CheckinIndex.open(index_path(data), retention_days=settings.retention_days)
        self._closers.append(self.index.close)
        self.registry = Registry(data)
        self._closers.insert(0, self.registry.close)
        self.audit = AuditLog(data / "audit" / "audit.log")
        self._closers.insert(0, self.audit.close)
        self.venues = VenueTable.load(data)
        self.index.set_venue_dwell(*self.venues.resolved_dwell())
        self.admin_token_created = self._ensure_admin()
        sink = IndexSink(self.index) if settings.kafka is None else self._kafka_sink()
        self.intake = ScanIntake(
            sink, self.keyring, self.revoked, ScanLimiter(settings.scan_limits),
            retention_days=settings.retention_days,
            future_skew_s=settings.limits.future_skew_s)
        self.batcher = ScanBatcher(self.intake, on_outcome=self.metrics.count_scans)
        self._closers.insert(0, self.batcher.close)
        self._retention_stop = threading.Event()
        self._retention = threading.Thread(target=self._retention_loop, daemon=True,
                                           name="qrtrace-retention")
        self._retention.start()
        self._closers.insert(0, self._stop_retention)
        self.cases = CaseService(self.registry, self.index, self.audit, self.keyring)
        self._closers.insert(0, self.cases.close)

    def _ensure_admin(self) -> str | None:
        token = self.settings.admin_token
        if token is not None:
            self.registry.ensure_admin_token(token.value)
            return None
        if self.registry.has_admin():
            return None
        _, created = self.registry.add_principal("admin", "admin")
        return created

    def _kafka_sink(self) -> KafkaSink:
        from kafka import KafkaProducer

        from ingest.kafka_log import KafkaLog, ensure_topics
        from ingest.worker import Worker

        bootstrap = self.settings.kafka
        ensure_topics(bootstrap, self.settings.topic)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2,
                                 max_request_size=32 * 1024 * 1024)
        log = KafkaLog(bootstrap, offsets_path(self.settings.data), topic=self.settings.topic,
                       group=self.settings.group)
        producer.partitions_for(self.settings.topic)  # metadata now: fail fast, not later
        self._kafka_log = log
        worker = self._kafka_worker = Worker(log, self.index, self.keyring())
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
        return KafkaSink(producer, self.settings.topic)

    # ---- things that change while serving ------------------------------------------

    def keyring(self) -> KeyRing:
        """The current key ring (reloaded after a rotation through the API)."""
        with self._lock:
            if self._keyring is None:
                self._keyring = load_keyring(self.settings.data)
            return self._keyring

    def reload_keyring(self) -> None:
        """Read the key ring again (after a rotation or retirement), for the intake and
        for the Kafka worker, which holds its own reference."""
        with self._lock:
            self._keyring = None
        if self._kafka_worker is not None:
            self._kafka_worker.keyring = self.keyring()

    def revoked(self) -> RevocationList:
        """Revoked personal and venue token ids."""
        with self._lock:
            if self._revoked is None:
                self._revoked = RevocationList.of(self.registry.revoked_token_ids())
            return self._revoked

    def reload_revoked(self) -> None:
        """Forget the cached revocation list (after a revocation)."""
        with self._lock:
            self._revoked = None

    def save_venues(self, venues) -> None:
        """Add or replace venues: venues.json and the index's dwell times."""
        with self._lock:
            self.venues.update(venues)
            self.venues.save(self.settings.data)
        self.index.set_venue_dwell(*self.venues.resolved_dwell())
        self.cases.forget_pages()  # names and visit ends may have changed

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
                removed = self.index.purge(int(time.time()))
                if removed:
                    self.cases.forget_pages()
                logger.info("retention purge", extra={"fields": {"removed": removed}})
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
        log = self._kafka_log
        if log is not None and not log.ready():
            problems.append("the Kafka consumer has not been given its partitions yet")
        return problems
