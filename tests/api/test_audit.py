"""The audit log: a chain that survives reopening, shows tampering, and stays one chain under
threads and processes."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from api import audit
from api.audit import GENESIS, AuditError, AuditLog
from api.syncer import LoopSyncer

REPO = Path(__file__).resolve().parents[2]


def record(log: AuditLog, i: int, actor: str = "tran.thi.b"):
    return log.record(actor=actor, role="official", action="case.f1", case=i, detail={"i": i})


def entry(log: AuditLog, i: int):
    """The coroutine that records entry `i` from an event loop."""
    return log.record_async(actor="a", role="official", action="x", case=i)


def wait_until(condition, what: str) -> None:
    """Wait for another thread; the deadline only keeps a broken test from hanging."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.001)


def test_created_private_and_the_chain_continues_across_reopen(tmp_path):
    path = tmp_path / "audit" / "queries.log"
    log = AuditLog(path, clock=lambda: 1_764_108_000.9)
    assert log.head() == (0, GENESIS) and log.entries() == []
    first = log.record(
        actor="tran.thi.b",
        role="official",
        action="case.f1",
        case=17,
        purpose="Ba Dinh cluster",
        detail={"depth": 2, "venues": (3, 4)},
    )
    assert (first.seq, first.time, first.prev, first.detail) == (
        1,
        1_764_108_000,
        GENESIS,
        {"depth": 2, "venues": [3, 4]},
    )
    second = record(log, 2)
    log.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700

    reopened = AuditLog(path)
    assert reopened.head() == (2, second.hash)
    third = record(reopened, 3)
    assert (third.seq, third.prev) == (3, second.hash)
    assert [e.to_dict() for e in reopened.entries()] == [
        first.to_dict(),
        second.to_dict(),
        third.to_dict(),
    ]
    assert [e.seq for e in reopened.entries(after_seq=1, limit=1)] == [2]
    assert reopened.verify().to_dict() == {
        "ok": True,
        "entries": 3,
        "head": third.hash,
        "first_bad_seq": None,
        "reason": None,
    }
    line = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert line["purpose"] == "Ba Dinh cluster" and line["hash"] == first.hash


def test_paging_finds_any_position_in_a_long_log(tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "_fsync", lambda fd: None)  # this test is about reading
    log = AuditLog(tmp_path / "audit.log")
    for i in range(1, 3001):
        log.record(actor="a", role="official", action="case.f1", detail={"pad": "x" * (i % 97)})
    assert [e.seq for e in log.entries(after_seq=2500, limit=3)] == [2501, 2502, 2503]
    assert [e.seq for e in log.entries(after_seq=2998)] == [2999, 3000]
    assert log.entries(after_seq=3000) == []
    assert len(log.entries(limit=5000)) == 3000


def test_bad_arguments_are_refused_and_nothing_is_written(tmp_path):
    log = AuditLog(tmp_path / "audit.log")
    with pytest.raises(ValueError, match="actor"):
        log.record(actor="", role="official", action="case.f1")
    with pytest.raises(ValueError, match="not JSON"):
        log.record(actor="a", role="official", action="x", detail={"when": object()})
    with pytest.raises(ValueError, match="case"):
        log.record(actor="a", role="official", action="x", case="17")
    with pytest.raises(ValueError, match="not JSON"):
        log.record(actor="a", role="official", action="x", purpose="\udc80")
    with pytest.raises(ValueError, match="not JSON"):
        log.record(actor="a", role="official", action="x", detail={"who": "\udc80"})
    with pytest.raises(ValueError, match="not JSON"):
        log.record(actor="a", role="official", action="x", detail={"\udc80": 1})
    assert log.head() == (0, GENESIS)


def tampered(path: Path, change) -> AuditLog:
    """Rewrite the file's lines through `change` and open it as an auditor would."""
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"".join(line + b"\n" for line in change(lines)))
    return AuditLog(path)


def edit(line: bytes, **fields) -> bytes:
    return json.dumps({**json.loads(line), **fields}).encode()


