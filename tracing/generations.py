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

import re
import threading

import numpy as np

from tracing import kernels
from tracing.checkins import HeadKeys
from tracing.column_files import ColumnFiles
from tracing.errors import StorageError
from tracing.segments import (
    Segment,
    build_segment,
    empty_segment,
    load_segment,
    merge_segments,
    save_segment,
)
from tracing.storage import TMP_SUFFIX, fsync_dir, remove_files, write_json
from tracing.wal import WriteAheadLog

MANIFEST = "MANIFEST.json"
DWELL = "dwell.npy"
DAY = 86_400


def latest_t_in(segment: Segment) -> int:
    """The segment's latest t_in (-1 when empty): the last row of each venue's run."""
    if not len(segment):
        return -1
    return int(segment.t_in[segment.venue_off[1:] - 1].max())


def _concat(parts):
    """Column tuples as one (no copy for a single part: a bulk load of 100M rows into
    an empty index skips a copy of every column)."""
    if not parts:
        return empty_segment().decode()
    if len(parts) == 1:
        return list(parts[0])
    return [np.concatenate([p[i] for p in parts]) for i in range(4)]


def stored_durations(base: Segment, t_max: int, person, venue, t_in) -> np.ndarray:
    """Per distinct key: its explicit duration in `base` (0: none), -1 if not there."""
    stored = np.empty(person.shape[0], np.int64)
    if len(base):
        kernels.base_exp(base.venue_ids, base.venue_off, base.t_in, base.person, base.exp,
                         base.person_ids, t_max, person, venue, t_in, stored)
    else:
        stored.fill(-1)
    return stored



_INDEX_FILE = re.compile(
    r"(seg-\d+\.[A-Za-z0-9_]+\.npy|wal-\d+\.log|MANIFEST\.json|dwell\.npy|LOCK)(\.tmp)?")


def is_index_file(name: str) -> bool:
    """Whether `name` is one the index makes in its folder (or its temp file)."""
    return _INDEX_FILE.fullmatch(name) is not None

