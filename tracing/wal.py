"""The write-ahead log: appended batches of check-ins, fsynced before acknowledging.

File layout: an 8-byte header, then records. A record is a 12-byte frame (magic b"QRTB",
payload length, CRC-32 of the payload, little-endian) and a payload of n rows as four
column blocks: person uint64[n], venue uint64[n], t_in int64[n], t_out int64[n].

A crash can leave a torn last record (short, or with a bad CRC): reading stops there and
`WriteAheadLog.open` truncates the file back to the last whole record, so an unacknowledged
batch is dropped whole, never half-applied.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

from tracing.errors import StorageError

HEADER = b"QRTWAL1\n"
FRAME = struct.Struct("<4sII")
MAGIC = b"QRTB"
ROW_BYTES = 32


def encode_batch(person, venue, t_in, t_out) -> list:
    """One record for a batch of validated columns, as buffers to write in order: the
    frame, then each column's bytes (the arrays themselves where they are contiguous and
    little-endian: at 200,000 rows the copies into one bytes object cost as much as the
    checksum)."""
    columns = [memoryview(np.ascontiguousarray(col, dtype)).cast("B")
               for col, dtype in zip((person, venue, t_in, t_out), ("<u8", "<u8", "<i8", "<i8"),
                                     strict=True)]
    crc = 0
    for col in columns:
        crc = zlib.crc32(col, crc)
    frame = memoryview(FRAME.pack(MAGIC, sum(col.nbytes for col in columns), crc))
    return [frame, *columns]


def decode_payload(payload: bytes):
    """(person, venue, t_in, t_out) arrays of one record's payload."""
    n = len(payload) // ROW_BYTES
    cols = [np.frombuffer(payload, dtype=dt, count=n, offset=i * 8 * n)
            for i, dt in enumerate(("<u8", "<u8", "<i8", "<i8"))]
    return tuple(c.astype(c.dtype.newbyteorder("="), copy=True) for c in cols)


def read_records(path: Path):
    """Whole records of the log as a list of column tuples, and the offset after the last."""
    data = path.read_bytes()
    start = records_start(path, data)
    return parse_records(data, start) if start else ([], 0)


def records_start(path: Path, data: bytes) -> int:
    """Where the records begin in a log starting with `data`: after the header, or 0
    while the header itself is torn (being written, or cut by a crash).
    Raises StorageError if `data` does not start like a log."""
    if data.startswith(HEADER):
        return len(HEADER)
    if len(data) < len(HEADER) and HEADER.startswith(data):
        return 0
    raise StorageError(f"{path}: not a qrtrace write-ahead log (bad header)")


def parse_records(data, pos: int):
    """The whole records in `data` from offset `pos` (column tuples), and the offset after
    the last; reading stops at a record that is short or fails its checksum."""
    payloads, pos = scan_records(data, pos)
    return [decode_payload(data[start:end]) for start, end in payloads], pos


def scan_records(data, pos: int):
    """(start, end) of each whole record's payload in `data` from offset `pos`, and the
    offset after the last (see parse_records)."""
    payloads = []
    view = memoryview(data)
    while pos + FRAME.size <= len(data):
        magic, length, crc = FRAME.unpack_from(data, pos)
        end = pos + FRAME.size + length
        if magic != MAGIC or length % ROW_BYTES or end > len(data):
            break
        if zlib.crc32(view[pos + FRAME.size:end]) != crc:
            break
        payloads.append((pos + FRAME.size, end))
        pos = end
    return payloads, pos


def decode_joined(data, payloads, max_rows: int) -> list:
    """Records' payloads (scan_records) decoded as a few column tuples of up to
    `max_rows` rows each (a larger record stays whole): replaying a batch costs about the
    same for 1 row as for 10,000, and a log of single scans holds millions of records."""
    view, out, first, rows = memoryview(data), [], 0, 0
    for i, (start, end) in enumerate(payloads):
        n = (end - start) // ROW_BYTES
        if rows and rows + n > max_rows:
            out.append(_decode_many(view, payloads[first:i]))
            first, rows = i, 0
        rows += n
    if first < len(payloads):
        out.append(_decode_many(view, payloads[first:]))
    return out


