"""Opening what a worker needs from a data folder: the index, the key ring, file paths.

    DATA/index                      the check-in index (tracing/)
    DATA/keys.json                  the token key ring (api.keystore)
    DATA/ingest/kafka-offsets.json  the Kafka offsets saved with the index

A data folder holds citizens' movements: `private_data_folder` makes it readable by its
owner only, whatever the umask, before anything is written in it.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ingest.wire import FORMAT_HEADER, HEADER_SIZE, JSON, MAGIC, PACKED_V1, ROW_SIZE

INDEX_FOLDER = "index"
OFFSETS_FILE = Path("ingest") / "kafka-offsets.json"


logger = logging.getLogger("qrtrace.data")


def private_data_folder(data: str | Path) -> Path:
    """Create the data folder `data` with mode 0700 (its parents as the umask gives
    them), or make an existing one 0700 if others may read or enter it (logged; a
    folder this user cannot change is left as it is, with a warning). Returns the
    path. Raises OSError if it cannot be created."""
    data = Path(data)
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(os.stat(data).st_mode)
    if mode & 0o077:
        try:
            os.chmod(data, 0o700)
        except OSError as exc:
            logger.warning("the data folder is open to others and could not be made "
                           "private", extra={"fields": {"path": str(data), "mode": oct(mode),
                                                        "problem": str(exc)}})
        else:
            logger.warning("the data folder was open to others: made private (mode 700)",
                           extra={"fields": {"path": str(data), "was": oct(mode)}})
    return data


def index_path(data: str | Path) -> Path:
    """DATA/index."""
    return Path(data) / INDEX_FOLDER


def offsets_path(data: str | Path) -> Path:
    """DATA/ingest/kafka-offsets.json."""
    return Path(data) / OFFSETS_FILE


class FileRecord(NamedTuple):
    """A record of a scan file: its bytes and headers for the log, and where it is in
    the file for its reader (`where`: "line 7" or "batch 2"; `start`: its first byte)."""

    value: bytes
    headers: list[tuple[str, bytes]]
    where: str
    start: int


def file_records(blob: bytes) -> Iterator[FileRecord]:
    """Split a scan file into records: concatenated packed-v1 batches when it starts with
    the packed magic, else JSON lines (one event per non-empty line). Trailing bytes
    that are not a whole packed batch become one record of their own, which the worker
    refuses with its reason."""
    if blob[:4] == MAGIC:
        headers = [(FORMAT_HEADER, PACKED_V1.encode())]
        at = 0
        batch = 0
        while at < len(blob):
            size = len(blob) - at
            if size >= HEADER_SIZE and blob[at:at + 4] == MAGIC:
                count = int.from_bytes(blob[at + 8:at + 12], "little")
                size = min(size, HEADER_SIZE + ROW_SIZE * count)
            batch += 1
            yield FileRecord(blob[at:at + size], headers, f"batch {batch}", at)
            at += size
        return
    headers = [(FORMAT_HEADER, JSON.encode())]
    at = 0
    for number, line in enumerate(blob.splitlines(keepends=True), 1):
        if line.strip():
            yield FileRecord(line.rstrip(b"\r\n"), headers, f"line {number}", at)
        at += len(line)
