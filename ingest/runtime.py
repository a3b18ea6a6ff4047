"""Opening what a worker needs from a data folder: the index, the key ring, file paths.

    DATA/index                      the check-in index (tracing/)
    DATA/keys.json                  the token key ring (api.keystore)
    DATA/ingest/kafka-offsets.json  the Kafka offsets saved with the index
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ingest.wire import FORMAT_HEADER, HEADER_SIZE, JSON, MAGIC, PACKED_V1, ROW_SIZE

INDEX_FOLDER = "index"
OFFSETS_FILE = Path("ingest") / "kafka-offsets.json"


def index_path(data: str | Path) -> Path:
    """DATA/index."""
    return Path(data) / INDEX_FOLDER


def offsets_path(data: str | Path) -> Path:
    """DATA/ingest/kafka-offsets.json."""
    return Path(data) / OFFSETS_FILE


def file_records(blob: bytes) -> Iterator[tuple[bytes, list[tuple[str, bytes]]]]:
    """Split a scan file into (value, headers) records: concatenated packed-v1 batches
    when it starts with the packed magic, else JSON lines (one event per non-empty
    line). Trailing bytes that are not a whole packed batch become one record of their
    own, which the worker refuses with its reason."""
    if blob[:4] == MAGIC:
        headers = [(FORMAT_HEADER, PACKED_V1.encode())]
        at = 0
        while at < len(blob):
            size = len(blob) - at
            if size >= HEADER_SIZE and blob[at:at + 4] == MAGIC:
                count = int.from_bytes(blob[at + 8:at + 12], "little")
                size = min(size, HEADER_SIZE + ROW_SIZE * count)
            yield blob[at:at + size], headers
            at += size
        return
    headers = [(FORMAT_HEADER, JSON.encode())]
    for line in blob.splitlines():
        if line.strip():
            yield line, headers
