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
