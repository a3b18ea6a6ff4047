"""Check-in and venue CSV files: read them in vectorised chunks, write them fast.

Check-ins: `person,venue,check_in,check_out` (a header line naming those columns is
optional; `check_out` may be empty or absent). Times are epoch seconds or ISO 8601 with a
UTC offset (`2021-12-01T07:30:00+07:00`, `...Z`); a time without an offset is rejected,
because it could be in any zone.

Reading is a numba kernel over whole chunks of bytes (`tracing.csvio_kernels`) for the
plain rows, and Python for the few lines the kernel flags: they either load (quoted
fields, spaces, fractional seconds, ids of 2^63 and above) or are rejected with their
line number and reason. No line disappears: every non-blank line is a loaded row or a
`RejectedRow`.

Venues: `venue,name,village,category,dwell_minutes` with a header; `dwell_minutes` may
be empty (the category default applies, see `tracing.venues`).

Errors: `CsvFormatError` (a ValueError) for a file that is not this format at all (its
header names other columns); an unreadable file raises the OSError from `open`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

import numpy as np

from tracing import csvio_kernels as kernels
from tracing.venues import MAX_DWELL_MINUTES, MAX_VENUE_ID, Venue, VenueTableError

CHECKIN_COLUMNS = ("person", "venue", "check_in", "check_out")
VENUE_COLUMNS = ("venue", "name", "village", "category", "dwell_minutes")
MAX_ID = 2**64 - 1
CHUNK_BYTES = 16 << 20


class CsvFormatError(ValueError):
    """A file that is not in the expected CSV format (for example, other columns)."""


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A line that did not load: 1-based `line` number in the file, `reason`, `text`."""

    line: int
    reason: str
    text: str

    def to_dict(self) -> dict:
        """The rejection as a JSON-ready dict."""
        return {"line": self.line, "reason": self.reason, "text": self.text}


@dataclass(slots=True)
class CheckinChunk:
    """The rows of one chunk of a check-in file, in file order.

    person, venue: uint64; t_in, t_out: int64 epoch seconds (t_out 0 = no check-out).
    `line` is each loaded row's 1-based line number in the file.
    `rows` counts the chunk's data lines: len(person) + len(rejected) == rows.
    `bytes_read` is how far into the file the chunk ends (for progress bars); `lines`
    counts every line of the chunk, blank lines and a header included.
    """

    person: np.ndarray
    venue: np.ndarray
    t_in: np.ndarray
    t_out: np.ndarray
    line: np.ndarray
    rejected: list[RejectedRow] = field(default_factory=list)
    rows: int = 0
    bytes_read: int = 0
    lines: int = 0


# Times ------------------------------------------------------------------------------

def parse_time(text: str, what: str = "time") -> int:
    """Epoch seconds of `text`: an integer of epoch seconds or ISO 8601 with an offset.

    Raises ValueError naming `what` and the problem (no offset, not a time, out of range,
    looks like milliseconds).
    """
    text = text.strip()
    if not text:
        raise ValueError(f"{what} is empty")
    if text.isascii() and text.lstrip("-").isdigit():  # not "²": isdigit() takes it
        value = int(text)
        if value < 0:
            raise ValueError(f"{what} {text} is before 1970")
        if value > kernels.MAX_TIME:
            hint = " (milliseconds? give seconds)" if value < kernels.MAX_TIME * 1000 else ""
            raise ValueError(f"{what} {text} is out of range{hint}")
        return value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{what} {text!r} is neither epoch seconds nor ISO 8601 with an offset"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} {text!r} has no UTC offset (write e.g. +07:00 or Z)")
    value = int(moment.timestamp() // 1)
    if not 0 <= value <= kernels.MAX_TIME:
        raise ValueError(f"{what} {text!r} is before 1970")
    return value


def parse_id(text: str, what: str, limit: int = MAX_ID) -> int:
    """A non-negative integer id from `text`; raises ValueError naming `what`."""
    text = text.strip()
    if not text:
        raise ValueError(f"{what} is empty")
    try:
        value = int(text, 10)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"{what} {value} is negative")
    if value > limit:
        raise ValueError(f"{what} {value} is larger than 2^64-1")
    return value


# Check-ins ---------------------------------------------------------------------------

def _parse_row(fields: list[str]) -> tuple[int, int, int, int]:
    """One row's values, or ValueError with the reason."""
    if len(fields) not in (3, 4):
        raise ValueError(f"expected 4 fields (person,venue,check_in,check_out), got {len(fields)}")
    person = parse_id(fields[0], "person")
    venue = parse_id(fields[1], "venue")
    t_in = parse_time(fields[2], "check_in")
    t_out = 0
    if len(fields) == 4 and fields[3].strip():
        t_out = parse_time(fields[3], "check_out")
        if t_out <= t_in:
            raise ValueError(
                f"check_out {fields[3].strip()} is not after check_in {fields[2].strip()}"
            )
    return person, venue, t_in, t_out


