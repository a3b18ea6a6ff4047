"""IndexFollower: a read-only view of an index folder that another process writes.

The writer runs in a subprocess where the process boundary matters (locks, a SIGKILL
mid-batch, read-your-writes across processes) and in this process where many quick
interleavings matter (hypothesis). The follower's answers are compared with the writer's
own after each step; nothing is timed: waits for the background thread have a generous
deadline and assert content only.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracing import CheckinIndex, ContactRule, StorageError
from tracing import follower as follower_module
from tracing.follower import IndexFollower
from tracing.wal import HEADER, decode_joined, encode_batch, scan_records

REPO = Path(__file__).resolve().parents[2]
T0 = 1_764_000_000  # 2025-11-24, in seconds
DAY = 86_400
RULE = ContactRule(min_overlap=300, depth=2)

WRITER = r"""
import json, os, sys
import numpy as np
from tracing import CheckinIndex, ContactRule

index = CheckinIndex.open(sys.argv[1], head_limit=int(sys.argv[2]))
rule = ContactRule(min_overlap=300, depth=2)

def say(value):
    os.write(1, (json.dumps(value) + "\n").encode())  # one write: a kill never tears it

def columns(rows):
    p, v, t, o = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
    return (np.array(p, np.uint64), np.array(v, np.uint64), np.array(t, np.int64),
            np.array(o, np.int64))

say({"ready": True})
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "append":
        result = index.append(*columns(cmd["rows"]))
        say({"added": result.added, "duplicates": result.duplicates})
    elif cmd["op"] == "dwell":
        index.set_venue_dwell(np.array(cmd["venues"], np.uint64), np.array(cmd["seconds"]))
        say({})
    elif cmd["op"] == "purge":
        say({"removed": index.purge(cmd["now"])})
    elif cmd["op"] == "compact":
        index.compact()
        say({})
    elif cmd["op"] == "state":
        say({"len": len(index),
             "checkins": sorted(zip(*(c.tolist() for c in index.checkins()))),
             "traces": [index.trace(case, lo, hi, rule).to_dict()
                        for case, lo, hi in cmd["traces"]],
             "generation": index.stats()["generation"]})
    elif cmd["op"] == "batches":  # until killed: "send b", append batch b, "ack b"
        b, rows = cmd["start"], cmd["rows"]
        while True:
            j = np.arange(rows, dtype=np.uint64)
            say({"send": b})
            index.append(np.uint64(b) * 100_000 + j, j % 17, T0 + b * 60 + j.astype(np.int64),
                         np.zeros(rows, np.int64))
            say({"ack": b})
            b += 1
