"""The single-scan batcher: concurrent requests share one intake call (group commit),
each hears its own outcome, and none is left waiting when storing fails or the batcher
closes. The intake here is a stand-in that records its batches: what is tested is the
coalescing and the routing of outcomes, not storage (tests/api/test_serve.py posts real
scans to a real server)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from api.batcher import ScanBatcher
from api.intake import ACCEPTED, DUPLICATE, IntakeOutcome
from api.ratelimit import RateLimited


class RecordingIntake:
    """Accepts every scan, except that a token seen before is a duplicate and a token
    starting with b"LIMIT" is over a rate limit; each call can be held at a gate."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[list[bytes]] = []
        self.seen: set[bytes] = set()
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()

    def submit_groups(self, batch, group):
        self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        tokens = [bytes(t) for t in batch.token]
        self.batches.append(tokens)
        status = np.full(len(tokens), ACCEPTED, np.uint8)
        refused = {}
        for i, token in enumerate(tokens):
            if token.startswith(b"LIMIT"):
                refused[int(group[i])] = RateLimited("device", 60, "too many scans")
            elif token in self.seen:
                status[i] = DUPLICATE
            self.seen.add(token)
        return IntakeOutcome(status, np.full(len(tokens), None, object),
                             np.zeros(len(tokens), np.uint64)), refused


def submit_all(batcher: ScanBatcher, tokens: list[bytes]):
    """Submit every token from one event loop at once; the results (or exceptions)."""
    async def run():
        return await asyncio.gather(
            *(batcher.submit(7, 3, token, 1_700_000_000 + i, 0, i)
              for i, token in enumerate(tokens)), return_exceptions=True)
    return asyncio.run(run())


def test_concurrent_scans_share_intake_calls_and_each_gets_its_outcome():
    intake = RecordingIntake()
    batcher = ScanBatcher(intake)
    try:
        tokens = [f"P{i:05d}".encode() for i in range(500)] + [b"P00007"]
        results = submit_all(batcher, tokens)
    finally:
        batcher.close()
    assert [r["seq"] for r in results] == list(range(501))
    assert [r["status"] for r in results] == ["accepted"] * 500 + ["duplicate"]
    stored = [t for batch in intake.batches for t in batch]
    assert sorted(stored) == sorted(tokens)  # each scan stored once, none lost
    assert len(intake.batches) < 10  # one loop turn's requests go in one intake call


def test_a_rate_limited_request_is_refused_alone():
    intake = RecordingIntake()
    batcher = ScanBatcher(intake)
    try:
        results = submit_all(batcher, [b"P1", b"LIMIT", b"P2"])
    finally:
        batcher.close()
    assert results[0]["status"] == "accepted" and results[2]["status"] == "accepted"
    assert isinstance(results[1], RateLimited)


def test_every_waiting_request_hears_when_storing_fails():
    batcher = ScanBatcher(RecordingIntake(fail=OSError("disk full")))
    try:
        results = submit_all(batcher, [f"P{i}".encode() for i in range(50)])
    finally:
        batcher.close()
    assert len(results) == 50
    assert all(isinstance(r, OSError) and "disk full" in str(r) for r in results)


def test_close_finishes_what_was_handed_over_and_refuses_what_comes_after():
    intake = RecordingIntake()
    intake.gate.clear()  # the first batch waits in the intake until the loop has closed
    batcher = ScanBatcher(intake)

    async def run():
        first = asyncio.ensure_future(batcher.submit(7, 3, b"P1", 1_700_000_000, 0, 1))
        await asyncio.sleep(0.05)  # handed over; the thread holds it at the gate
        closing = threading.Thread(target=batcher.close)
        closing.start()
        await asyncio.sleep(0.05)
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.submit(7, 3, b"P2", 1_700_000_000, 0, 2)
        intake.gate.set()
        result = await first
        closing.join(10)
        return result

    assert asyncio.run(run())["status"] == "accepted"
    assert intake.batches == [[b"P1"]]
