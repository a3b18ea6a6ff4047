"""Segment columns built straight into their .npy files, through a shared memory map.

A large build or merge used to fill each column in fresh anonymous memory and then copy
it into the page cache with write(). On the benchmark machine (a VM whose freed memory
goes back to the host) memory obtained for the first time costs about 3 s a GB, and
write() had to obtain a second copy's worth: at 100M rows, saving a built segment took
10 s of the build's 35. Here a column's memory is its file's page cache: the kernel
writes into the mapping, and saving is a header, a truncate and an fsync, done by a few
threads while the build goes on.

    files = ColumnFiles(folder, "seg-7")
    person = files.empty("person", n, np.uint32)   # writable, backed by the file
    ...fill person[:m]...
    files.finish("person", m)                      # header, truncate, fsync (background)
    files.close(segment)                           # the rest (write_npy), then wait

Files are written to a temporary name, fsynced and renamed (tracing/storage.py's rule);
the caller fsyncs the folder.
"""

from __future__ import annotations

import mmap
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tracing.storage import TMP_SUFFIX, write_npy

MAGIC = b"\x93NUMPY\x01\x00"  # .npy format version 1.0
MIN_MAPPED_BYTES = 1 << 20  # smaller columns are written the ordinary way


def _header(shape_len: int, dtype: np.dtype, size: int | None = None) -> bytes:
    """A version 1.0 .npy header for a 1-d array of `shape_len` items, padded with spaces
    to `size` bytes (default: the format's 64-byte alignment)."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": (shape_len,)})
    bare = len(MAGIC) + 2 + len(text) + 1
    if size is None:
        size = -(-bare // 64) * 64
    if bare > size or size - len(MAGIC) - 2 >= 1 << 16:
        raise ValueError(f"a header for {shape_len} items does not fit in {size} bytes")
    text = text + " " * (size - bare) + "\n"
    return MAGIC + (len(text)).to_bytes(2, "little") + text.encode("latin1")


class ColumnFiles:
    """Columns of segment `name` in `folder`, written through memory maps (see the module
    docstring). Not thread-safe: one builder uses it."""

    def __init__(self, folder: Path, name: str, threads: int = 4):
        self.folder, self.name = folder, name
        self._open: dict[str, tuple[int, np.ndarray, int]] = {}  # column: fd, array, offset
        self._pending: list[Future] = []
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="qrtrace-save")
        self._written: set[str] = set()

    def path(self, column: str) -> Path:
        """The final path of a column's file."""
        return self.folder / f"{self.name}.{column}.npy"

    def empty(self, column: str, n: int, dtype) -> np.ndarray:
        """A writable array of n items backed by the column's (temporary) file; small
        columns get ordinary memory, written at close."""
        dtype = np.dtype(dtype)
        if n * dtype.itemsize < MIN_MAPPED_BYTES:
            return np.empty(n, dtype)
        header = _header(n, dtype)
        tmp = self.path(column).with_name(self.path(column).name + TMP_SUFFIX)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, len(header) + n * dtype.itemsize)
            mapped = mmap.mmap(fd, len(header) + n * dtype.itemsize, flags=mmap.MAP_SHARED)
            # 2 MB folios, each mapped by one page-table entry: a 100M build took a
            # thirteenth of the page faults of the file's default folios (35k, 448k),
            # 36 s against 55 (one pair, load 2-3.5)
            mapped.madvise(mmap.MADV_HUGEPAGE)
        except BaseException:
            os.close(fd)
            raise
        array = np.frombuffer(mapped, dtype, count=n, offset=len(header))
        self._open[column] = (fd, array, len(header))
        return array

    def finish(self, column: str, m: int) -> None:
        """The column's first m items are final: save its file in the background."""
        if column not in self._open:
            return  # an ordinary array: written at close
        fd, array, offset = self._open.pop(column)
        self._written.add(column)
        self._pending.append(self._pool.submit(self._seal, column, fd, array, offset, m))

    def _seal(self, column: str, fd: int, array: np.ndarray, offset: int, m: int) -> None:
        try:
            os.pwrite(fd, _header(m, array.dtype, offset), 0)
            os.ftruncate(fd, offset + m * array.dtype.itemsize)
            os.fsync(fd)
        finally:
            os.close(fd)
        path = self.path(column)
        os.replace(path.with_name(path.name + TMP_SUFFIX), path)

    def close(self, segment, columns) -> list[str]:
        """Save every column of `segment` not finished yet and wait for all of them;
        returns the file names. Raises the first error of any column."""
        for column in columns:
            array = getattr(segment, column)
            if column in self._open and _same_start(array, self._open[column][1]):
                self.finish(column, array.shape[0])
            elif column not in self._written:
                self._drop(column)  # its file was scratch: the column is elsewhere
                self._pending.append(self._pool.submit(write_npy, self.path(column), array))
        try:
            for future in self._pending:
                future.result()
        finally:
            self.abandon()
        return [self.path(column).name for column in columns]

    def _drop(self, column: str) -> None:
        if column in self._open:
            os.close(self._open.pop(column)[0])

    def abandon(self) -> None:
        """Close what is still open (after an error); temporary files stay for the
        index's start-up clean-up."""
        for fd, _array, _offset in self._open.values():
            os.close(fd)
        self._open.clear()
        self._pool.shutdown(wait=True)


def scratch(n: int, dtype) -> np.ndarray:
    """An uninitialised array for a large scratch or staging column, in memory of its own
    without transparent huge pages. numpy asks for huge pages for every large array; on
    the benchmark machine (a VM) huge pages obtained for the first time cost twice the
    time of small ones (2 GB written once: 7.7 s of system time against 3.9), and a 100M
    build with its scratch in small pages took 44 s instead of 60 (load 6, CPU time the
    same): these columns are written and read in order or in a few streams, so the
    larger pages buy nothing back. Small arrays come from numpy as usual."""
    dtype = np.dtype(dtype)
    if n * dtype.itemsize < MIN_MAPPED_BYTES:
        return np.empty(n, dtype)
    mapped = mmap.mmap(-1, n * dtype.itemsize, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(mapped, dtype, count=n)


def _same_start(a: np.ndarray, b: np.ndarray) -> bool:
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