def _decode_many(view: memoryview, payloads) -> tuple:
    """The rows of several records' payloads as one column tuple: gathered by numpy (a
    slice per record and column cost 8 us a record)."""
    if len(payloads) == 1:
        return decode_payload(view[payloads[0][0]:payloads[0][1]])
    bounds = np.array(payloads, np.int64)
    rows = (bounds[:, 1] - bounds[:, 0]) // ROW_BYTES
    record = np.repeat(np.arange(rows.shape[0]), rows)
    first = np.cumsum(rows) - rows  # each record's first row among all
    row_bytes = 8 * np.arange(record.shape[0], dtype=np.int64) - 8 * first[record]
    start = bounds[record, 0] + row_bytes  # where each row's person starts
    column_bytes = 8 * rows[record]  # a column block's length in its record
    data = np.frombuffer(view, np.uint8)
    columns = []
    for i, dtype in enumerate(("<u8", "<u8", "<i8", "<i8")):
        at = start + i * column_bytes
        raw = np.empty((at.shape[0], 8), np.uint8)
        for byte in range(8):
            raw[:, byte] = data[at + byte]
        column = raw.view(dtype).reshape(-1)
        columns.append(column.astype(column.dtype.newbyteorder("="), copy=False))
    return tuple(columns)


def _write_all(fd: int, parts: list) -> None:
    """Write the buffers in order with as few system calls as the kernel allows."""
    parts = list(parts)
    while parts:
        done = os.writev(fd, parts)
        while parts and done >= parts[0].nbytes:
            done -= parts[0].nbytes
            parts.pop(0)
        if parts:
            parts[0] = parts[0][done:]


class WriteAheadLog:
    """An append-only log file; `append` returns once the batch is on stable storage."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd = fd
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._written = os.lseek(fd, 0, os.SEEK_END)
        self._synced = self._written
        self._retired = False

    @classmethod
    def create(cls, path: Path) -> WriteAheadLog:
        """A new, empty log (header written and fsynced; the caller fsyncs the folder)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, HEADER)
        os.fsync(fd)
        return cls(path, fd)

    @classmethod
    def open(cls, path: Path) -> tuple[WriteAheadLog, list]:
        """Open an existing log: its whole batches, with any torn tail cut off."""
        batches, good = read_records(path)
        fd = os.open(path, os.O_RDWR)
        if good == 0:
            os.ftruncate(fd, 0)
            os.write(fd, HEADER)
        elif os.fstat(fd).st_size != good:
            os.ftruncate(fd, good)
        os.fsync(fd)
        os.lseek(fd, 0, os.SEEK_END)
        return cls(path, fd), batches

    def write(self, person, venue, t_in, t_out) -> int:
        """Write one batch as one record, not yet synced; returns the offset to pass to
        `sync` before acknowledging it."""
        record = encode_batch(person, venue, t_in, t_out)
        size = sum(part.nbytes for part in record)
        with self._write_lock:
            start = self._written
            try:
                _write_all(self._fd, record)
            except OSError:
                # a half-written record would hide every later one from replay
                os.ftruncate(self._fd, start)
                raise
            self._written = start + size
            return self._written

    def sync(self, upto: int) -> None:
        """Return once every record up to offset `upto` is on stable storage.

        Group commit: one fsync covers every record written before it started, so
        appenders that wait here while another fsyncs usually find their work done.
        """
        with self._sync_lock:
            if self._synced >= upto or self._retired:
                return  # a retired log's records are in a durable segment already
            target = self._written
            os.fsync(self._fd)
            self._synced = target

    def append(self, person, venue, t_in, t_out) -> None:
        """Write one batch and sync it: durable when this returns."""
        self.sync(self.write(person, venue, t_in, t_out))

    def retire(self) -> None:
        """Mark the log as superseded by a durable segment, then close it."""
        with self._sync_lock, self._write_lock:
            self._retired = True
            self.close()

    def size(self) -> int:
        """Bytes in the log file."""
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class LogTail:
    """A log followed by a reader in another process than its writer (the read-only
    follower): each `read_new` returns the whole records added since the last one.

    Never writes: a short or unchecked last record is left for a later read (its writer
    may be in the middle of it; a writer that reopens the log after a crash cuts a torn
    one back to the last whole record, which is where this reader stands). The file
    stays open, so a log that a merge deletes is still read to its end.
    """

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.offset = 0  # where the next record starts (0: before the header)
        self._fd = fd

    @classmethod
    def open(cls, path: Path) -> LogTail:
        """Open `path` read-only. Raises FileNotFoundError if it is gone."""
        return cls(path, os.open(path, os.O_RDONLY))

    def read_new(self, max_rows: int = 1 << 20) -> list:
        """Whole records added since the last call, joined into column tuples of up to
        `max_rows` rows (decode_joined). Raises StorageError if the file is no log or
        lost what was already read."""
        size = os.fstat(self._fd).st_size
        if size < self.offset:
            raise StorageError(f"{self.path}: shrank below records already read")
        if size == self.offset:
            return []
        data = os.pread(self._fd, size - self.offset, self.offset)
        start = self.offset or records_start(self.path, data)
        if not start:
            return []
        payloads, end = scan_records(data, start - self.offset)
        self.offset += end
        return decode_joined(data, payloads, max_rows)

    def unlinked(self) -> bool:
        """Whether the file was deleted (a merge retired it)."""
        return os.fstat(self._fd).st_nlink == 0

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
