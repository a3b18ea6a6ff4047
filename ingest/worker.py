"""The worker: scan records from a log into the index, durably, a batch at a time.

    log = EmbeddedLog()  # or KafkaLog(bootstrap, offsets_path)
    worker = Worker(log, index, load_keyring(data_dir))  # or KeyFile(path): reloaded
    worker.run(stop_event)

Each batch: poll; decode the records (a bad one gets its reason); decode camera frames;
verify every token in one call (decoder.verify_tokens); refuse rows that the index would
refuse (times outside [0, 2**32), a check-out not after its check-in) and, as the API
does, times in the future or older than the retention period; append the rest to
the index (durable when it returns: the index's write-ahead log); send every refused
record or row to the dead-letter log with its reason; checkpoint the batch. A large batch
is appended in parts, in order, the next part decoded and verified in a second thread
while one is appended; the dead letters and the checkpoint still come after every part
is durable. A bad record or row never stops the batch. Retried scans (the same person,
venue and t_in) are counted as duplicates by the index, not added twice.

With `purge_every_s`, `run` also deletes the check-ins older than the index's retention
period from every file, between batches (a minute after start, then every
purge_every_s): a Kafka worker's folder is a shard that no server purges. `qrtrace
serve` purges its own index and runs its worker without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from decoder import KeyRing, Kind, RevocationList, Status, verify_tokens
from ingest.events import TOKEN_DTYPE, ScanBatch, concat
from ingest.log import Record, ScanLog
from ingest.wire import (
    FORMAT_HEADER,
    JSON,
    PACKED_V1,
    ROW_SIZE,
    decode_packed_many,
    decode_record,
    encode_packed,
    packed_count,
    parse_json_many,
    record_format,
)
from tracing.checkins import MAX_TIME, MAX_VISIT
from tracing.errors import InvalidCheckin

logger = logging.getLogger("qrtrace.ingest")

# a poll of more than twice this many packed rows' worth of bytes is appended in parts,
# the next part verified while one is appended (Worker.process)
PART_EVENTS = 1 << 17
# a scan may be this far ahead of the worker's clock (the API's default, api/settings.py)
FUTURE_SKEW_S = 300

_JSON = JSON.encode()
_PACKED = PACKED_V1.encode()


@dataclass
class Metrics:
    """Counters since the worker started; `lag` is the last measured backlog."""

    records_in: int = 0
    events_in: int = 0
    checkins_added: int = 0
    duplicates: int = 0
    rejected: Counter = field(default_factory=Counter)
    batches: int = 0
    purged: int = 0
    lag: int = -1

    def as_dict(self) -> dict:
        """A flat dict: rejected counts as `rejected.<reason>` and their total."""
        out = {k: v for k, v in vars(self).items() if k != "rejected"}
        out["rejected"] = sum(self.rejected.values())
        out.update({f"rejected.{k}": v for k, v in sorted(self.rejected.items())})
        return out


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch did."""

    records: int
    events: int
    added: int
    duplicates: int
    rejected: dict[str, int]


def reason_key(reason: str) -> str:
    """The counter name of a reason: its first part ("token: bad_mac" stays whole; a
    frame's detail in parentheses is left out)."""
    head, _, rest = reason.partition(":")
    rest = rest.partition(" (")[0].strip()
    return f"{head}: {rest}" if head in ("token", "frame", "time") else head