def _split_line(raw: bytes) -> list[str]:
    """The fields of one CSV line (quotes allowed); ValueError when it cannot be read."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("line is not valid UTF-8") from None
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise ValueError(f"malformed CSV ({exc})") from None
    return rows[0] if rows else []


def _is_header(raw: bytes) -> bool:
    """Whether the file's first line is a header: its first field is a word and none of
    its fields a number. Any such line is checked as one, so that a file whose columns
    come in another order (venue,person,...) is refused rather than loaded by position,
    persons as venues; a data row with a bad person id ("x,10,1638318600") is still a
    row, rejected with its line."""
    fields = [f.strip().strip(b'"').strip() for f in raw.lstrip(b"\xef\xbb\xbf").split(b",")]
    return fields[0][:1].isalpha() and not any(f.isdigit() for f in fields)


def _check_header(raw: bytes) -> None:
    try:
        names = [f.strip().lower() for f in _split_line(raw.lstrip(b"\xef\xbb\xbf"))]
    except ValueError as exc:
        raise CsvFormatError(f"line 1 is not a check-in and not a header: {exc}") from None
    if tuple(names) not in (CHECKIN_COLUMNS, CHECKIN_COLUMNS[:3]):
        raise CsvFormatError(
            f"line 1 is not a check-in, and as a header it names {','.join(names)}; "
            f"expected {','.join(CHECKIN_COLUMNS)} (or the first three)"
        )


def _parse_block(block: bytes, first_line: int, is_file_start: bool) -> CheckinChunk:
    """Parse whole lines in `block`; `first_line` is the 1-based number of its first line."""
    buf = np.frombuffer(block, dtype=np.uint8)
    n_lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    p, v, ti, to, status, starts, ends = kernels.empty_columns(n_lines)
    n = kernels.parse_lines(buf, p, v, ti, to, status, starts, ends)
    p = p[:n].view(np.uint64)
    v = v[:n].view(np.uint64)
    ti, to, status = ti[:n], to[:n], status[:n]
    rejected: list[RejectedRow] = []
    slow = np.flatnonzero(status == kernels.ROW_SLOW)
    for i in slow.tolist():
        raw = block[starts[i]:ends[i]]
        if is_file_start and i == 0 and _is_header(raw):
            _check_header(raw)
            status[i] = kernels.ROW_BLANK  # not a data row
            continue
        try:
            row = _parse_row(_split_line(raw))
        except ValueError as exc:
            rejected.append(RejectedRow(first_line + i, str(exc), raw.decode("utf-8", "replace")))
            continue
        p[i], v[i], ti[i], to[i] = row
        status[i] = kernels.ROW_OK
    ok = status == kernels.ROW_OK
    rows = int(np.count_nonzero(status != kernels.ROW_BLANK))
    line = np.flatnonzero(ok) + first_line
    return CheckinChunk(p[ok], v[ok], ti[ok], to[ok], line, rejected, rows, lines=n)


def read_checkins(source: str | os.PathLike | BinaryIO,
                  chunk_bytes: int = CHUNK_BYTES) -> Iterator[CheckinChunk]:
    """Yield the rows of a check-in CSV file chunk by chunk, in file order.

    `source` is a path or a binary file object. Memory stays near `chunk_bytes` times a
    small factor whatever the file's size. Raises CsvFormatError for a header naming
    other columns, OSError when the file cannot be read.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            yield from read_checkins(fh, chunk_bytes)
        return
    carry = b""
    line_no = 1
    consumed = 0
    at_start = True
    while True:
        data = source.read(chunk_bytes)
        eof = not data
        block = carry + data
        if not block:
            return
        if eof:
            carry = b""
        else:
            cut = block.rfind(b"\n")
            if cut < 0:
                carry = block
                continue
            block, carry = block[:cut + 1], block[cut + 1:]
        if at_start and block.startswith(b"\xef\xbb\xbf"):
            consumed += 3
            block = block[3:]
        chunk = _parse_block(block, line_no, at_start)
        consumed += len(block)
        chunk.bytes_read = consumed
        at_start = False
        line_no += chunk.lines
        yield chunk
        if eof:
            return


