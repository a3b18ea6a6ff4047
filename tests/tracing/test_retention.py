"""Retention: after a purge, expired check-ins are gone from every file in the folder."""

from __future__ import annotations

import numpy as np

from tracing import CheckinIndex

DAY = 86_400
NOW = 1_764_000_000
# distinctive ids and times, so their bytes cannot turn up in a file by chance
OLD_PERSONS = np.array([0x5EC2E7_0000_0001, 0x5EC2E7_0000_0002], np.uint64)
OLD_TIMES = np.array([NOW - 30 * DAY + 17, NOW - 22 * DAY + 31], np.int64)


def raw_bytes(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_purge_removes_expired_checkins_from_every_file(tmp_path):
    folder = tmp_path / "ix"
    with CheckinIndex.open(folder, retention_days=21) as index:
        # one expired check-in compacted into the base, one still in the log
        index.append(OLD_PERSONS[:1], [7], OLD_TIMES[:1], [0])
        index.append([1, 2], [7, 7], [NOW - DAY, NOW - 2 * DAY], [0, 0])
        index.compact()
        index.append(OLD_PERSONS[1:], [7], OLD_TIMES[1:], [OLD_TIMES[1] + 600])
        index.append([3], [8], [NOW - 21 * DAY], [0])  # exactly at the cutoff: kept
        files = raw_bytes(folder)
        assert any(OLD_PERSONS[1].tobytes() in data for data in files.values())
        assert index.purge(NOW) == 2
        assert len(index) == 3
    for name, data in raw_bytes(folder).items():
        for person in OLD_PERSONS:
            assert person.tobytes() not in data, f"expired person {person} still in {name}"
        for t in OLD_TIMES:
            for width in (np.uint32, np.int64):
                assert width(t).tobytes() not in data, f"expired time {t} still in {name}"
    with CheckinIndex.open(folder) as index:
        assert sorted(index.checkins()[0].tolist()) == [1, 2, 3]
        assert index.trace(int(OLD_PERSONS[0]), 0, NOW).zones == ()


def test_retention_days_is_kept_across_opens(tmp_path):
    with CheckinIndex.open(tmp_path / "ix", retention_days=30) as index:
        assert index.retention_days == 30
    with CheckinIndex.open(tmp_path / "ix") as index:
        assert index.retention_days == 30
    with CheckinIndex.open(tmp_path / "ix", retention_days=7) as index:
        assert index.retention_days == 7
    with CheckinIndex.open(tmp_path / "new") as index:
        assert index.retention_days == 21


def test_purge_with_nothing_expired_leaves_the_index_alone(tmp_path):
    """A service purges on a timer: when nothing has expired, no merge runs and the
    snapshot (which readers cache their answers on) stays the same object."""
    now = 2_000_000_000
    with CheckinIndex.open(tmp_path / "index", retention_days=21) as index:
        t_in = np.array([now - 20 * 86400, now - 3600], np.int64)
        index.append(np.array([1, 2], np.uint64), np.array([5, 5], np.uint64), t_in)
        index.compact()
        index.append(np.array([3], np.uint64), np.array([5], np.uint64),
                     np.array([now - 60], np.int64))
        before = index.snapshot()
        assert index.purge(now) == 0
        assert index.snapshot() is before
        assert index.purge(now + 2 * 86400) == 1  # the 20-day-old check-in expires
        assert sorted(index.checkins()[0].tolist()) == [2, 3]