def forged(lines, after: int) -> bytes:
    """A well-formed entry with a correct hash, linked to line `after` (1-based)."""
    previous = json.loads(lines[after - 1])
    entry = {**previous, "seq": after + 1, "actor": "someone.else", "prev": previous["hash"]}
    entry["hash"] = audit._canonical_hash(entry)
    return json.dumps(entry).encode()


def rehashed(line: bytes, **fields) -> bytes:
    entry = {**json.loads(line), **fields}
    entry["hash"] = audit._canonical_hash(entry)
    return json.dumps(entry).encode()


TAMPERING = {
    "changed field": (lambda ls: [*ls[:2], edit(ls[2], case=99), *ls[3:]], 3, "hash does not"),
    "changed and rehashed": (
        lambda ls: [*ls[:2], rehashed(ls[2], actor="x"), *ls[3:]],
        4,
        "prev is not the hash of seq 3",
    ),
    "removed line": (lambda ls: [*ls[:2], *ls[3:]], 3, "line 3 holds seq 4: an entry is missing"),
    "reordered lines": (lambda ls: [*ls[:2], ls[3], ls[2], ls[4]], 3, "line 3 holds seq 4"),
    "inserted forged line": (
        lambda ls: [*ls[:2], forged(ls, 2), *ls[2:]],
        4,
        "line 4 holds seq 3: a line was inserted",
    ),
    "bad hash": (lambda ls: [*ls[:2], edit(ls[2], hash="ab" * 32), *ls[3:]], 3, "hash does not"),
    "not JSON": (lambda ls: [*ls[:2], b'{"seq":3,"time":', *ls[3:]], 3, "line 3: not JSON"),
    "not an object": (lambda ls: [*ls[:2], b"5", *ls[3:]], 3, "line 3: not a JSON object"),
    "mistyped field": (
        lambda ls: [*ls[:2], json.dumps(json.loads(ls[2]) | {"role": None}).encode(), *ls[3:]],
        3,
        "'role' has the wrong type",
    ),
}


@pytest.mark.parametrize("kind", TAMPERING)
def test_each_kind_of_tampering_is_found_at_its_seq(tmp_path, kind):
    change, bad_seq, reason = TAMPERING[kind]
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        for i in range(1, 6):
            record(log, i)
    result = tampered(path, change).verify()
    assert (result.ok, result.first_bad_seq, result.entries) == (False, bad_seq, bad_seq - 1)
    assert reason in result.reason
    last_good = path.read_bytes().splitlines()[bad_seq - 2]
    assert result.head == json.loads(last_good)["hash"]


def test_a_rewritten_file_passes_alone_but_not_against_an_anchored_head(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    for i in range(1, 6):
        record(log, i)
    anchor = log.head()

    def rewrite(lines):  # change seq 2 and recompute every hash after it: the documented limit
        out, prev = [], GENESIS
        for n, line in enumerate(lines, start=1):
            entry = {**json.loads(line), "prev": prev} | ({"case": 99} if n == 2 else {})
            entry["hash"] = prev = audit._canonical_hash(entry)
            out.append(json.dumps(entry).encode())
        return out

    auditor = tampered(path, rewrite)
    assert auditor.verify().ok
    result = auditor.verify(anchor=anchor)
    assert (result.ok, result.first_bad_seq) == (False, 5) and "anchored" in result.reason
    assert not log.verify().ok  # the writer remembers its own head

    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0])
    result = AuditLog(path).verify(anchor=anchor)
    assert (result.ok, result.first_bad_seq, result.entries) == (False, 2, 1)
    assert "cut off" in result.reason
    with pytest.raises(AuditError, match="shrank"):
        record(log, 6)


def test_a_torn_last_line_is_cut_and_the_chain_goes_on(tmp_path):
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        second = [record(log, i) for i in (1, 2)][-1]
    whole = path.read_bytes()
    with open(path, "ab") as out:
        out.write(b'{"seq":3,"time":17641')  # the crash came mid-write
    log = AuditLog(path)
    assert path.read_bytes() == whole and log.head() == (2, second.hash)
    assert (record(log, 3).seq, log.verify().ok, log.verify().entries) == (3, True, 3)