class Worker:
    """Moves scan records from a ScanLog into a CheckinIndex; see the module docstring."""

    def __init__(self, log: ScanLog, index, keys: KeyRing | Callable[[], KeyRing], *,
                 max_records: int = 5000,
                 poll_timeout_s: float = 0.5, part_events: int | None = None,
                 purge_every_s: float | None = None, future_skew_s: int = FUTURE_SKEW_S,
                 clock: Callable[[], float] = time.time,
                 revoked: Callable[[], RevocationList] | None = None):
        if purge_every_s is not None and purge_every_s <= 0:
            raise ValueError(f"purge_every_s must be positive, got {purge_every_s}")
        self.log = log
        self.purge_every_s = purge_every_s
        self.future_skew_s, self.clock = future_skew_s, clock
        self.part_events = part_events or PART_EVENTS
        self.index = index
        # the ring, or a callable giving the current one (api/keystore.KeyFile: a
        # rotation reaches a running worker), asked once a batch
        self._keys = keys if callable(keys) else (lambda: keys)
        self.keyring = self._keys()
        # revoked token ids, asked once a batch (api/revocations.RevocationFile); None:
        # none are checked
        self._revoked = revoked
        self.revocations = None if revoked is None else revoked()
        self.max_records = max_records
        self.poll_timeout_s = poll_timeout_s
        self.metrics = Metrics()
        index.reserve_key_tables()  # a worker appends much: its heads' tables now

    # ---- the loop ------------------------------------------------------------------

    def run_once(self) -> BatchOutcome | None:
        """Poll one batch and process it; None if the poll timed out empty."""
        records = self.log.poll(self.max_records, self.poll_timeout_s)
        if not records:
            return None
        return self.process(records)

    def run(self, stop: threading.Event | None = None, *, idle_exit_s: float | None = None,
            report_every_s: float = 10.0) -> Metrics:
        """Process batches until `stop` is set (or nothing came for idle_exit_s seconds).

        Idle time counts only while the log is ready (Kafka: partitions assigned).
        Logs a metrics line every report_every_s seconds and at the end. Returns the
        metrics. Raises LogError if the log fails, StorageError if the index does."""
        stop = stop or threading.Event()
        last_record = last_report = time.monotonic()
        next_purge = (None if self.purge_every_s is None
                      else last_record + min(60.0, self.purge_every_s))
        while not stop.is_set():
            outcome = self.run_once()
            now = time.monotonic()
            if outcome is not None or not self.log.ready():
                last_record = now
            elif idle_exit_s is not None and now - last_record >= idle_exit_s:
                break
            if next_purge is not None and now >= next_purge:
                self.purge()
                next_purge = time.monotonic() + self.purge_every_s
            if now - last_report >= report_every_s:
                self.report()
                last_report = now
        self.report()
        return self.metrics

    def purge(self) -> int:
        """Delete the index's expired check-ins now (CheckinIndex.purge); log and return
        how many. Raises StorageError if the index fails."""
        removed = self.index.purge(int(time.time()))
        self.metrics.purged += removed
        logger.info("retention purge", extra={"fields": {
            "removed": removed, "retention_days": self.index.retention_days}})
        return removed

    def report(self) -> None:
        """Measure the lag and log the metrics as one structured line."""
        try:
            self.metrics.lag = self.log.lag()
        except Exception:  # a lag we cannot measure is not worth stopping for
            self.metrics.lag = -1
        logger.info("metrics", extra={"fields": self.metrics.as_dict()})

    # ---- one batch -----------------------------------------------------------------

    def process(self, records: list[Record]) -> BatchOutcome:
        """Decode, verify, append and checkpoint `records`; returns what it did.

        A large poll goes to the index in parts of about `part_events` events, in order:
        while one part is appended (and fsynced), the next is decoded and verified in a
        second thread (the kernels release the GIL), so the two cores share the work.
        Every part is durable before the dead letters are sent and the poll is
        checkpointed, once, as before; a kill in between leaves the whole poll to be read
        again (the index counts the parts already stored as duplicates)."""
        rejected: Counter = Counter()
        letters: list[tuple[Record, str, bytes | None, int]] = []
        self.keyring = self._keys()
        if self._revoked is not None:
            self.revocations = self._revoked()
        parts = self._parts(records)
        added = duplicates = n = 0
        with contextlib.closing(self._prepared(parts)) as prepared:
            for part, (batch, source, reasons, persons, refused) in prepared:
                n += len(batch)
                letters.extend(refused)
                a, d = self._append(batch, persons, reasons)
                added += a
                duplicates += d
                if reasons.any():
                    self._reject_rows(part, batch, source, reasons, letters)
        for record, reason, value, rows in letters:
            rejected[reason_key(reason)] += rows
            self.log.dead_letter(record, reason, value)
        self.log.checkpoint(records)
        m = self.metrics
        m.records_in += len(records)
        m.events_in += n
        m.checkins_added += added
        m.duplicates += duplicates
        m.rejected.update(rejected)
        m.batches += 1
        if rejected:
            fields = {f"rejected.{k}": v for k, v in rejected.items()}
            logger.warning("rejected", extra={"fields": {"records": len(records), **fields}})
        return BatchOutcome(len(records), n, added, duplicates, dict(rejected))

    def _parts(self, records: list[Record]) -> list[list[Record]]:
        """`records` cut into runs of about part_events packed rows' worth of bytes."""
        limit = self.part_events * ROW_SIZE
        sizes = [0 if r.value is None else len(r.value) for r in records]
        if sum(sizes) < 2 * limit:
            return [records]
        parts, start, size = [], 0, 0
        for i, s in enumerate(sizes):
            size += s
            if size >= limit:
                parts.append(records[start:i + 1])
                start, size = i + 1, 0
        if start < len(records):
            parts.append(records[start:])
        return parts

    def _prepared(self, parts: list[list[Record]]):
        """Each part with what `_prepare` made of it, in order; parts after the first are
        prepared in a second thread, ahead of the caller."""
        if len(parts) == 1:
            yield parts[0], self._prepare(parts[0])
            return
        pool = ThreadPoolExecutor(1, thread_name_prefix="qrtrace-prepare")
        try:
            futures = [pool.submit(self._prepare, part) for part in parts]
            for part, future in zip(parts, futures, strict=True):
                yield part, future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _prepare(self, records: list[Record]):
        """Decode and verify `records`, without side effects: the batch, each row's
        record, the rows' reasons so far, the person ids, and the refused records
        (record, reason, None, 1) to send to the dead letters."""
        refused: list[tuple[Record, str, bytes | None, int]] = []
        batch, source = self._decode(records, refused)
        batch, source, unread = self._read_frames(batch, source)
        reasons = Reasons(len(batch))
        for row, reason in unread.items():
            reasons.set_row(row, reason)
        checked = verify_tokens(batch.token, self.keyring, revoked=self.revocations)
        bad = checked.status != Status.OK
        reasons.mark(bad, checked.status.astype(np.int64) + _STATUS_CODE)
        reasons.mark(~bad & (checked.kind != Kind.PERSON), "token: not a person token")
        _check_times(batch, reasons, int(self.clock()), self.future_skew_s,
                     self.index.retention_days * 86_400)
        return batch, source, reasons, checked.id, refused

    def _decode(self, records: list[Record], refused: list) -> tuple[ScanBatch, np.ndarray]:
        """The events of `records` as one batch, and each row's record (its position in
        `records`); a record that does not decode goes to `refused` with its reason.
        Packed records are copied straight into the batch's columns, JSON records parsed
        together."""
        batches, sources = [], []
        packed, packed_at, counts = [], [], []
        json_values, json_records = [], []
        for i, record in enumerate(records):
            value, headers = record.value, record.headers
            if headers and headers[0][0] == FORMAT_HEADER:  # the usual place: no search
                fmt = headers[0][1]
            else:
                fmt = None if value is None else record_format(value, headers)
            if value is not None and fmt == _JSON:
                json_values.append(value)
                json_records.append(i)
            elif value is not None and fmt == _PACKED:
                count, reason = packed_count(value)
                if reason is None:
                    packed.append(value)
                    packed_at.append(i)
                    counts.append(count)
                else:
                    refused.append((record, reason, None, 1))
            else:
                decoded = decode_record(value, headers)
                if decoded.ok:
                    batches.append(decoded.batch)
                    sources.append(np.full(len(decoded.batch), i, np.int64))
                else:
                    refused.append((record, decoded.reason, None, 1))
        if packed:
            batches.insert(0, decode_packed_many(packed, counts))
            sources.insert(0, np.repeat(np.asarray(packed_at, np.int64), counts))
        if json_values:
            events, rows, bad_json = parse_json_many(json_values)
            for j, reason in bad_json:
                refused.append((records[json_records[j]], reason, None, 1))
            batches.append(events)
            sources.append(np.asarray(json_records, np.int64)[np.asarray(rows, np.int64)])
        source = np.concatenate(sources) if sources else np.empty(0, np.int64)
        return concat(batches), source

    def _read_frames(self, batch: ScanBatch, source: np.ndarray
                     ) -> tuple[ScanBatch, np.ndarray, dict[int, str]]:
        """The batch with its frames' codes in the token column, a row more (from the
        same record) for each further person a frame shows, and the reason of each frame
        row without a token."""
        if not batch.frames:
            return batch, source, {}
        from decoder import frame_tokens

        tokens = batch.token.copy()
        rows = sorted(batch.frames)
        unread: dict[int, str] = {}
        more_rows: list[int] = []
        more_tokens: list[bytes] = []
        for row, (texts, reason) in zip(rows, frame_tokens([batch.frames[r] for r in rows]),
                                        strict=True):
            if not texts:
                unread[row] = reason or "frame: no token found"
                continue
            tokens[row] = texts[0].encode("ascii")
            for text in texts[1:]:
                more_rows.append(row)
                more_tokens.append(text.encode("ascii"))
        filled = ScanBatch(batch.venue, batch.device, batch.seq, batch.t_in, batch.t_out,
                           np.asarray(tokens, dtype=TOKEN_DTYPE), batch.frames)
        if more_rows:
            idx = np.asarray(more_rows, np.int64)
            more = ScanBatch(batch.venue[idx], batch.device[idx], batch.seq[idx],
                             batch.t_in[idx], batch.t_out[idx],
                             np.asarray(more_tokens, dtype=TOKEN_DTYPE))
            filled, source = concat([filled, more]), np.concatenate([source, source[idx]])
        return filled, source, unread

    def _append(self, batch: ScanBatch, persons: np.ndarray, reasons: Reasons
                ) -> tuple[int, int]:
        rows = np.flatnonzero(reasons.code == 0)
        if not rows.shape[0]:
            return 0, 0
        if rows.shape[0] == len(batch):  # the usual batch: every row goes in, no gather
            cols = (persons, batch.venue, batch.t_in, batch.t_out)
        else:
            cols = (persons[rows], batch.venue[rows], batch.t_in[rows], batch.t_out[rows])
        try:
            result = self.index.append(*cols)
            return result.added, result.duplicates
        except InvalidCheckin:
            pass
        # the index refused a row that our checks let through: find it row by row, so
        # that one bad row does not stop the batch
        added = duplicates = 0
        for j, row in enumerate(rows.tolist()):
            try:
                result = self.index.append(*(c[j:j + 1] for c in cols))
            except InvalidCheckin as exc:
                reasons.set_row(row, f"index: {exc}")
                continue
            added += result.added
            duplicates += result.duplicates
        return added, duplicates

    def _reject_rows(self, records, batch, source, reasons: Reasons, letters: list) -> None:
        """One dead letter per (record, reason), into `letters`: the refused rows in the
        record's format."""
        bad = np.flatnonzero(reasons.code)
        groups: dict[tuple[int, int], list[int]] = {}
        for row, code in zip(bad.tolist(), reasons.code[bad].tolist(), strict=True):
            groups.setdefault((int(source[row]), code), []).append(row)
        for (i, code), rows in groups.items():
            record, reason = records[i], reasons.texts[code]
            part = batch.take(np.array(rows, np.int64))
            # a JSON record is one event: keep its bytes; of a packed batch keep only
            # the refused rows, as a packed batch
            whole = int((source == i).sum()) == len(rows) and not part.frames
            value = None if whole or part.frames else encode_packed(part)
            letters.append((record, reason, value, len(rows)))


