"""Generations of an index folder: the manifest, the logs, and merging head and base.

CheckinIndex (index.py) inherits this; it is apart only to keep each file to one job.
A generation g is the segment files seg-g.*, plus the logs the manifest lists (oldest
first; the last one takes appends). A merge hands the head to a background thread and
starts a new log; the merged generation becomes current by rewriting the manifest,
after which the merged logs and the old segment files are deleted. A crash at any point
leaves a manifest naming complete files; opening replays every log it lists and deletes
everything else.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import types
from numba.typed import Dict

from tracing import kernels
from tracing.errors import StorageError
from tracing.segments import Segment, build_segment, empty_segment, load_segment, save_segment
from tracing.storage import TMP_SUFFIX, fsync_dir, remove_files, write_json
from tracing.wal import WriteAheadLog

MANIFEST = "MANIFEST.json"
DWELL = "dwell.npy"
DAY = 86_400
HEAD_KEY = types.Tuple((types.uint64, types.uint64, types.int64))


def new_head_keys():
    """The head's keys (person, venue, t_in) and their largest t_out, as a numba dict."""
    return Dict.empty(key_type=HEAD_KEY, value_type=types.int64)


class GenerationsMixin:
    """Manifest, logs and merges of CheckinIndex (see the module docstring)."""

    def _write_manifest(self, generation: int | None = None, wals=None) -> None:
        write_json(self.folder / MANIFEST, {
            "generation": self._generation if generation is None else generation,
            "wals": self._wals if wals is None else wals,
            "retention_days": self.retention_days, "format": 2})

    def _remove_strays(self) -> None:
        """Delete leftovers of an interrupted merge: temp files, other generations."""
        keep = {MANIFEST, DWELL, "LOCK", *self._wals}
        stray = [p.name for p in self.folder.iterdir()
                 if (p.name not in keep and not p.name.startswith(f"seg-{self._generation}."))
                 or p.name.endswith(TMP_SUFFIX)]
        if stray:
            remove_files(self.folder, stray)

    def _compact_threshold(self) -> int:
        # Growing with the base keeps the cost of merges linear overall; the cap bounds
        # the head that each query after an append re-sorts into the overlay.
        return max(self.head_limit, min(len(self._base) // 2, 4 * self.head_limit))

    def compact(self) -> None:
        """Merge the head into a new base segment now (after any background merge)."""
        self._merge_now(only_if_head=True)

    def purge(self, now: int) -> int:
        """Delete check-ins with t_in before now - retention_days days from every file
        (segments and logs); returns how many distinct check-ins were removed."""
        before = len(self)
        self._merge_now(cutoff=int(now) - self.retention_days * DAY)
        return before - len(self)

    def _wait_merge(self, raise_error: bool = True) -> None:
        merger = self._merger
        if merger is not None:
            merger.join()
        error, self._merge_error = self._merge_error, None
        if error is not None and raise_error:
            raise StorageError(f"{self.folder}: a background merge failed") from error

    def _merge_now(self, extra=None, cutoff: int | None = None,
                   only_if_head: bool = False) -> None:
        """Merge base, head (and `extra` rows) into a new generation, in this thread."""
        while True:
            self._wait_merge()
            with self._write_lock:
                if self._wal is None:
                    raise StorageError(f"{self.folder}: index is closed")
                if self._merger is not None:
                    continue  # another appender started one meanwhile
                if only_if_head and not self._head:
                    return
                self._rotate_log()
                with self._state_lock:
                    frozen, self._frozen, self._head = self._head, self._head, []
                    self._head_rows = 0
                self._install(self._build(self._base, frozen, extra, cutoff))
                return

    def _start_merge(self) -> None:
        """Hand the head to a background merge; appends go on into a fresh log."""
        self._rotate_log()
        with self._state_lock:
            self._frozen, self._head, self._head_rows = self._head, [], 0
        self._merger = threading.Thread(target=self._merge_in_background,
                                        args=(self._base, self._frozen), daemon=True,
                                        name=f"qrtrace-merge-{self.folder.name}")
        self._merger.start()

    def _merge_in_background(self, base: Segment, frozen) -> None:
        try:
            generation = self._build(base, frozen)
            with self._write_lock:
                self._install(generation)
        except BaseException as exc:  # kept for the next caller; the logs still hold it all
            with self._write_lock, self._state_lock:
                self._head = self._frozen + self._head
                self._head_rows = sum(b[0].shape[0] for b in self._head)
                self._frozen = []
                self._merge_error = exc
        finally:
            self._merger = None

    def _rotate_log(self) -> None:
        """Start a new log and list it in the manifest; the older ones go with the merge."""
        name = f"wal-{self._wal_seq}.log"
        self._wal_seq += 1
        wal = WriteAheadLog.create(self.folder / name)
        fsync_dir(self.folder)
        self._wals.append(name)
        self._write_manifest()
        self._old_wals.append(self._wal)
        self._wal = wal

    def _build(self, base: Segment, frozen, extra=None, cutoff: int | None = None):
        """Write base + frozen head (+ extra) as segment files of the next generation."""
        parts = [base.decode()] if len(base) else []
        parts += [*frozen, *([extra] if extra is not None else [])]
        if not parts:
            parts = [empty_segment().decode()]
        # a bulk load into an empty index skips a copy of every column
        cols = list(parts[0]) if len(parts) == 1 else [
            np.concatenate([p[i] for p in parts]) for i in range(4)]
        if cutoff is not None:
            keep = cols[2] >= cutoff
            cols = [c[keep] for c in cols]
        g = self._generation + 1
        save_segment(build_segment(*cols), self.folder, f"seg-{g}")
        return g, load_segment(self.folder, f"seg-{g}")

    def _install(self, generation) -> None:
        """Make a built generation current (caller holds the write lock): manifest, then
        retire the merged logs, delete old files, recount the head against the base."""
        g, base = generation
        retired = self._old_wals
        live = self._wals[len(retired):]
        self._write_manifest(g, live)
        for wal in retired:
            wal.retire()
        old = [p.name for p in self.folder.iterdir()
               if p.name.startswith(f"seg-{self._generation}.")]
        remove_files(self.folder, old + self._wals[:len(retired)])
        keys, new = new_head_keys(), 0
        for batch in self._head:
            new += kernels.head_record(keys, *batch, kernels.find_keys(
                base.venue_off, base.t_in, base.person, base.venue_codes(batch[1]),
                batch[2], base.person_codes(batch[0])) >= 0)
        with self._state_lock:
            self._generation, self._base, self._wals = g, base, live
            self._old_wals, self._frozen = [], []
            self._head_keys, self._head_new = keys, new
            self._snapshot = None

    def _write_generation(self, g: int, segment: Segment, wal_name: str) -> None:
        """A new folder's first generation: segment files, an empty log, the manifest."""
        save_segment(segment, self.folder, f"seg-{g}")
        WriteAheadLog.create(self.folder / wal_name).close()
        fsync_dir(self.folder)
        self._wals = [wal_name]
        self._write_manifest(g, [wal_name])
