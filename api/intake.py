"""Scans from check-in points to durable check-ins, with a result per item.

    intake = ScanIntake(LocalStore(sink, limiter), keyring, revoked, **settings)
    outcome = intake.submit(device, ScanBatch)   # durable when it returns

For a batch posted by a device (its venue comes from the device's binding, never from
the request): check the times (not in the future beyond a small clock skew, not older
than the retention period, a check-out after its check-in), verify every token in one
call (decoder.verify_tokens; person tokens only), then admit the batch through the rate
limiter (all or nothing: RateLimited leaves nothing written), then hand the accepted
rows to the sink in one call. Every item ends as exactly one of: accepted, duplicate
(the same person, venue and check-in time is already stored: a retried upload), or
rejected with its reason.

Two sinks: `IndexSink` appends to the embedded index (concurrent requests share one
fsync: the index's group commit) and knows duplicates; `KafkaSink` produces one packed
record per batch to the topic, keyed by venue, and waits for the broker's
acknowledgement (the workers index it; duplicates are absorbed there, so items are
reported accepted).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from api.ratelimit import RateLimited, ScanLimiter
from decoder import TOKEN_LEN, KeyRing, Kind, RevocationList, Status, verify_tokens
from ingest.events import ScanBatch
from ingest.wire import FORMAT_HEADER, PACKED_V1, encode_packed
from tracing.checkins import MAX_VISIT

ACCEPTED, DUPLICATE, REJECTED = 0, 1, 2
STATUS_NAMES = ("accepted", "duplicate", "rejected")
# Every reason an item can be rejected for; an item's reason is an index into this.
REASONS = np.array(
    [None, "time: check-in is in the future",
     "time: check-in is older than the retention period",
     "time: check-out is not after check-in", "time: check-out is in the future",
     "token: not a person token", "rate limited: device", "rate limited: venue",
     "rate limited: person", "time: visit longer than a day"]
    + [f"token: {s.reason}" for s in Status], dtype=object)
_FUTURE_IN, _TOO_OLD, _OUT_BEFORE_IN, _FUTURE_OUT, _NOT_PERSON = 1, 2, 3, 4, 5
_LIMITED = {"device": 6, "venue": 7, "person": 8}
_TOO_LONG = 9
# statuses of an authentic token that stopped being valid after a scan could be stored
_LATE = np.array([Status.REVOKED, Status.EXPIRED], np.uint8)
_TOKEN_CODE = np.arange(10, 10 + len(Status), dtype=np.uint8)


def token_bytes(text: str) -> bytes:
    """A scanned text as a token slot: its bytes when it has the token's shape (43 ASCII
    characters), else b"", an empty slot that the verifier calls malformed."""
    return text.encode("ascii") if len(text) == TOKEN_LEN and text.isascii() else b""


@dataclass(frozen=True)
class IntakeOutcome:
    """Per item, in order: `status` (uint8: ACCEPTED, DUPLICATE, REJECTED) and `reason`
    (object array, None unless rejected); `persons` the verified ids (0 if rejected)."""

    status: np.ndarray
    reason: np.ndarray
    persons: np.ndarray

    def counts(self) -> dict[str, int]:
        """How many items got each status."""
        found = np.bincount(self.status, minlength=3)
        return {name: int(found[i]) for i, name in enumerate(STATUS_NAMES)}

    def items(self, seq: np.ndarray) -> list[dict]:
        """One dict per item: seq, status and (when rejected) reason."""
        names = np.array(STATUS_NAMES, dtype=object)[self.status].tolist()
        out = []
        for s, name, reason in zip(seq.tolist(), names, self.reason.tolist(), strict=True):
            item = {"seq": s, "status": name}
            if reason is not None:
                item["reason"] = reason
            out.append(item)
        return out


class IndexSink:
    """The embedded backend: append to the index; returns the per-row duplicate mask."""

    def __init__(self, index) -> None:
        self.index = index

    def write(self, persons, venue, t_in, t_out, batch: ScanBatch) -> np.ndarray:
        """Append rows; a bool mask of the rows that were already stored."""
        result = self.index.append(persons, venue, t_in, t_out, rows=True)
        return result.duplicate

    def duplicates(self, persons, venue, t_in) -> np.ndarray:
        """Which rows a write now would call duplicates (bool per row); stores nothing."""
        return self.index.duplicates(persons, venue, t_in)


class SinkError(RuntimeError):
    """The sink did not take the rows (Kafka down or refusing them): answered 503."""


# Rows of one packed-v1 record the Kafka sink produces: 10,000 rows are 830 KB, within a
# broker's default 1 MB record limit (a 15,000-row upload in one record was refused).
RECORD_ROWS = 10_000


class KafkaSink:
    """The scale-out backend: packed-v1 records to `topic`, keyed by venue, each of one
    venue's scans and at most RECORD_ROWS of them."""

    def __init__(self, producer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        # why the last write failed, until one succeeds (a readiness problem)
        self.failing: str | None = None

    def write(self, persons, venue, t_in, t_out, batch: ScanBatch) -> np.ndarray:
        """Produce a venue's scans in records of at most RECORD_ROWS rows (the topic is
        keyed by venue: a venue's scans stay in one partition, so one worker's shard) and
        wait for every acknowledgement; nothing is known to be a duplicate. Raises
        SinkError when Kafka does not take them."""
        futures = []
        venues = np.unique(batch.venue).tolist()
        try:
            for v in venues:
                part = batch if len(venues) == 1 else batch.take(np.flatnonzero(batch.venue == v))
                for lo in range(0, len(part), RECORD_ROWS):
                    rows = part if len(part) <= RECORD_ROWS else \
                        part.take(np.arange(lo, min(lo + RECORD_ROWS, len(part))))
                    futures.append(self.producer.send(
                        self.topic, value=encode_packed(rows), key=str(v).encode(),
                        headers=[(FORMAT_HEADER, PACKED_V1.encode())]))
            for future in futures:
                future.get(timeout=30)
        except Exception as exc:  # kafka-python's errors, and its timeouts
            self.failing = (f"Kafka did not take the last scans ({type(exc).__name__}: "
                            f"{exc})")
            raise SinkError(f"{self.failing}; nothing of this request is known to be "
                            "stored: send it again (what was stored is answered "
                            "duplicate)") from exc
        self.failing = None
        return np.zeros(len(batch), np.bool_)


class LocalStore:
    """The last step of an intake, where all the scans of a service meet: the rate
    limits (shared counts) and the sink. A server of several processes runs one, in the
    process that owns the index; the others reach it through api.writer.

    Duplicates of stored check-ins take no room from the limits: the rows a write finds
    stored are given back after it, and a request the limits refuse is looked at again
    without its rows already stored (when the sink can tell: the embedded index), so that
    a retried upload is answered "duplicate" even when its device or persons are at their
    limits."""

    def __init__(self, sink, limiter: ScanLimiter) -> None:
        self.sink = sink
        self.limiter = limiter

    def admit_and_write(self, batch: ScanBatch, group: np.ndarray, ok: np.ndarray,
                        persons: np.ndarray
                        ) -> tuple[dict[int, RateLimited], np.ndarray, np.ndarray]:
        """Admit each group's valid rows (`ok`) through the limiter and write the
        admitted ones. Returns the refusals by group, the rows written (indices into the
        batch) and, for each of those, whether it was already stored. Durable when it
        returns."""
        refused, admitted, counted = self._admit(batch, group, ok, persons)
        for g in refused:
            ok = ok & (group != g)
        rows = np.flatnonzero(ok)
        duplicate = np.zeros(0, np.bool_)
        if rows.shape[0]:
            part = batch if rows.shape[0] == len(batch) else batch.take(rows)
            try:
                duplicate = self.sink.write(persons[rows], part.venue, part.t_in, part.t_out,
                                            part)
            except Exception:  # nothing known written: the limits get their room back
                counted_rows = rows[counted[rows]]
                if counted_rows.shape[0]:
                    self._refund(batch, group, counted_rows, persons, admitted)
                raise
            give_back = rows[duplicate & counted[rows]]
            if give_back.shape[0]:
                self._refund(batch, group, give_back, persons, admitted)
        return refused, rows, duplicate

    def _admit(self, batch: ScanBatch, group: np.ndarray, ok: np.ndarray,
               persons: np.ndarray) -> tuple[dict[int, RateLimited], float, np.ndarray]:
        """Admit each group's valid rows through the limiter: the refusals by group, when
        the admitted rows were counted (0 if none was), and which rows were (bool)."""
        refused: dict[int, RateLimited] = {}
        admitted = 0.0
        counted = np.zeros(len(batch), np.bool_)
        if not self.limiter.limits.enabled:
            return refused, admitted, counted
        if group.shape[0] and group[0] == group[-1] and (group == group[0]).all():
            groups = [(int(group[0]), np.flatnonzero(ok))]
        else:
            groups = [(int(g), np.flatnonzero(ok & (group == g))) for g in np.unique(group)]
        for g, rows in groups:
            try:
                at = self._admit_rows(batch, rows, persons)
            except RateLimited as exc:
                rows = self._not_stored(batch, rows, persons)
                if rows is None:
                    refused[g] = exc
                    continue
                try:  # without the rows already stored (a retried upload)
                    at = self._admit_rows(batch, rows, persons)
                except RateLimited as again:
                    refused[g] = again
                    continue
            if at:
                admitted = at if not admitted else min(admitted, at)
                counted[rows] = True
        return refused, admitted, counted

    def _admit_rows(self, batch: ScanBatch, rows: np.ndarray, persons: np.ndarray) -> float:
        """Count `rows` (of one device and venue) in the limits, or raise RateLimited and
        count none; when they were counted (0 if there were none)."""
        if not rows.shape[0]:
            return 0.0
        first = rows[0]
        return self.limiter.admit(int(batch.device[first]), int(batch.venue[first]),
                                  persons[rows], batch.t_in[rows])

    def stored(self, persons: np.ndarray, venue: np.ndarray, t_in: np.ndarray
               ) -> np.ndarray:
        """Which of these check-ins the sink holds (bool per row; all False when it
        cannot tell)."""
        duplicates = getattr(self.sink, "duplicates", None)
        if duplicates is None:
            return np.zeros(len(persons), np.bool_)
        return duplicates(persons, venue, t_in)

    def _not_stored(self, batch: ScanBatch, rows: np.ndarray, persons: np.ndarray
                    ) -> np.ndarray | None:
        """`rows` less those the sink already holds, or None when none is held or the
        sink cannot tell."""
        if getattr(self.sink, "duplicates", None) is None or not rows.shape[0]:
            return None
        stored = self.stored(persons[rows], batch.venue[rows], batch.t_in[rows])
        return rows[~stored] if stored.any() else None

    def _refund(self, batch: ScanBatch, group: np.ndarray, duplicates: np.ndarray,
                persons: np.ndarray, admitted: float) -> None:
        """Give the limits back the rows that stored nothing (a retried upload), per
        group (one device and venue each)."""
        for g in np.unique(group[duplicates]):
            rows = duplicates[group[duplicates] == g]
            self.limiter.refund(int(batch.device[rows[0]]), int(batch.venue[rows[0]]),
                                persons[rows], admitted, batch.t_in[rows])


class ScanIntake:
    """Checks, verifies, rate-limits and stores scans (see the module docstring)."""

    def __init__(self, store, keyring: Callable[[], KeyRing],
                 revoked: Callable[[], RevocationList], *,
                 retention_days: int, future_skew_s: int, clock=time.time) -> None:
        """`store` admits and writes the checked rows: a LocalStore, or in a server's
        follower process an api.writer.RemoteStore."""
        self.store = store
        self._keyring = keyring
        self._revoked = revoked
        self.retention_s = retention_days * 86400
        self.future_skew_s = future_skew_s
        self._clock = clock

    def submit(self, device: int, venue: int, batch: ScanBatch) -> IntakeOutcome:
        """Store the scans of `batch` for `device` at `venue` (both from the device's
        binding: the batch's own venue and device columns are overwritten). Durable when
        it returns. Raises RateLimited (nothing written) when over a limit."""
        batch.venue[:] = venue
        batch.device[:] = device
        outcome, refused = self.submit_groups(batch, np.zeros(len(batch), np.int64))
        if refused:
            raise refused[0]
        return outcome

    def submit_groups(self, batch: ScanBatch, group: np.ndarray
                      ) -> tuple[IntakeOutcome, dict[int, RateLimited]]:
        """Store scans of several requests in one write: `group` numbers each row's
        request; all rows of a group share one device and venue (set in the batch). A
        group over a rate limit gets nothing written and its RateLimited in the returned
        dict (its rows are REJECTED with reason "rate limited"); the others are stored.
        Durable when it returns."""
        n = len(batch)
        # reasons as small codes into REASONS (0 = none) while the batch is checked;
        # texts only at the end: comparisons on object arrays cost 5 ms per 50,000 rows
        code = self._check_times(batch)
        checked = verify_tokens(batch.token, self._keyring(), revoked=self._revoked(),
                                today=int(self._clock() // 86400))
        free = code == 0
        bad = free & (checked.status != Status.OK)
        code[bad] = _TOKEN_CODE[checked.status[bad]]
        code[free & ~bad & (checked.kind != Kind.PERSON)] = _NOT_PERSON
        stored = self._stored_before(batch, checked, free & bad)
        code[stored] = 0
        ok = (code == 0) & ~stored
        persons = np.where(ok, checked.id, 0).astype(np.uint64)
        refused, rows, duplicate = self.store.admit_and_write(batch, group, ok, persons)
        for g, exc in refused.items():
            code[(group == g) & ~stored] = _LIMITED[exc.scope]
        status = np.full(n, REJECTED, np.uint8)
        status[rows] = ACCEPTED
        status[rows[duplicate]] = DUPLICATE
        status[stored] = DUPLICATE
        return IntakeOutcome(status, REASONS[code], persons), refused

    def _stored_before(self, batch: ScanBatch, checked, bad: np.ndarray) -> np.ndarray:
        """Which rows are a retry of a check-in stored before their token was revoked or
        expired (bool per row): answered "duplicate", as any retried upload, not
        "rejected" (the device would think the check-in lost). Only where the store can
        tell (the index, in this process or the writer's); nothing of such a row is
        written again."""
        out = np.zeros(len(batch), np.bool_)
        lookup = getattr(self.store, "stored", None)
        late = bad & np.isin(checked.status, _LATE) & (checked.kind == Kind.PERSON)
        if lookup is None or not late.any():
            return out
        rows = np.flatnonzero(late)
        out[rows] = lookup(checked.id[rows].astype(np.uint64), batch.venue[rows],
                           batch.t_in[rows])
        return out

    def _check_times(self, batch: ScanBatch) -> np.ndarray:
        """Reason codes of the rows whose times are refused (0 elsewhere)."""
        now = int(self._clock())
        t_in, t_out = batch.t_in, batch.t_out
        has_out = t_out > 0
        code = np.zeros(len(batch), np.uint8)
        checks = (
            (t_in > now + self.future_skew_s, _FUTURE_IN),
            (t_in < now - self.retention_s, _TOO_OLD),
            (has_out & (t_out <= t_in), _OUT_BEFORE_IN),
            (has_out & (t_out > now + self.future_skew_s), _FUTURE_OUT),
            (has_out & (t_out - t_in > MAX_VISIT), _TOO_LONG),
        )
        for bad, value in checks:
            code[bad & (code == 0)] = value
        return code