class Reasons:
    """Why each row of a batch is refused: a small code per row (0: not refused) and the
    text of each code. Codes, not an array of strings: comparing 640,000 Python objects
    with None cost milliseconds, several times a batch. The first reason a row gets
    stays."""

    def __init__(self, n: int):
        self.code = np.zeros(n, np.int32)
        self.texts: list[str | None] = list(_FIXED_REASONS)
        self._codes = {text: c for c, text in enumerate(self.texts) if text is not None}

    def code_of(self, text: str) -> int:
        """The code of a reason's text (a new one for a text not seen before)."""
        code = self._codes.get(text)
        if code is None:
            code = self._codes[text] = len(self.texts)
            self.texts.append(text)
        return code

    def mark(self, rows: np.ndarray, reason) -> None:
        """Give the rows of mask `rows` not refused yet `reason`: a text, or a code per
        row (an array like `code`)."""
        rows = rows & (self.code == 0)
        if isinstance(reason, str):
            self.code[rows] = self.code_of(reason)
        else:
            self.code[rows] = reason[rows]

    def set_row(self, row: int, text: str) -> None:
        """Refuse one row with `text` (it replaces an earlier reason: the index's)."""
        self.code[row] = self.code_of(text)

    def any(self) -> bool:
        """True if some row is refused."""
        return bool(self.code.any())