def write_checkins(out: BinaryIO, person: np.ndarray, venue: np.ndarray, t_in: np.ndarray,
                   t_out: np.ndarray, header: bool = False, rows_per_block: int = 1 << 18) -> int:
    """Write check-in rows as CSV to the binary stream `out`; returns the bytes written.

    Columns are as `read_checkins` reads them; t_out <= 0 becomes an empty field. Ids
    must be below 2^63 (the fast writer's limit).
    """
    written = 0
    if header:
        written += out.write((",".join(CHECKIN_COLUMNS) + "\n").encode())
    n = len(person)
    buf = np.empty(min(n, rows_per_block) * 84 + 1, dtype=np.uint8)
    cols = [np.ascontiguousarray(c, dtype=np.int64) for c in (person, venue, t_in, t_out)]
    for lo in range(0, n, rows_per_block):
        hi = min(n, lo + rows_per_block)
        used = kernels.format_rows(*(c[lo:hi] for c in cols), buf)
        written += out.write(memoryview(buf)[:used])
    return written


# Venues ------------------------------------------------------------------------------

# what errors="surrogateescape" makes of a byte that is not UTF-8
_NOT_UTF8 = re.compile("[\udc80-\udcff]")

def read_venues(path: str | os.PathLike) -> tuple[list[Venue], list[RejectedRow]]:
    """The venues of a venue CSV file and the rows that could not be read.

    The header names `venue,name,village,category,dwell_minutes` in any order; only
    `venue` is required and other columns are ignored. Raises CsvFormatError for a file
    without such a header, OSError when it cannot be read.
    """
    # bytes that are not UTF-8 reject their row alone (as in check-in files), not the file
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        names = [h.strip().lower() for h in header or []]
        if "venue" not in names:
            raise CsvFormatError(
                f"venue file header names {','.join(names) or 'nothing'}; expected "
                f"{','.join(VENUE_COLUMNS)}"
            )
        where = {name: names.index(name) for name in VENUE_COLUMNS if name in names}
        venues: list[Venue] = []
        rejected: list[RejectedRow] = []
        for fields in reader:
            line = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            text = ",".join(fields)
            if _NOT_UTF8.search(text):
                rejected.append(RejectedRow(line, "line is not valid UTF-8",
                                            text.encode("utf-8", "surrogateescape")
                                            .decode("utf-8", "replace")))
                continue
            try:
                venues.append(_venue_from_fields(fields, where, len(names)))
            except (ValueError, VenueTableError) as exc:
                rejected.append(RejectedRow(line, str(exc), text))
        return venues, rejected


def _venue_from_fields(fields: list[str], where: dict[str, int], width: int) -> Venue:
    if len(fields) != width:
        raise ValueError(f"expected {width} fields, got {len(fields)}")

    def get(name: str) -> str:
        return fields[where[name]].strip() if name in where else ""

    dwell_text = get("dwell_minutes")
    dwell = None
    if dwell_text:
        try:
            dwell = int(dwell_text)
        except ValueError:
            raise ValueError(f"dwell_minutes {dwell_text!r} is not an integer") from None
        if dwell <= 0:
            raise ValueError(f"dwell_minutes {dwell} is not positive")
        if dwell > MAX_DWELL_MINUTES:
            raise ValueError(f"dwell_minutes {dwell} is over a day ({MAX_DWELL_MINUTES})")
    return Venue(venue=parse_id(get("venue"), "venue", MAX_VENUE_ID), name=get("name"),
                 village=get("village"), category=get("category").lower() or "other",
                 dwell_minutes=dwell)


def write_venues(path: str | os.PathLike, venues: list[Venue]) -> None:
    """Write a venue CSV file with a header (the format `read_venues` reads)."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(VENUE_COLUMNS)
        for v in venues:
            writer.writerow([v.venue, v.name, v.village, v.category,
                             "" if v.dwell_minutes is None else v.dwell_minutes])


def read_checkins_text(text: str) -> CheckinChunk:
    """All rows of a small CSV text in one chunk (tests and examples)."""
    chunks = list(read_checkins(io.BytesIO(text.encode("utf-8"))))
    if not chunks:
        empty = np.empty(0, np.uint64)
        return CheckinChunk(empty, empty.copy(), np.empty(0, np.int64), np.empty(0, np.int64),
                            np.empty(0, np.int64))
    return CheckinChunk(
        np.concatenate([c.person for c in chunks]), np.concatenate([c.venue for c in chunks]),
        np.concatenate([c.t_in for c in chunks]), np.concatenate([c.t_out for c in chunks]),
        np.concatenate([c.line for c in chunks]), [r for c in chunks for r in c.rejected],
        sum(c.rows for c in chunks), chunks[-1].bytes_read,
    )
