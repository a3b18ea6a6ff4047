"""Prometheus metrics of one running service (prometheus_client, its own registry).

    qrtrace_http_requests_total{route, method, status}
    qrtrace_http_request_seconds{route}                     (histogram)
    qrtrace_scans_total{status}                             accepted | duplicate | rejected
    qrtrace_scans_rejected_total{reason}
    qrtrace_rate_limited_total{scope}
    qrtrace_index_checkins                                  distinct check-ins stored
    qrtrace_audit_entries                                   entries in the audit log

With `qrtrace serve --workers N`, every process counts into prometheus_client's
multiprocess files (PROMETHEUS_MULTIPROC_DIR, set by the writer before any metric exists:
api.workers.metrics_dir) and /metrics, whichever process answers, sums them; the gauges
are the value most recently set by any process.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The service's counters; one instance per app, so tests never share counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("qrtrace_http_requests", "HTTP requests answered",
                                ("route", "method", "status"), registry=r)
        self.latency = Histogram("qrtrace_http_request_seconds", "time to answer",
                                 ("route",), registry=r,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, 1, 5))
        self.scans = Counter("qrtrace_scans", "scans by outcome", ("status",), registry=r)
        self.rejected = Counter("qrtrace_scans_rejected", "rejected scans by reason",
                                ("reason",), registry=r)
        self.rate_limited = Counter("qrtrace_rate_limited", "requests refused with 429",
                                    ("scope",), registry=r)
        self.checkins = Gauge("qrtrace_index_checkins", "distinct check-ins stored",
                              registry=r, multiprocess_mode="mostrecent")
        self.audit_entries = Gauge("qrtrace_audit_entries", "entries in the audit log",
                                   registry=r, multiprocess_mode="mostrecent")

    def count_scans(self, outcome) -> None:
        """Add one intake outcome (api.intake.IntakeOutcome): counts by status, and the
        rejected items by reason (a bounded set of texts)."""
        import numpy as np

        for status, n in outcome.counts().items():
            if n:
                self.scans.labels(status).inc(n)
        rejected = outcome.reason[outcome.reason != None]  # noqa: E711
        if rejected.shape[0]:
            reasons, n = np.unique(rejected.astype(str), return_counts=True)
            for reason, count in zip(reasons.tolist(), n.tolist(), strict=True):
                self.rejected.labels(reason).inc(count)

    def render(self, service) -> bytes:
        """The Prometheus text exposition, with the gauges read now."""
        self.checkins.set(len(service.index))
        self.audit_entries.set(service.audit.head()[0])
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if shared:  # every process's counts
            registry = CollectorRegistry()
            MultiProcessCollector(registry, shared)
            return generate_latest(registry)
        return generate_latest(self.registry)