index.close()
say({"closed": True})
""".replace("T0", str(T0))


class Writer:
    """A CheckinIndex in a subprocess, driven by JSON lines (see WRITER)."""

    def __init__(self, folder: Path, head_limit: int = 16):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder),
                                      str(head_limit)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        assert self.read() == {"ready": True}

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"writer ended early (exit code {self.proc.poll()})"
        return json.loads(line)

    def send(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def __call__(self, **cmd) -> dict:
        self.send(**cmd)
        return self.read()

    def close(self) -> None:
        self.proc.stdin.close()
        assert self.read() == {"closed": True}
        self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=60)


@pytest.fixture
def writers():
    started: list[Writer] = []

    def start(folder: Path, head_limit: int = 16) -> Writer:
        started.append(Writer(folder, head_limit))
        return started[-1]

    yield start
    for writer in started:
        writer.kill()


def columns(rows):
    p, v, t, o = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [], [])
    return (np.array(p, np.uint64), np.array(v, np.uint64), np.array(t, np.int64),
            np.array(o, np.int64))


def rows_of(index) -> list[tuple[int, int, int, int]]:
    return sorted(zip(*(c.tolist() for c in index.checkins()), strict=True))


def as_json(value):
    return json.loads(json.dumps(value))


def new_index(folder: Path, rows=()) -> None:
    with CheckinIndex.open(folder) as index:
        if rows:
            index.append(*columns(list(rows)))


def random_batch(rng: random.Random, stored: list) -> list:
    """A batch of check-ins over few persons and venues: duplicates within the batch,
    repeats of stored keys with and without a later check-out."""
    batch = []
    for _ in range(rng.randint(1, 12)):
        if stored and rng.random() < 0.25:
            p, v, t, _ = rng.choice(stored)
            batch.append((p, v, t, rng.choice([0, t + rng.randint(1, 90) * 60])))
        else:
            t = T0 + rng.randrange(48 * 60) * 60
            batch.append((rng.randrange(1, 30), rng.randrange(100, 106), t,
                          rng.choice([0, 0, t + rng.randint(1, 90) * 60])))
    return batch + batch[:rng.randint(0, 2)]


def test_follower_answers_as_the_writer_across_merges_purge_and_dwell(tmp_path, writers):
    """A writer process appends (with merges every few batches), sets dwell, purges and
    compacts; after each step a refreshed follower holds exactly the writer's check-ins
    and traces. It was opened first: it takes no lock that would stop the writer."""
    folder = tmp_path / "ix"
    new_index(folder)
    follower = IndexFollower.open(folder, poll_s=None)
    writer = writers(folder, head_limit=16)
    rng = random.Random(2026)
    stored: list = []
    traces = [(p, T0, T0 + DAY) for p in (1, 5, 9)]
    for step in range(45):
        if step in (12, 30):
            writer(op="dwell", venues=[100, 102 + step % 4], seconds=[900, 7200])
        elif step == 25:
            assert writer(op="purge", now=T0 + 21 * DAY + 12 * 3600)["removed"] > 0
        elif step == 38:
            writer(op="compact")
        else:
            batch = random_batch(rng, stored)
            stored += batch
            writer(op="append", rows=batch)
        follower.refresh()
        want = writer(op="state", traces=traces)
        assert rows_of(follower) == [tuple(r) for r in want["checkins"]], step
        assert len(follower) == want["len"], step
        got = [follower.trace(*t, RULE).to_dict() for t in traces]
        assert as_json(got) == want["traces"], step
    assert want["generation"] >= 5  # merges, the purge and compact() happened
    assert follower.stats()["follower"]["reloads"] >= 3
    writer.close()
    follower.refresh()
    with CheckinIndex.open(folder) as index:  # the writer's data as a fresh open finds it
        assert rows_of(follower) == rows_of(index)
        assert len(follower) == len(index)
        for case in range(1, 30):
            assert follower.trace(case, T0, T0 + DAY, RULE) == index.trace(case, T0, T0 + DAY,
                                                                           RULE)
        assert follower.retention_days == index.retention_days
    follower.close()


def folder_state(folder: Path) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.iterdir()}


def test_follower_writes_nothing_and_never_stops_a_writer(tmp_path):
    folder = tmp_path / "ix"
    new_index(folder, [(1, 100, T0, 0), (2, 100, T0 + 60, T0 + 3600)])
    before = folder_state(folder)
    with IndexFollower.open(folder, poll_s=0.01) as follower:
        assert len(follower) == 2
        follower.refresh()
        follower.trace(1, T0, T0 + DAY)
        follower.last_checkin(2, 100, T0 + 100)
        follower.stats()
        assert folder_state(folder) == before
        with CheckinIndex.open(folder) as index:  # no LOCK held by the follower
            index.append(*columns([(3, 100, T0 + 120, 0)]))
        follower.refresh()
        assert len(follower) == 3


def test_write_methods_are_refused(tmp_path):
    folder = tmp_path / "ix"
    new_index(folder)
    with IndexFollower.open(folder, poll_s=None) as follower:
        for call in (lambda: follower.append(*columns([(1, 100, T0, 0)])),
                     lambda: follower.set_venue_dwell(np.array([100], np.uint64),
                                                      np.array([60])),
                     lambda: follower.purge(T0), follower.compact):
            with pytest.raises(StorageError, match="read-only follower"):
                call()
    with pytest.raises(StorageError, match="no qrtrace index"):
        IndexFollower.open(tmp_path / "nothing")
    with pytest.raises(StorageError, match="closed"):
        follower.refresh()


def test_checkouts_read_their_writes_across_processes(tmp_path, writers):
    """A check-in acknowledged by the writer process is found at once by the follower's
    last_checkin (no background poll runs: poll_s is an hour), also while merges start
    and install between appends."""
    folder = tmp_path / "ix"
    new_index(folder)
    writer = writers(folder, head_limit=4)
    with IndexFollower.open(folder, poll_s=3600) as follower:
        for k in range(40):
            t = T0 + k * 600
            writer(op="append", rows=[(k, 100 + k % 3, t, 0), (1000 + k, 100, t, 0)])
            assert follower.last_checkin(k, 100 + k % 3, t + 60) == (t, 0), k
            writer(op="append", rows=[(k, 100 + k % 3, t, t + 300)])  # its check-out
            assert follower.last_checkin(k, 100 + k % 3, t + 60) == (t, t + 300), k
            if k % 10 == 5:
                writer(op="compact")  # a new generation for certain, besides the merges
        assert len(follower.checkins()[0]) == 80
        generation = writer(op="state", traces=[])["generation"]
    assert generation >= 4


def test_background_thread_follows_appends_dwell_and_merges(tmp_path):
    folder = tmp_path / "ix"
    new_index(folder)

    def wait_for(condition) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, "the follower did not pick the change up"
            time.sleep(0.01)

    with CheckinIndex.open(folder, head_limit=4) as index, \
            IndexFollower.open(folder, poll_s=0.01) as follower:
        for k in range(12):  # merges start and install on the way
            index.append(*columns([(1, 100, T0 + k * 3600, 0), (2 + k, 100, T0 + k * 3600 + 60,
                                                                 0)]))
            wait_for(lambda k=k: len(follower.trace(1, T0, T0 + DAY).contacts) == k + 1)
        snap = follower.snapshot()
        assert follower.built_snapshot() is snap
        index.set_venue_dwell(np.array([100], np.uint64), np.array([30]))  # < overlap
        wait_for(lambda: follower.trace(1, T0, T0 + DAY).contacts == ())
        assert follower.built_snapshot() is not snap
        assert follower.stats()["follower"]["error"] is None


def test_nothing_new_keeps_the_snapshot(tmp_path):
    folder = tmp_path / "ix"
    new_index(folder, [(1, 100, T0, 0)])
    with IndexFollower.open(folder, poll_s=None) as follower:
        snap = follower.snapshot()
        assert follower.refresh() is False
        assert follower.built_snapshot() is snap
        with CheckinIndex.open(folder) as index:
            index.append(*columns([(1, 100, T0, 0)]))  # a duplicate: nothing logged
            assert follower.refresh() is False
            index.append(*columns([(2, 100, T0, 0)]))
        assert follower.refresh() is True
        assert follower.built_snapshot() is None
        assert len(follower) == 2


def test_a_record_being_written_is_left_for_later_and_never_cut(tmp_path):
    folder = tmp_path / "ix"
    new_index(folder, [(1, 100, T0, 0)])
    log = next(folder.glob("wal-*.log"))
    record = b"".join(bytes(part) for part in encode_batch(*columns([(2, 100, T0, 0),
                                                                      (3, 101, T0, 0)])))
    with open(log, "ab") as f:
        f.write(record[:len(record) // 2])
    with IndexFollower.open(folder, poll_s=None) as follower:
        assert len(follower) == 1
        size = log.stat().st_size
        assert follower.refresh() is False
        assert log.stat().st_size == size  # the writer's half record is left alone
        with open(log, "ab") as f:
            f.write(record[len(record) // 2:])
        assert follower.refresh() is True
        assert rows_of(follower) == [(1, 100, T0, 0), (2, 100, T0, 0), (3, 101, T0, 0)]


def test_loading_starts_again_when_a_merge_deletes_the_files(tmp_path, monkeypatch):
    """Files named by a manifest vanish when the writer installs the next generation:
    the follower reads the manifest again (simulated: the first openings fail)."""
    folder = tmp_path / "ix"
    new_index(folder, [(1, 100, T0, 0)])
    real_load, real_open = follower_module.load_segment, follower_module.LogTail.open
    failures = {"segment": 2, "log": 2}

    def flaky(kind, real):
        def call(*args):
            if failures[kind]:
                failures[kind] -= 1
                raise FileNotFoundError(kind)
            return real(*args)
        return call

    monkeypatch.setattr(follower_module, "load_segment", flaky("segment", real_load))
    monkeypatch.setattr(follower_module.LogTail, "open", flaky("log", real_open))
    with IndexFollower.open(folder, poll_s=None) as follower:
        assert rows_of(follower) == [(1, 100, T0, 0)]
    assert failures == {"segment": 0, "log": 0}


def test_check_outs_stay_exact_across_merges_before_the_reload(tmp_path):
    """A merge installed but not yet reloaded: a check-out lookup reads the old logs to
    their end and follows the new one over the old base, with the writer's answers; when
    logs came and went unseen (two merges), it loads the new generation at once."""
    folder = tmp_path / "ix"
    new_index(folder, [(1, 100, T0, 0)])
    with CheckinIndex.open(folder) as index, \
            IndexFollower.open(folder, poll_s=None) as follower:
        index.append(*columns([(2, 100, T0, 0)]))
        index.compact()  # the log follower reads is merged and deleted
        index.append(*columns([(3, 100, T0, 0)]))
        assert follower.last_checkin(2, 100, T0) == (T0, 0)
        assert follower.last_checkin(3, 100, T0) == (T0, 0)
        assert follower.stats()["follower"] == {"reloads": 0, "behind": True, "logs": 2,
                                                "error": None}
        assert rows_of(follower) == rows_of(index)
        for _ in range(2):
            index.append(*columns([(4, 101, T0 + _, 0)]))
            index.compact()
        index.append(*columns([(5, 100, T0, T0 + 60)]))
        assert follower.last_checkin(5, 100, T0) == (T0, T0 + 60)
        assert follower.stats()["follower"]["reloads"] == 1
        assert rows_of(follower) == rows_of(index)
        follower.refresh()
        assert follower.stats()["follower"]["behind"] is False
        assert len(follower) == len(index) == 6


def test_a_check_out_finds_its_check_in_after_a_bulk_load(tmp_path):
    """A batch as large as a merge goes to a new generation without a log: a check-out
    lookup on the follower then loads that generation first and finds the check-in."""
    folder = tmp_path / "ix"
    new_index(folder, [(1, 100, T0, 0)])
    with CheckinIndex.open(folder, head_limit=4) as index, \
            IndexFollower.open(folder, poll_s=None) as follower:
        index.append(*columns([(2, 100, T0 + i, 0) for i in range(4)]))  # a bulk load
        index.append(*columns([(3, 101, T0, 0)]))  # a logged row after it
        assert follower.last_checkin(2, 100, T0 + 3) == (T0 + 3, 0)
        assert follower.last_checkin(3, 101, T0) == (T0, 0)
        assert follower.stats()["follower"]["reloads"] == 1
        assert rows_of(follower) == rows_of(index)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=30), st.integers(1, 12))
def test_records_decode_joined_as_one_by_one(sizes, max_rows):
    """The follower's joined decoding of many records equals decoding each alone."""
    rng = np.random.default_rng(len(sizes) * 31 + max_rows)
    batches = [(rng.integers(0, 2**64, n, dtype=np.uint64),
                rng.integers(0, 2**64, n, dtype=np.uint64),
                rng.integers(-2**40, 2**40, n), rng.integers(0, 2**40, n)) for n in sizes]
    data = HEADER + b"".join(bytes(part) for b in batches for part in encode_batch(*b))
    payloads, end = scan_records(data + b"QRTB\x40", len(HEADER))  # and a torn tail
    assert end == len(data)
    joined = decode_joined(data, payloads, max_rows)
    assert all(j[0].shape[0] <= max(max_rows, *sizes) for j in joined)
    for i in range(4):
        got = np.concatenate([j[i] for j in joined])
        want = np.concatenate([b[i] for b in batches])
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert all(j[i].flags.writeable for j in joined)


