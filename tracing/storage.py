"""File writes: durable ones (temporary name, fsync, rename, fsync of the folder), and
private ones (`open_private`: mode 0600).

A crash at any point of a durable write leaves either the old file or the new one under
the final name, never a torn one; leftovers under temporary names are removed when the
index opens.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import IO

import numpy as np

TMP_SUFFIX = ".tmp"


def open_private(path: str | os.PathLike) -> IO[bytes]:
    """`path` opened for writing, readable by its owner only (mode 0600, an existing
    file narrowed too, whatever the umask): for files that name persons (the index's, a
    contact graph) or are a credential (a personal QR code). A path that is not a
    regular file (a pipe, /dev/stdout) is written as it is."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return open(fd, "wb")


def fsync_dir(folder: Path) -> None:
    """Make renames and unlinks in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write `data` to `path` atomically and durably (the caller fsyncs the folder)."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open_private(tmp) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_npy(path: Path, array: np.ndarray) -> None:
    """Save `array` as .npy atomically and durably (the caller fsyncs the folder)."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open_private(tmp) as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, value: dict) -> None:
    """Write a small JSON document atomically and durably, folder included."""
    write_bytes(path, json.dumps(value, sort_keys=True).encode())
    fsync_dir(path.parent)


def read_json(path: Path) -> dict:
    """Read a JSON document written by write_json."""
    return json.loads(path.read_bytes())


def remove_files(folder: Path, names) -> None:
    """Unlink files (missing ones are fine) and make that durable."""
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / name)
    fsync_dir(folder)