class GenerationsMixin:
    """Manifest, logs and merges of CheckinIndex (see the module docstring)."""

    def _write_manifest(self, generation: int | None = None, wals=None,
                        bulk: bool = False) -> None:
        """`bulk`: the generation holds rows that no log carried (a bulk load); the
        manifest keeps the latest such generation, which a follower must load to see
        them (tracing/follower.py)."""
        generation = self._generation if generation is None else generation
        if bulk:
            self._bulk_generation = generation
        write_json(self.folder / MANIFEST, {
            "generation": generation, "wals": self._wals if wals is None else wals,
            "retention_days": self.retention_days, "format": 2,
            "bulk_generation": self._bulk_generation})

    def _remove_strays(self) -> None:
        """Delete leftovers of an interrupted merge: temp files, other generations. Only
        names the index makes: a file of anyone else's is never a leftover."""
        keep = {MANIFEST, DWELL, "LOCK", *self._wals}
        stray = [p.name for p in self.folder.iterdir() if is_index_file(p.name) and (
                 (p.name not in keep and not p.name.startswith(f"seg-{self._generation}."))
                 or p.name.endswith(TMP_SUFFIX))]
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
        (segments and logs); returns how many distinct check-ins were removed. With
        nothing expired it returns 0 at once: no merge, and snapshots (and what readers
        cached on them) stay valid."""
        cutoff = int(now) - self.retention_days * DAY
        if self._oldest_t_in() >= cutoff:
            return 0
        return -self._merge_now(cutoff=cutoff)[0]

    def _oldest_t_in(self) -> int:
        """The earliest t_in held anywhere (base, merging and head batches); 2**63 if none."""
        with self._state_lock:
            base, head = self._base, self._frozen + self._head
        oldest = int(base.t_in.min()) if len(base) else 2**63
        for batch in head:
            if batch[2].shape[0]:
                oldest = min(oldest, int(batch[2].min()))
        return oldest

    def _wait_merge(self, raise_error: bool = True) -> None:
        merger = self._merger
        if merger is not None:
            merger.join()
        error, self._merge_error = self._merge_error, None
        if error is not None and raise_error:
            raise StorageError(f"{self.folder}: a background merge failed") from error

    def _merge_now(self, extra=None, cutoff: int | None = None, only_if_head: bool = False,
                   before_build=None):
        """Merge base, head (and `extra` rows) into a new generation, in this thread.
        Returns the change in distinct check-ins and what `before_build()` returned (it
        runs under the write lock, with no merge running, before anything changes)."""
        while True:
            self._wait_merge()
            with self._write_lock:
                if self._wal is None:
                    raise StorageError(f"{self.folder}: index is closed")
                if self._merger is not None:
                    continue  # another appender started one meanwhile
                if only_if_head and not self._head:
                    return 0, None
                before, seen = len(self), before_build() if before_build else None
                frozen = self._freeze()
                try:
                    generation = self._build(self._base, frozen, extra, cutoff)
                except BaseException:
                    self._thaw()  # the next merge must take these rows again
                    raise
                self._install(generation)
                return len(self) - before, seen

    def _start_merge(self) -> None:
        """Hand the head to a background merge; appends go on into a fresh log."""
        self._merger = threading.Thread(target=self._merge_in_background,
                                        args=(self._base, self._freeze()), daemon=True,
                                        name=f"qrtrace-merge-{self.folder.name}")
        self._merger.start()

    def _merge_in_background(self, base: Segment, frozen) -> None:
        try:
            generation = self._build(base, frozen)
            with self._write_lock:
                self._install(generation)
        except BaseException as exc:  # kept for the next caller; the logs still hold it all
            with self._write_lock:
                self._thaw()
                self._merge_error = exc
        finally:
            self._merger = None

    def _freeze(self):
        """Start a new log and a new head (with its own key table) for the appends that
        come while the current head merges (caller holds the write lock); returns the
        head's batches. Until the merge installs, lookups read both key tables."""
        self._rotate_log()
        with self._state_lock:
            self._frozen, self._head, self._head_rows = self._head, [], 0
            self._frozen_keys, self._frozen_new = self._head_keys, self._head_new
            self._head_keys, self._head_new = HeadKeys(self._compact_threshold()), 0
        return self._frozen

    def _thaw(self) -> None:
        """Undo _freeze after a failed merge (caller holds the write lock)."""
        with self._state_lock:
            self._head = self._frozen + self._head
            self._head_rows = sum(b[0].shape[0] for b in self._head)
            self._frozen = []
        if not self._head_keys.count:  # nothing came since the freeze
            self._head_keys, self._head_new = self._frozen_keys, self._frozen_new
            self._frozen_keys, self._frozen_new = None, 0
        else:
            self._frozen_keys, self._frozen_new = None, 0
            self._recount_head()

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
        """Write base + frozen head (+ extra) as segment files of the next generation.

        The new rows become a segment of their own that merges with the base (linear:
        the base is not sorted again; an import of 110M rows in four batches rebuilt it
        whole each time); a purge rebuilds from the rows it keeps."""
        new = [*frozen, *([extra] if extra is not None else [])]
        g = self._generation + 1
        files = ColumnFiles(self.folder, f"seg-{g}")
        try:
            if cutoff is None and len(base):
                segment = (merge_segments(base, build_segment(*_concat(new)), files)
                           if new else base)
            else:
                parts = [base.decode()] if len(base) else []
                cols = _concat(parts + new)
                if cutoff is not None:
                    keep = cols[2] >= cutoff
                    cols = [c[keep] for c in cols]
                segment = build_segment(*cols, files=files)
            save_segment(segment, self.folder, f"seg-{g}", files)
        except BaseException:
            files.abandon()
            raise
        del segment  # its columns map the temporary files; the saved ones are mapped anew
        segment = load_segment(self.folder, f"seg-{g}")
        return g, segment, latest_t_in(segment), extra is not None

    def _install(self, generation) -> None:
        """Make a built generation current (caller holds the write lock): manifest, then
        retire the merged logs, delete old files. The head's key table and count of new
        keys stay right: they hold what came after the merged rows."""
        g, base, t_max, bulk = generation
        retired = self._old_wals
        live = self._wals[len(retired):]
        self._write_manifest(g, live, bulk)
        for wal in retired:
            wal.retire()
        old = [p.name for p in self.folder.iterdir()
               if p.name.startswith(f"seg-{self._generation}.")]
        remove_files(self.folder, old + self._wals[:len(retired)])
        with self._state_lock:
            self._generation, self._base, self._base_t_max, self._wals = g, base, t_max, live
            self._old_wals, self._frozen = [], []
            self._frozen_keys, self._frozen_new = None, 0
            self._snapshot, self._changes = None, self._changes + 1

    def _recount_head(self) -> None:
        """Rebuild the head's key table from its batches (after a failed log write, which
        leaves keys in the table that the head lacks)."""
        keys, new = HeadKeys(self._compact_threshold()), 0
        for person, venue, t_in, t_out in self._head:
            stored = stored_durations(self._base, self._base_t_max, person, venue, t_in)
            if self._frozen_keys is not None:
                self._frozen_keys.upsert(person, venue, t_in, t_out, stored, write=False)
            new += keys.upsert(person, venue, t_in, t_out, stored)[1]
        with self._state_lock:
            self._head_keys, self._head_new = keys, new

    def _write_generation(self, g: int, segment: Segment, wal_name: str) -> None:
        """A new folder's first generation: segment files, an empty log, the manifest."""
        save_segment(segment, self.folder, f"seg-{g}")
        WriteAheadLog.create(self.folder / wal_name).close()
        fsync_dir(self.folder)
        self._wals = [wal_name]
        self._write_manifest(g, [wal_name])