ROWS = 3000  # a batch's rows: a record of 96 KB takes several writes, so kills tear it


def test_a_killed_writer_never_shows_half_a_batch(tmp_path, writers):
    """Writers append batches until SIGKILLed (merges every few batches); a follower
    refreshing all along, through the kills and the restarted writers cutting torn
    tails, only ever holds whole batches, and after catching up every acknowledged one."""
    folder = tmp_path / "ix"
    new_index(folder)
    rng = random.Random(77)
    sent: set[int] = set()
    acked: set[int] = set()
    seen: list[set[int]] = []

    def batches_present() -> set[int]:
        person = follower.checkins()[0]
        ids, counts = np.unique(person // 100_000, return_counts=True)
        assert (counts == ROWS).all(), f"half batches: {ids[counts != ROWS].tolist()}"
        return set(ids.tolist())

    with IndexFollower.open(folder, poll_s=0.005) as follower:
        for _ in range(6):
            writer = writers(folder, head_limit=4 * ROWS)
            writer.send(op="batches", start=max(sent, default=-1) + 1, rows=ROWS)
            sent.add(writer.read()["send"])
            acked.add(writer.read()["ack"])  # its kernels loaded: now kill it at random
            deadline = time.monotonic() + rng.uniform(0.05, 0.8)
            while time.monotonic() < deadline:
                follower.refresh()
                seen.append(batches_present())
            writer.proc.send_signal(signal.SIGKILL)
            writer.kill()
            for line in writer.proc.stdout:
                said = json.loads(line)
                sent.update([said["send"]] if "send" in said else [])
                acked.update([said["ack"]] if "ack" in said else [])
            follower.refresh()
            present = batches_present()
            assert acked <= present, f"acknowledged but not shown: {sorted(acked - present)}"
            assert present <= sent
        assert all(view <= sent for view in seen)
        assert len(acked) > 6  # the writers did work between kills (not about speed)
        assert follower.stats()["follower"]["reloads"] >= 1


# ---- many interleavings in one process ----------------------------------------------

ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.lists(
        st.tuples(st.integers(1, 6), st.integers(100, 102), st.integers(0, 30),
                  st.sampled_from([0, 0, 5, 20, 90])), min_size=1, max_size=6)),
    st.tuples(st.just("dwell"), st.integers(0, 120)),
    st.tuples(st.just("purge"), st.integers(0, 30)),
    st.tuples(st.just("compact"), st.just(0)),
), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=ops, reads=st.lists(st.sampled_from(["refresh", "checkout", "none"]),
                                   min_size=25, max_size=25))