def test_a_file_that_is_not_an_audit_log_is_refused_untouched(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"dear diary\nno newline at the end")
    with pytest.raises(AuditError, match=r"notes\.txt: ends in 21 bytes of no audit entry"):
        AuditLog(notes)
    notes.write_bytes(b"dear diary\n")
    with pytest.raises(AuditError, match=r"notes\.txt: last line \(byte 0\): not JSON"):
        AuditLog(notes)
    assert notes.read_bytes() == b"dear diary\n"


def assert_one_chain_holding(log: AuditLog, expected: set) -> None:
    result = log.verify()
    assert result.ok, result.reason
    assert result.entries == len(expected)
    stored = [(e.actor, e.detail["i"]) for e in log.entries(limit=len(expected) + 1)]
    assert sorted(stored) == sorted(expected)  # each one once


def test_eight_threads_give_one_chain_with_every_entry_once(tmp_path):
    log = AuditLog(tmp_path / "audit.log")
    workers = [
        threading.Thread(target=lambda t=t: [record(log, i, f"t{t}") for i in range(50)])
        for t in range(8)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert_one_chain_holding(log, {(f"t{t}", i) for t in range(8) for i in range(50)})


def test_writers_waiting_on_one_fsync_share_the_next_one(tmp_path, monkeypatch):
    disk_ready, fsyncs = threading.Event(), []

    def slow_disk(fd):  # the first fsync lasts until the other seven have written
        fsyncs.append(fd)
        disk_ready.wait()

    monkeypatch.setattr(audit, "_fsync", slow_disk)
    log = AuditLog(tmp_path / "audit.log")
    workers = [threading.Thread(target=record, args=(log, i)) for i in range(8)]
    workers[0].start()
    wait_until(lambda: len(fsyncs) == 1, "the first fsync")
    for worker in workers[1:]:
        worker.start()
    wait_until(lambda: log.head()[0] == 8, "all eight writes")
    assert all(worker.is_alive() for worker in workers)  # nobody returned before an fsync
    disk_ready.set()
    for worker in workers:
        worker.join()
    assert len(fsyncs) == 2 and log.verify().entries == 8


def test_coroutines_and_threads_give_one_chain_with_every_entry_once(tmp_path):
    log = AuditLog(tmp_path / "audit.log")

    async def coroutines():
        await asyncio.gather(*(log.record_async(actor="loop", role="official",
                                                action="case.f1", case=i, detail={"i": i})
                               for i in range(200)))

    threads = [threading.Thread(target=lambda t=t: [record(log, i, f"t{t}") for i in range(50)])
               for t in range(4)]
    for thread in threads:
        thread.start()
    asyncio.run(coroutines())
    for thread in threads:
        thread.join()
    assert_one_chain_holding(log, {("loop", i) for i in range(200)}
                             | {(f"t{t}", i) for t in range(4) for i in range(50)})


def test_coroutines_return_only_after_the_helper_fsyncs_and_share_its_rounds(tmp_path):
    log = AuditLog(tmp_path / "audit.log")
    rounds = []

    async def main():
        await entry(log, 0)
        helper = log._syncer.process
        answer = log._synced_to
        log._synced_to = lambda ticket: (rounds.append(ticket), answer(ticket))
        log._syncer._on_answer = log._synced_to
        returned = []

        async def one(i):
            await entry(log, i)
            returned.append(i)

        os.kill(helper.pid, signal.SIGSTOP)  # a disk that does not answer
        try:
            tasks = [asyncio.create_task(one(i)) for i in range(1, 51)]
            while log.head()[0] < 51:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.05)
            assert returned == []  # written, not yet synced: nobody has its answer
        finally:
            os.kill(helper.pid, signal.SIGCONT)
        await asyncio.gather(*tasks)
        return returned

    assert sorted(asyncio.run(main())) == list(range(1, 51))
    assert 1 <= len(rounds) <= 2  # one request in flight at a time covers every line
    assert log.verify().entries == 51
    log.close()