# code 0: not refused; then the token statuses' reasons, in Status order
_FIXED_REASONS = [None, *(f"token: {s.reason}" for s in Status)]
_STATUS_CODE = 1


def _check_times(batch: ScanBatch, reasons: Reasons, now: int, skew_s: int,
                 retention_s: int) -> None:
    """Mark rows whose times the index would refuse (see tracing.checkins), and, as the
    API does (api/intake.py), times in the future beyond `skew_s` and check-ins older
    than the retention period (the next purge would delete them)."""
    t_in, t_out = batch.t_in, batch.t_out
    out_of_range = (t_in < 0) | (t_in >= MAX_TIME)
    has_out = t_out > 0
    not_after = has_out & (t_out <= t_in)
    too_long = has_out & ~not_after & (t_out - t_in > MAX_VISIT)
    future_in = t_in > now + skew_s
    too_old = t_in < now - retention_s
    future_out = has_out & (t_out > now + skew_s)
    if not (out_of_range.any() or not_after.any() or too_long.any() or future_in.any()
            or too_old.any() or future_out.any()):
        return
    reasons.mark(out_of_range, "time: t_in outside [0, 2**32) seconds")
    reasons.mark(future_in, "time: check-in is in the future")
    reasons.mark(too_old, "time: check-in is older than the retention period")
    reasons.mark(~out_of_range & not_after, "time: t_out not after t_in")
    reasons.mark(~out_of_range & too_long, "time: visit longer than a day")
    reasons.mark(future_out, "time: check-out is in the future")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time (UTC ISO 8601), level, logger, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        from datetime import UTC, datetime

        moment = datetime.fromtimestamp(record.created, UTC)
        doc = {"time": moment.isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name,
               "message": record.getMessage()}
        doc.update(getattr(record, "fields", {}))
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Send qrtrace's logs to stderr as JSON lines (for the worker and ingest commands)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger("qrtrace")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
