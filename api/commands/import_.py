"""`qrtrace import`: load check-ins (and venues) from CSV into a data folder's index.

Bad rows are reported with their line number and reason and the good rows still load;
the summary says how many rows loaded, were duplicates of check-ins already there, or
were rejected, so that loaded + duplicates + rejected equals the rows in the file.
"""

from __future__ import annotations

import argparse
import bisect
import json
import queue
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from api.cli import UsageError
from api.notice import notice_if_slow
from ingest.runtime import index_path, private_data_folder
from tracing import csvio
from tracing.column_files import scratch
from tracing.errors import InvalidCheckin, TracingError
from tracing.venues import VenueTable, VenueTableError

SHOW_REJECTED = 20
DAY = 86_400
MAX_BATCH = 1 << 27  # rows per append: 134M rows, 4.3 GB of columns
# Shown when an append runs on past two seconds: a big file, or the kernels compiling.
INDEXING = ("import: indexing {rows:,} rows (the first run after an install also compiles "
            "the kernels: tens of seconds)...")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `import`."""
    p = subparsers.add_parser(
        "import", help="load check-ins (and venues) from CSV files",
        description="Load check-ins from CSV (person,venue,check_in,check_out; times as "
                    "epoch seconds or ISO 8601 with an offset; check_out may be empty) "
                    "and optionally a venue table (venue,name,village,category,dwell_minutes).")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="data folder (created if its parent exists)")
    p.add_argument("checkins", metavar="CHECKINS.csv", help="check-in CSV file ('-' for stdin)")
    p.add_argument("--venues", metavar="VENUES.csv", help="venue CSV file")
    p.add_argument("--retention-days", type=int, default=None,
                   help="retention period in days (default: 21 for a new index, else "
                        "the stored one)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: counts and every rejected row")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _open_index(data: Path, retention_days: int | None):
    from tracing.index import CheckinIndex

    if retention_days is not None and retention_days < 1:
        raise UsageError(f"--retention-days must be at least 1, got {retention_days}")
    if data.exists() and not data.is_dir():
        raise UsageError(f"--data {data} is not a folder")
    if not data.exists() and not data.parent.is_dir():
        raise UsageError(f"--data {data}: folder {data.parent} does not exist")
    try:
        private_data_folder(data)
        return CheckinIndex.open(index_path(data), retention_days=retention_days, create=True)
    except (TracingError, OSError) as exc:
        raise UsageError(f"cannot open the index in {data}: {exc}") from exc


def _load_venues(idx, data: Path, path: str | None) -> tuple[int, list[csvio.RejectedRow]]:
    """Merge the venue CSV into the folder's table and give the index its dwell times."""
    if path is None:
        return 0, []
    try:
        venues, rejected = csvio.read_venues(path)
        table = VenueTable.load(data)
    except FileNotFoundError:
        raise UsageError(f"venue file {path} does not exist") from None
    except (csvio.CsvFormatError, VenueTableError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    table.update(venues)
    try:  # checked before the table is saved: a bad table must not stay in the folder
        ids, dwell = table.resolved_dwell()
        idx.set_venue_dwell(ids, dwell)
    except (VenueTableError, InvalidCheckin, OverflowError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    table.save(data)
    return len(venues), rejected


class _Collected:
    """Chunks' rows gathered into one set of columns, for one append (one build).

    The index builds a batch of any size in one pass; each further batch of a file merges
    into everything before it (a 100M-row file in 32M-row batches was four builds, 290M
    rows written). The columns are allocated once, sized from the file and the first
    chunk's bytes per row, in memory that is touched only as rows arrive (scratch: small
    pages); they grow by half when the guess was short. Line numbers are kept per chunk,
    as a first line when its rows are consecutive lines (the usual case), so a row's
    line costs nothing until the index refuses the row.
    """

    def __init__(self, capacity: int):
        self.columns = [scratch(capacity, dtype)
                        for dtype in (np.uint64, np.uint64, np.int64, np.int64)]
        self.n = 0
        self.starts: list[int] = []  # first row of each chunk
        self.lines: list[int | np.ndarray] = []  # its first line, or every row's line
        self.rejected: list[csvio.RejectedRow] = []
        self.rows = 0

    def add(self, chunk: csvio.CheckinChunk) -> None:
        k = len(chunk.person)
        if self.n + k > self.columns[0].shape[0]:
            self._grow(self.n + k)
        for column, part in zip(self.columns, (chunk.person, chunk.venue, chunk.t_in,
                                               chunk.t_out), strict=True):
            column[self.n:self.n + k] = part
        line = chunk.line
        self.starts.append(self.n)
        self.lines.append(int(line[0]) if k and int(line[-1] - line[0]) == k - 1 else line)
        self.n += k
        self.rejected.extend(chunk.rejected)
        self.rows += chunk.rows

    def _grow(self, need: int) -> None:
        capacity = max(need, self.columns[0].shape[0] * 3 // 2)
        grown = []
        for column in self.columns:
            bigger = scratch(capacity, column.dtype)
            bigger[:self.n] = column[:self.n]
            grown.append(bigger)
        self.columns = grown

    def batch(self) -> tuple[np.ndarray, ...]:
        """The collected rows as (person, venue, t_in, t_out)."""
        return tuple(column[:self.n] for column in self.columns)

    def line(self, row: int) -> int:
        """The file line of collected row `row`."""
        i = bisect.bisect_right(self.starts, row) - 1
        first = self.lines[i]
        return first + row - self.starts[i] if isinstance(first, int) else \
            int(first[row - self.starts[i]])


def _collect(chunks, file_bytes: int | None) -> Iterator[_Collected]:
    """The chunks' rows in batches of up to MAX_BATCH rows (a whole file, usually)."""
    collected: _Collected | None = None
    for chunk in chunks:
        k = len(chunk.person)
        if collected is not None and collected.n + k > MAX_BATCH:
            yield collected
            collected = None
        if collected is None:
            collected = _Collected(_capacity(chunk, file_bytes))
        collected.add(chunk)
    if collected is not None:
        yield collected


def _capacity(chunk: csvio.CheckinChunk, file_bytes: int | None) -> int:
    """Rows to make room for: the file's size at the first chunk's bytes per row, with
    a margin (four chunks' worth when the size is unknown)."""
    k = max(len(chunk.person), 1)
    if file_bytes is None or chunk.bytes_read <= 0:
        return min(MAX_BATCH, 4 * k)
    guess = int(file_bytes / chunk.bytes_read * k * 1.05) + k
    return max(min(MAX_BATCH, guess), k)


def _prefetch(chunks: Iterator, depth: int = 2) -> Iterator:
    """Run the `chunks` generator in a thread, `depth` items ahead of the consumer.

    Parsing (a nogil numba kernel) then overlaps with the index's work on the batch
    before. An exception in the reader is raised here, in the consumer.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in chunks:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(done)
        except BaseException as exc:  # handed to the consumer
            items.put(exc)

    worker = threading.Thread(target=produce, name="csv-reader", daemon=True)
    worker.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _progress(chunks, bar) -> Iterator[csvio.CheckinChunk]:
    """Pass chunks through, moving the progress bar as the file is read."""
    for chunk in chunks:
        bar.update(chunk.bytes_read - bar.n)
        yield chunk


def _append(idx, rows: _Collected) -> tuple[int, int, list[csvio.RejectedRow]]:
    """Append collected rows; rows the index refuses are rejected alone, the others
    still load.

    A refused batch is split in halves until the refused rows stand alone, so a few bad
    rows cost a few dozen appends, not one per row.
    """
    person, venue, t_in, t_out = rows.batch()
    added = duplicates = 0
    rejected: list[csvio.RejectedRow] = []
    pending = [(0, rows.n)]
    while pending:
        lo, hi = pending.pop()
        part = slice(lo, hi)
        try:
            res = idx.append(person[part], venue[part], t_in[part], t_out[part])
        except InvalidCheckin as exc:
            if hi - lo == 1:
                text = f"{person[lo]},{venue[lo]},{t_in[lo]},{t_out[lo] or ''}"
                reason = re.sub(r"^row \d+: ", "", str(exc))  # the index's row number is 0
                rejected.append(csvio.RejectedRow(rows.line(lo), reason, text))
            else:
                mid = (lo + hi) // 2
                pending += [(mid, hi), (lo, mid)]
            continue
        added += res.added
        duplicates += res.duplicates
    return added, duplicates, rejected


def run(args: argparse.Namespace) -> int:
    """Import; returns 0 (1 when no row loaded although the file had rows)."""
    from tqdm import tqdm

    stdin = args.checkins == "-"
    source = Path(args.checkins)
    if not stdin and not source.is_file():
        raise UsageError(f"check-in file {source} does not exist")
    if args.venues and not Path(args.venues).is_file():
        raise UsageError(f"venue file {args.venues} does not exist")
    data = Path(args.data)
    began = time.perf_counter()
    idx = _open_index(data, args.retention_days)
    loaded = duplicates = rows = 0
    rejected: list[csvio.RejectedRow] = []
    now, expiring, future = int(time.time()), 0, 0
    retention_days = idx.retention_days
    try:
        venue_count, venue_rejected = _load_venues(idx, data, args.venues)
        size = None if stdin else source.stat().st_size
        reader = csvio.read_checkins(sys.stdin.buffer if stdin else source)
        with tqdm(total=size, unit="B", unit_scale=True, file=sys.stderr, desc="import",
                  disable=args.no_progress or None) as bar:
            def say(text: str) -> None:  # above the bar, which stays whole
                tqdm.write(text, file=sys.stderr)

            for batch in _collect(_progress(_prefetch(reader), bar), size):
                t_in = batch.batch()[2]
                expiring += int(np.count_nonzero(t_in < now - idx.retention_days * DAY))
                future += int(np.count_nonzero(t_in > now + DAY))
                # the first run after an install compiles the index's kernels here
                with notice_if_slow(INDEXING.format(rows=batch.n), say=say):
                    added, dups, refused = _append(idx, batch)
                loaded += added
                duplicates += dups
                rows += batch.rows
                rejected.extend(batch.rejected)
                rejected.extend(refused)
        if idx.stats().get("head_rows", 0):
            idx.compact()  # leave segments, not a log that every later open replays
    except csvio.CsvFormatError as exc:
        raise UsageError(f"{source}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc}") from None
    finally:
        idx.close()
    elapsed = time.perf_counter() - began
    rejected.sort(key=lambda r: r.line)
    summary = {
        "file": str(source), "data": str(data), "rows": rows, "loaded": loaded,
        "duplicates": duplicates, "rejected": len(rejected), "seconds": round(elapsed, 3),
        "rows_per_s": round(rows / elapsed) if elapsed > 0 else None,
        "venues": venue_count, "venues_rejected": len(venue_rejected),
        "older_than_retention": expiring, "in_the_future": future,
        "retention_days": retention_days,
    }
    _report(args, summary, rejected, venue_rejected)
    return 1 if rows and not loaded and not duplicates else 0


def _report(args, summary: dict, rejected: list, venue_rejected: list) -> None:
    if summary["older_than_retention"]:
        print(f"import: warning: {summary['older_than_retention']:,} rows are older than the "
              f"retention period ({summary['retention_days']} days): the next purge of a "
              "server or worker on this folder deletes them (--retention-days N keeps "
              "them longer)", file=sys.stderr)
    if summary["in_the_future"]:
        print(f"import: warning: {summary['in_the_future']:,} rows check in more than a day "
              "from now: a wrong time zone or unit?", file=sys.stderr)
    for label, rows in (("venues", venue_rejected), ("check-ins", rejected)):
        for r in rows[:SHOW_REJECTED]:
            print(f"{label} line {r.line}: {r.reason}", file=sys.stderr)
        if len(rows) > SHOW_REJECTED:
            more = "" if args.json else " (--json lists them all)"
            print(f"{label}: {len(rows) - SHOW_REJECTED} more rejected rows{more}",
                  file=sys.stderr)
    if args.json:
        out = {**summary, "rejected_rows": [r.to_dict() for r in rejected],
               "venues_rejected_rows": [r.to_dict() for r in venue_rejected]}
        print(json.dumps(out, ensure_ascii=False, default=_jsonable))
        return
    rate = f", {summary['rows_per_s']:,} rows/s" if summary["rows_per_s"] else ""
    venues = f"; {summary['venues']} venues" if summary["venues"] else ""
    print(f"imported {summary['file']}: {summary['loaded']} loaded, "
          f"{summary['duplicates']} duplicates, {summary['rejected']} rejected "
          f"of {summary['rows']} rows in {summary['seconds']:.2f} s{rate}{venues}")


def _jsonable(value):
    if isinstance(value, np.integer):
        return int(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