def test_a_killed_helper_is_replaced_and_its_waiters_still_return(tmp_path):
    log = AuditLog(tmp_path / "audit.log")

    async def main():
        await entry(log, 0)
        helper = log._syncer.process
        os.kill(helper.pid, signal.SIGSTOP)
        tasks = [asyncio.create_task(entry(log, i))
                 for i in range(1, 11)]
        while log.head()[0] < 11:
            await asyncio.sleep(0.001)
        os.kill(helper.pid, signal.SIGKILL)
        await asyncio.gather(*tasks)
        assert log._syncer.process.pid != helper.pid
        await entry(log, 11)

    asyncio.run(main())
    assert log.verify().entries == 12
    log.close()


def test_a_helper_that_exits_while_idle_is_replaced_at_the_next_entry(tmp_path):
    log = AuditLog(tmp_path / "audit.log")

    async def main():
        await entry(log, 0)
        helper = log._syncer.process
        helper.kill()  # nothing waits: the loop learns it only from its socket
        helper.wait()
        await asyncio.sleep(0.05)
        for i in range(1, 4):  # each must still come back, on disk
            await asyncio.wait_for(entry(log, i), timeout=10)
        assert log._syncer.process.pid != helper.pid

    asyncio.run(main())
    assert log.verify().entries == 4
    log.close()


def test_the_helper_outlives_a_sigterm_to_the_server_group(tmp_path):
    log = AuditLog(tmp_path / "audit.log")

    async def main():
        await entry(log, 0)
        helper = log._syncer.process
        os.kill(helper.pid, signal.SIGTERM)  # as `timeout` or a service manager sends it
        await asyncio.sleep(0.1)
        assert helper.poll() is None
        await asyncio.wait_for(entry(log, 1), timeout=10)
        assert log._syncer.process.pid == helper.pid
        return helper

    helper = asyncio.run(main())
    log.close()
    assert helper.poll() is not None  # closing the log ends it


def test_each_event_loop_gets_its_own_helper(tmp_path):
    log = AuditLog(tmp_path / "audit.log")
    for i in range(3):  # asyncio.run makes a new loop each time
        asyncio.run(entry(log, i))
    assert log.verify().entries == 3
    log.close()


def failing_disk(monkeypatch) -> None:
    """The disk is what fails, not the helper: a helper that answers EIO to its first
    request, as the real one does when fdatasync fails."""
    eio = ("import socket, struct, sys; s = socket.socket(fileno=int(sys.argv[2])); "
           "s.recv(8); s.sendall(struct.pack('<q', -5))")
    monkeypatch.setattr(audit, "LoopSyncer", functools.partial(
        audit.LoopSyncer, command=[sys.executable, "-c", eio]))


