"""The running service deletes check-ins older than its retention period by itself."""

from __future__ import annotations

import time

import numpy as np

from api.service import Service
from api.settings import Settings

DAY = 86400


def test_expired_checkins_are_purged_while_serving(tmp_path):
    service = Service(Settings(data=tmp_path / "data", retention_days=21, purge_every_s=0.2))
    try:
        now = int(time.time())
        t_in = np.array([now - 30 * DAY, now - 22 * DAY, now - 20 * DAY, now - 3600], np.int64)
        service.index.append(np.array([1, 2, 3, 4], np.uint64), np.full(4, 9, np.uint64),
                             t_in, np.zeros(4, np.int64))
        deadline = time.monotonic() + 30
        while len(service.index) > 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        person, _, kept, _ = service.index.checkins()
        assert sorted(person.tolist()) == [3, 4]
        assert kept.min() >= now - 21 * DAY
    finally:
        service.close()


def test_cases_whose_window_ended_before_the_retention_period_are_deleted(tmp_path):
    """A privacy review found a case row (a person, as a confirmed case, and when they
    were infectious) kept for ever after the purge had deleted its check-ins."""
    service = Service(Settings(data=tmp_path / "data", retention_days=21, purge_every_s=0.2))
    try:
        now = int(time.time())
        rule = dict(purpose="positive test", jurisdiction="Hoài Đức", min_overlap=600,
                    linger=0, depth=2, default_dwell=3600, opened_by=1)
        old = service.registry.open_case(person=1234605616436508552, t_from=now - 30 * DAY,
                                         t_to=now - 22 * DAY, **rule)
        recent = service.registry.open_case(person=77, t_from=now - 25 * DAY,
                                            t_to=now - 20 * DAY, **rule)
        deadline = time.monotonic() + 30
        while service.registry.get_case(old.id) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service.registry.get_case(old.id) is None
        assert service.registry.get_case(recent.id) is not None  # ended within the period
        raw = (tmp_path / "data" / "registry.sqlite3").read_bytes()
        wal = tmp_path / "data" / "registry.sqlite3-wal"
        raw += wal.read_bytes() if wal.exists() else b""
        assert b"1234605616436508552" not in raw
    finally:
        service.close()
