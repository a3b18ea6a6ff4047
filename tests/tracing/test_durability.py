"""kill -9 a writer at random points: every acknowledged check-in survives, nothing else
appears, and no batch is ever half there.

Starting Python and numba for each of hundreds of writers would take minutes, so a
"zygote" process imports and warms qrtrace once and forks a fresh writer per round (with
numba's fork-safe workqueue threading layer). A writer opens the index (replaying the
log), reports the batches it finds, then appends batches, printing "send b" before each
append and "ack b" after it returns, until the test SIGKILLs it. The head limit is tiny so
that kills also land inside compactions.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tracing import CheckinIndex, StorageError

ROWS = 8  # check-ins per batch
REPO = Path(__file__).resolve().parents[2]

ZYGOTE = r"""
import os, sys, tempfile
import numpy as np
from tracing import CheckinIndex

ROWS = int(sys.argv[1])

def batch(b):
    j = np.arange(ROWS, dtype=np.uint64)
    return (np.uint64(b) * 1000 + j, (np.uint64(b) * 7 + j) % 13,
            1_000_000 + b * 60 + j.astype(np.int64) * 7, np.zeros(ROWS, np.int64))

def say(line):
    os.write(1, (line + "\n").encode())  # one write: a kill never tears a line

def writer(folder, start):
    index = CheckinIndex.open(folder, head_limit=64)
    person = index.checkins()[0]
    ids, counts = np.unique(person // 1000, return_counts=True)
    torn = ids[counts != ROWS]
    say("present " + " ".join(map(str, ids.tolist())))
    say("torn " + " ".join(map(str, torn.tolist())))
    say("ready")
    b = start
    while True:
        say(f"send {b}")
        index.append(*batch(b))
        say(f"ack {b}")
        b += 1

with tempfile.TemporaryDirectory() as warm:  # load every kernel a writer uses, once
    with CheckinIndex.open(warm, head_limit=2 * ROWS) as index:
        for b in range(5):  # log appends, compactions, then a head over a base
            index.append(*batch(b))
            index.append(*batch(b))  # a duplicate batch
        index.trace(0, 0, 2**31)
        index.checkins()
say("zygote ready")
for command in sys.stdin:
    folder, start = command.split()
    pid = os.fork()
    if pid == 0:
        try:
            writer(folder, int(start))
        finally:
            os._exit(1)
    say(f"pid {pid}")
    os.waitpid(pid, 0)
    say("dead")
"""


def read_until(stream, prefix):
    lines = []
    while True:
        line = stream.readline()
        assert line, f"zygote ended early; last lines {lines[-5:]}"
        lines.append(line.rstrip("\n"))
        if line.startswith(prefix):
            return lines


def ids(line: str) -> set[int]:
    return {int(x) for x in line.split()[1:]}


def test_acknowledged_batches_survive_kill_9(tmp_path):
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE, str(ROWS)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    rng = random.Random(1234)
    folder = tmp_path / "index"
    sent: set[int] = set()
    acked: set[int] = set()

    def one_round(kill_after: float) -> None:
        """A writer reopens the index, which must hold exactly what the rules allow."""
        zygote.stdin.write(f"{folder} {max(sent, default=-1) + 1}\n")
        zygote.stdin.flush()
        pid = int(read_until(zygote.stdout, "pid")[-1].split()[1])
        lines = read_until(zygote.stdout, "ready")
        present = ids(next(x for x in lines if x.startswith("present")))
        torn = ids(next(x for x in lines if x.startswith("torn")))
        assert not torn, f"batches half applied: {sorted(torn)}"
        assert acked <= present, f"acknowledged but lost: {sorted(acked - present)}"
        assert present <= sent, f"never sent but present: {sorted(present - sent)}"
        time.sleep(kill_after)
        os.kill(pid, signal.SIGKILL)
        for line in read_until(zygote.stdout, "dead"):
            if line.startswith("send"):
                sent.add(int(line.split()[1]))
            elif line.startswith("ack"):
                acked.add(int(line.split()[1]))

    try:
        read_until(zygote.stdout, "zygote ready")
        for _ in range(200):
            one_round(kill_after=rng.random() * 0.03)
        one_round(kill_after=0)  # checks what the 200th kill left behind
        # the writers did real work between kills (about 1,000 acknowledged batches on
        # a quiet machine; 156 were seen at load 8: the bound is not about speed)
        assert len(acked) > 50
    finally:
        zygote.kill()
        zygote.wait()


def test_torn_log_tail_is_cut_cleanly(tmp_path):
    """Whatever a crash leaves at the end of the log (a short record, a bad checksum,
    garbage), reopening keeps every whole batch before it and can append after it."""
    from tracing import CheckinIndex

    def batch(b):
        return [b * 10, b * 10 + 1], [7, 8], [1000 + b, 2000 + b], [0, 3000 + b]

    folder = tmp_path / "ix"
    with CheckinIndex.open(folder) as index:
        for b in range(3):
            index.append(*batch(b))
    log = next(folder.glob("wal-*.log"))
    whole = log.read_bytes()
    record = (len(whole) - 8) // 3
    for tail, kept in ((whole[:-1], 2), (whole[:-record + 5], 2),
                       (whole[:-5] + b"\xff" * 5, 2), (whole[:9], 0), (whole[:3], 0),
                       (whole + b"QRTB\x40\x00\x00\x00junk", 3), (whole + b"\x00" * 3, 3)):
        log.write_bytes(tail)
        with CheckinIndex.open(folder) as index:
            persons = sorted(index.checkins()[0].tolist())
            assert persons == sorted(p for b in range(kept) for p in batch(b)[0])
            index.append(*batch(9))
            assert len(index) == 2 * kept + 2
        with CheckinIndex.open(folder) as index:
            assert len(index) == 2 * kept + 2
        log.write_bytes(whole)


def test_a_folder_of_other_files_is_not_taken_for_an_index_and_its_files_stay(tmp_path):
    """`--data` pointing at the wrong folder: its files are not leftovers of a merge."""
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(StorageError, match=r"not a qrtrace index and not empty .*notes\.txt"):
        CheckinIndex.open(foreign)
    assert (foreign / "notes.txt").read_text() == "precious"
    # a file someone drops into a real index is not deleted by its merges either
    folder = tmp_path / "index"
    for t in (100, 200):
        index = CheckinIndex.open(folder)
        index.append(np.array([t], np.uint64), np.array([1], np.uint64),
                     np.array([t], np.int64), np.array([0], np.int64))
        index.compact()
        index.close()
        (folder / "README.txt").write_text("kept")
    assert (folder / "README.txt").read_text() == "kept"
    assert not [p for p in folder.iterdir() if p.name.startswith("seg-1.")]
