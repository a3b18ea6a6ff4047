"""`qrtrace ingest FILE --data DIR`: scan events from a file into the index (embedded log).

The file holds JSON lines (one scan event per line) or concatenated packed-v1 batches
(see ingest/wire.py). Every record passes through the same worker as Kafka's; a record
or row that can never be processed is counted and listed with its reason, by its line
(JSON lines) or its batch and rows (packed).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from api.cli import UsageError
from api.notice import notice_if_slow

SHOW_REJECTED = 20
CHUNK = 2000


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `ingest`."""
    p = subparsers.add_parser(
        "ingest", help="load scan events (JSON lines or packed batches) into the index",
        description="Verify the tokens of scan events from a file and append the check-ins "
                    "to the index of a data folder, through the embedded log.")
    p.add_argument("file", metavar="FILE", help="JSON lines or packed-v1 batches ('-' = stdin)")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="data folder whose keys.json issued the tokens")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Ingest the file; returns 0 (1 if any record was rejected). Raises UsageError."""
    from api.datafolder import open_keys_and_index
    from ingest.embedded import EmbeddedLog
    from ingest.runtime import file_records
    from ingest.worker import Worker

    try:
        blob = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    data = Path(args.data)
    keyring, index = open_keys_and_index(data)
    # the worker's log lines are for a service's log collector; here the summary below
    # names every rejected record (Python's last-resort handler printed a bare "rejected")
    logging.getLogger("ingest.worker").setLevel(logging.ERROR)
    log = EmbeddedLog()
    worker = Worker(log, index, keyring, max_records=CHUNK, poll_timeout_s=0)
    began = time.perf_counter()
    try:
        with notice_if_slow(f"ingest: indexing the scans of {args.file} (the first run after "
                            "an install also compiles the kernels: tens of seconds)..."):
            pending = []
            places: list[tuple[str, int]] = []  # (where, start) by the log's offset
            for record in file_records(blob):
                places.append((record.where, record.start))
                pending.append(log.submit(record.value, record.headers))
                if len(pending) >= CHUNK:
                    _drain(worker, log)
                    pending.clear()
            _drain(worker, log)
    finally:
        log.close()
        index.close()
    seconds = time.perf_counter() - began
    m = worker.metrics
    rejected = [_rejection(blob, *places[r.offset], r, reason)
                for r, reason in sorted(log.dead_letters, key=lambda d: d[0].offset)]
    summary = {"file": args.file, "data": str(data), **m.as_dict(), "seconds": round(seconds, 3)}
    summary.pop("lag", None)
    if args.json:
        print(json.dumps({**summary, "rejected_records": rejected}))
    else:
        print(f"{m.events_in} events in {m.records_in} records: {m.checkins_added} check-ins "
              f"added, {m.duplicates} duplicates, {sum(m.rejected.values())} rejected "
              f"({seconds:.2f} s)")
        for item in rejected[:SHOW_REJECTED]:
            rows = item.get("rows")
            shown = "" if rows is None else f", {_rows_text(rows)}"
            print(f"  {item['where']}{shown}: {item['reason']}")
        if len(rejected) > SHOW_REJECTED:
            print(f"  ... and {len(rejected) - SHOW_REJECTED} more")
    return 1 if m.rejected else 0


def _drain(worker, log) -> None:
    while log.lag():
        worker.run_once()


def _rejection(blob: bytes, where: str, start: int, letter, reason: str) -> dict:
    """What the summary says of one dead letter: where its record is in the file, and
    for a packed batch refused in part, which of its rows (1-based)."""
    item = {"where": where, "reason": reason}
    if where.startswith("batch") and letter.value is not None:
        from ingest.wire import HEADER_SIZE, ROW_SIZE

        count = int.from_bytes(blob[start + 8:start + 12], "little")
        item["rows"] = _refused_rows(blob[start:start + HEADER_SIZE + ROW_SIZE * count],
                                     letter.value)
    return item


def _refused_rows(batch: bytes, refused: bytes) -> list[int] | None:
    """The 1-based rows of packed `batch` that the packed `refused` (a dead letter of
    some of its rows) holds; None when either is not a whole packed batch (the batch
    was refused as it is)."""
    from ingest.wire import decode_packed

    whole, part = decode_packed(batch), decode_packed(refused)
    if not (whole.ok and part.ok):
        return None
    rows: dict[tuple, list[int]] = {}
    for i, row in enumerate(zip(*_columns(whole.batch), strict=True), 1):
        rows.setdefault(row, []).append(i)
    found = [rows[row].pop(0) for row in zip(*_columns(part.batch), strict=True)
             if rows.get(row)]
    return sorted(found)


def _columns(batch) -> list[list]:
    return [batch.venue.tolist(), batch.device.tolist(), batch.seq.tolist(),
            batch.t_in.tolist(), batch.t_out.tolist(), batch.token.tolist()]


def _rows_text(rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:10]))
    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"
