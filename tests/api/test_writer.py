"""api/writer.py: a follower's checked scans admitted and stored by the writer, over a
socketpair, with the same answers as in the writer's own process."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import numpy as np
import pytest

from api.intake import LocalStore
from api.ratelimit import ScanLimiter, ScanLimits
from api.writer import RemoteStore, WriterChannel, WriterGone
from ingest.events import ScanBatch


class RecordingSink:
    """Stores keys in a set; a row already stored is a duplicate (as the index says)."""

    def __init__(self) -> None:
        self.stored: set[tuple[int, int, int]] = set()

    def write(self, persons, venue, t_in, t_out, batch) -> np.ndarray:
        keys = list(zip(persons.tolist(), venue.tolist(), t_in.tolist(), strict=True))
        duplicate = np.array([k in self.stored for k in keys], np.bool_)
        self.stored.update(keys)
        return duplicate


def _batch(n: int, device: int = 7, venue: int = 3) -> ScanBatch:
    return ScanBatch(np.full(n, venue, np.uint64), np.full(n, device, np.uint64),
                     np.arange(n, dtype=np.uint64), 1_700_000_000 + np.arange(n),
                     np.zeros(n, np.int64), np.full(n, b"x" * 43, dtype="S43"))


def _pair(limits: ScanLimits):
    sink = RecordingSink()
    store = LocalStore(sink, ScanLimiter(limits))
    service = SimpleNamespace(intake=SimpleNamespace(store=store), keyring=lambda: None,
                              reloaded=[])
    service.reload_venues = lambda: service.reloaded.append("venues")
    ours, theirs = socket.socketpair()
    channel = WriterChannel(ours, service)
    return RemoteStore(theirs), channel, service, sink


def test_rows_written_through_the_writer_answer_as_in_its_own_process():
    remote, _, _, sink = _pair(ScanLimits(enabled=False))
    batch, group = _batch(6), np.array([0, 0, 1, 1, 2, 2])
    ok = np.array([True, False, True, True, True, False])
    persons = np.arange(100, 106, dtype=np.uint64)
    refused, rows, duplicate = remote.admit_and_write(batch, group, ok, persons)
    assert refused == {} and rows.tolist() == [0, 2, 3, 4]
    assert duplicate.tolist() == [False] * 4
    assert sink.stored == {(p, 3, 1_700_000_000 + i) for i, p in
                           zip([0, 2, 3, 4], [100, 102, 103, 104], strict=True)}
    _, rows, duplicate = remote.admit_and_write(batch, group, ok, persons)
    assert duplicate.tolist() == [True] * 4  # the writer's store knows them now
    remote.close()


def test_a_rate_limit_refusal_comes_back_whole():
    remote, _, _, sink = _pair(ScanLimits(device_burst=3, device_per_hour=1))
    batch = _batch(5)
    refused, rows, _ = remote.admit_and_write(batch, np.zeros(5, np.int64),
                                              np.ones(5, np.bool_),
                                              np.arange(5, dtype=np.uint64) + 1)
    assert rows.shape[0] == 0 and not sink.stored  # nothing of the group written
    (exc,) = refused.values()
    assert exc.scope == "device" and exc.retry_after >= 1 and "device" in str(exc)
    remote.close()


def test_a_reload_runs_in_the_writer_and_a_gone_writer_is_named():
    remote, channel, service, _ = _pair(ScanLimits(enabled=False))
    remote.reload("venues")
    assert service.reloaded == ["venues"]
    with pytest.raises(RuntimeError, match="unknown reload"):
        remote.reload("nothing such")
    channel.sock.close()  # the writer's end goes away
    channel.thread.join(timeout=10)
    with pytest.raises(WriterGone):
        remote.admit_and_write(_batch(1), np.zeros(1, np.int64), np.ones(1, np.bool_),
                               np.ones(1, np.uint64))