def test_follower_matches_the_writer_at_every_step(program, reads):
    """Appends (duplicates, longer check-outs), dwell, purges and compactions on a writer
    whose head merges in the background every few rows; the follower catches up by
    refresh(), by a check-out lookup, or not at all for a while, and then answers as the
    writer does."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with CheckinIndex.open(folder, head_limit=4) as index, \
                IndexFollower.open(folder, poll_s=None) as follower:
            for (op, arg), read in zip(program, reads, strict=False):
                if op == "append":
                    rows = [(p, v, T0 + t * 600, T0 + t * 600 + o * 60 if o else 0)
                            for p, v, t, o in arg]
                    index.append(*columns(rows))
                    # a batch of head_limit rows or more is a bulk load: no log, so
                    # followers see it once its generation is loaded, not at once
                    if read == "checkout" and len(rows) < 4:
                        p, v, t, _ = rows[-1]
                        assert follower.last_checkin(p, v, t) == index.last_checkin(p, v, t)
                elif op == "dwell":
                    index.set_venue_dwell(np.array([100 + arg % 3], np.uint64),
                                          np.array([arg * 60]))
                elif op == "purge":
                    index.purge(T0 + 21 * DAY + arg * 600)
                else:
                    index.compact()
                if read == "refresh":
                    follower.refresh()
                    assert rows_of(follower) == rows_of(index)
            follower.refresh()
            assert rows_of(follower) == rows_of(index)
            assert len(follower) == len(index)
            for case in range(1, 7):
                assert follower.trace(case, T0, T0 + DAY, RULE) == index.trace(
                    case, T0, T0 + DAY, RULE)