def test_a_failed_fsync_fails_every_waiting_coroutine_and_later_records(tmp_path, monkeypatch):
    failing_disk(monkeypatch)
    log = AuditLog(tmp_path / "audit.log")

    async def main():
        return await asyncio.gather(
            *(entry(log, i)
              for i in range(5)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(o, AuditError) and "fsync failed" in str(o) for o in outcomes)
    with pytest.raises(AuditError, match="fsync failed"):
        record(log, 99)


def test_without_sync_wait_a_line_is_written_before_return_and_synced_after(tmp_path):
    log = AuditLog(tmp_path / "audit.log", sync_wait=False, max_unsynced_s=0.3)
    path = tmp_path / "audit.log"

    async def main():
        await entry(log, 0)
        helper = log._syncer.process
        os.kill(helper.pid, signal.SIGSTOP)  # a disk that does not answer
        try:
            for i in range(1, 6):  # no wait: each returns with its line in the file
                await asyncio.wait_for(entry(log, i), timeout=10)
                assert json.loads(path.read_bytes().splitlines()[-1])["case"] == i
            await asyncio.sleep(0.4)  # the oldest unsynced line is now too old
            late = asyncio.create_task(entry(log, 6))
            await asyncio.sleep(0.2)
            assert not late.done()  # it waits for the disk, as with sync_wait=True
        finally:
            os.kill(helper.pid, signal.SIGCONT)
        await asyncio.wait_for(late, timeout=10)
        while log._synced < 7:  # the round asked for by the last lines still comes
            await asyncio.sleep(0.001)

    asyncio.run(main())
    assert log.verify().entries == 7
    log.close()


def test_without_sync_wait_a_failed_fsync_refuses_the_next_record(tmp_path, monkeypatch):
    failing_disk(monkeypatch)
    log = AuditLog(tmp_path / "audit.log", sync_wait=False)

    async def main():
        await entry(log, 0)
        deadline = time.monotonic() + 60
        while True:  # refused once the helper's answer (EIO) has come
            assert time.monotonic() < deadline, "the failed fsync was never reported"
            try:
                await entry(log, 1)
            except AuditError as exc:
                return exc
            await asyncio.sleep(0.01)

    assert "fsync failed" in str(asyncio.run(main()))
    with pytest.raises(AuditError, match="fsync failed"):
        record(log, 99)


def test_without_sync_wait_rounds_are_paced_and_every_line_is_synced(tmp_path, monkeypatch):
    rounds = []
    ask = LoopSyncer.request
    monkeypatch.setattr(LoopSyncer, "request",
                        lambda self, ticket: (rounds.append(ticket), ask(self, ticket)))

    def run(pace: float) -> int:
        rounds.clear()
        log = AuditLog(tmp_path / f"audit-{pace}.log", sync_wait=False, sync_pace_s=pace)

        async def main():
            started = time.monotonic()
            for i in range(100):  # a query every ~2 ms for ~0.2 s
                await entry(log, i)
                await asyncio.sleep(0.002)
            took = time.monotonic() - started
            deadline = time.monotonic() + 10
            while log._synced < 100:  # the last lines' round still comes, unasked
                assert time.monotonic() < deadline, "the last lines were never synced"
                await asyncio.sleep(0.005)
            return took

        took = asyncio.run(main())
        assert log.verify().entries == 100
        log.close()
        if pace:  # at most one round a pace (and the first at once)
            assert len(rounds) <= took / pace + 2
        return len(rounds)

    assert run(0.05) < run(0.0)


def test_a_bad_sync_pace_is_refused(tmp_path):
    with pytest.raises(ValueError, match="sync_pace_s"):
        AuditLog(tmp_path / "audit.log", sync_wait=False, sync_pace_s=2.0)


def test_a_bad_unsynced_bound_is_refused(tmp_path):
    with pytest.raises(ValueError, match="max_unsynced_s"):
        AuditLog(tmp_path / "audit.log", sync_wait=False, max_unsynced_s=0)


def test_two_logs_on_one_file_keep_one_chain(tmp_path):
    path = tmp_path / "audit.log"
    first, second = AuditLog(path), AuditLog(path)
    for i in range(10):
        record(first if i % 3 else second, i, "first" if i % 3 else "second")
    assert first.head() == second.head() and first.head()[0] == 10
    assert_one_chain_holding(second, {("first" if i % 3 else "second", i) for i in range(10)})


CHILD = """
import sys
from api.audit import AuditLog
log = AuditLog(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(sys.argv[2])):
    log.record(actor="child", role="official", action="case.f1", detail={"i": i})
log.close()
"""


def test_two_processes_appending_at_once_keep_one_chain(tmp_path):
    path, n = tmp_path / "audit.log", 300
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(n)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline() == "ready\n"
        log = AuditLog(path)  # opened before the child writes: it must catch up as it goes
        child.stdin.write("go\n")
        child.stdin.flush()
        for i in range(n):
            record(log, i, "parent")
        assert child.wait(timeout=120) == 0
    finally:
        child.kill()
        child.wait()
    assert_one_chain_holding(log, {(who, i) for who in ("parent", "child") for i in range(n)})
