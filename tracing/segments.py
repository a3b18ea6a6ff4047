"""Immutable segments: the columns of deduplicated check-ins, built once, read by mmap.

A segment holds N distinct check-ins sorted by (venue, t_in, person), and a person view:

    venue_ids    uint64[V]    sorted distinct venue ids (the venue column is implicit:
    venue_off    int64[V+1]   rows venue_off[v]:venue_off[v+1] are at venue_ids[v])
    venue_maxexp uint32[V]    longest explicit visit at each venue (bounds a scan)
    person       uint32[N]    person code: an index into person_ids
    t_in         uint32[N]    seconds since the epoch
    dur          uint32[N]    explicit check-out or gap to the next check-in (kernels.py)
    person_ids   uint64[P]    sorted distinct person ids (the dictionary)
    person_off   int64[P+1]   person view: perm[person_off[p]:person_off[p+1]] are
    perm         uint32[N]    person p's rows, ordered by t_in

16 bytes per check-in plus 8 per distinct person and 20 per venue, every view counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from tracing import kernels
from tracing.storage import fsync_dir, write_npy

COLUMNS = ("venue_ids", "venue_off", "venue_maxexp", "person", "t_in", "dur",
           "person_ids", "person_off", "perm")
PARALLEL_ROWS = 200_000  # below this, building on one thread is faster


@dataclass(frozen=True, slots=True)
class Segment:
    """The arrays of one segment (see the module docstring); numpy or memory-mapped."""

    venue_ids: np.ndarray
    venue_off: np.ndarray
    venue_maxexp: np.ndarray
    person: np.ndarray
    t_in: np.ndarray
    dur: np.ndarray
    person_ids: np.ndarray
    person_off: np.ndarray
    perm: np.ndarray

    def __len__(self) -> int:
        return int(self.t_in.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of every column, the person view and both dictionaries included."""
        return sum(getattr(self, f.name).nbytes for f in fields(self))

    def venue_codes(self, venue_ids: np.ndarray) -> np.ndarray:
        """Codes of the given venue ids in this segment, -1 where absent (int64)."""
        return _codes(self.venue_ids, venue_ids)

    def person_codes(self, person_ids: np.ndarray) -> np.ndarray:
        """Codes of the given person ids in this segment, -1 where absent (int64)."""
        return _codes(self.person_ids, person_ids)

    def rows_venue(self, rows: np.ndarray) -> np.ndarray:
        """Venue codes of the given rows (a binary search in the venue offsets)."""
        return np.searchsorted(self.venue_off, rows, side="right") - 1

    def decode(self, rows: np.ndarray | None = None):
        """Rows back as raw columns (person, venue, t_in, t_out; t_out 0 = none)."""
        if rows is None:
            rows = np.arange(len(self), dtype=np.int64)
        dur = self.dur[rows]
        explicit = (dur & kernels.EXPLICIT) != 0
        t_in = self.t_in[rows].astype(np.int64)
        t_out = np.where(explicit, t_in + (dur & kernels.LOW_BITS), 0).astype(np.int64)
        return (self.person_ids[self.person[rows]], self.venue_ids[self.rows_venue(rows)],
                t_in, t_out)


def _codes(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.uint64)
    pos = np.searchsorted(sorted_ids, ids)
    found = pos < sorted_ids.shape[0]
    found[found] = sorted_ids[pos[found]] == ids[found]
    return np.where(found, pos, -1).astype(np.int64)


def dense_codes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct ids, code of each id). Small ids take a linear path, not a sort."""
    if ids.shape[0] == 0:
        return np.empty(0, np.uint64), np.empty(0, np.uint32)
    top = int(ids.max())
    if top < max(2 * ids.shape[0], 1 << 22):
        present = np.zeros(top + 1, np.bool_)
        present[ids] = True
        rank = np.cumsum(present, dtype=np.int32) - 1
        return np.flatnonzero(present).astype(np.uint64), rank[ids].astype(np.uint32)
    uniq, inverse = np.unique(ids, return_inverse=True)
    return uniq.astype(np.uint64), inverse.astype(np.uint32)


def empty_segment() -> Segment:
    """A segment with no check-ins."""
    return build_segment(np.empty(0, np.uint64), np.empty(0, np.uint64),
                         np.empty(0, np.int64), np.empty(0, np.int64))


def build_segment(person, venue, t_in, t_out) -> Segment:
    """Build a segment from raw, validated columns (uint64 ids, int64 seconds, t_out 0 =
    none). Duplicates are merged (largest explicit t_out wins); every visit's gap to the
    person's next check-in is computed over these rows only."""
    venue_ids, vcode = dense_codes(np.ascontiguousarray(venue, np.uint64))
    person_ids, pcode = dense_codes(np.ascontiguousarray(person, np.uint64))
    t_in32 = np.ascontiguousarray(t_in, np.int64).astype(np.uint32)
    big = t_in.shape[0] >= PARALLEL_ROWS
    sort_groups = kernels.sort_groups if big else kernels.sort_groups_serial
    order, off = kernels.counting_order(vcode, venue_ids.shape[0])
    sort_groups(order, off, (t_in32.astype(np.uint64) << np.uint64(32)) | pcode)
    keep, merged = kernels.dedupe_sorted(order, vcode, t_in32, pcode,
                                         np.ascontiguousarray(t_out, np.int64))
    vcode, pcode, t_in32 = vcode[keep], pcode[keep], t_in32[keep]
    venue_off = np.zeros(venue_ids.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(vcode, minlength=venue_ids.shape[0]), out=venue_off[1:])
    perm, person_off = kernels.counting_order(pcode, person_ids.shape[0])
    sort_groups(perm, person_off, (t_in32.astype(np.uint64) << np.uint64(32)) | vcode)
    duration_words = kernels.duration_words if big else kernels.duration_words_serial
    dur = duration_words(perm, person_off, t_in32, merged)
    return Segment(venue_ids, venue_off, kernels.venue_max_explicit(venue_off, dur),
                   pcode, t_in32, dur, person_ids, person_off, perm.astype(np.uint32))


def save_segment(segment: Segment, folder: Path, name: str) -> list[str]:
    """Write each column to `name.<column>.npy` durably; return the file names."""
    names = []
    for column in COLUMNS:
        file_name = f"{name}.{column}.npy"
        write_npy(folder / file_name, getattr(segment, column))
        names.append(file_name)
    fsync_dir(folder)
    return names


def load_segment(folder: Path, name: str) -> Segment:
    """Memory-map a saved segment's columns (read-only)."""
    arrays = {}
    for column in COLUMNS:
        path = folder / f"{name}.{column}.npy"
        # an empty .npy cannot be memory-mapped
        mode = "r" if os.path.getsize(path) > 256 else None
        arrays[column] = np.load(path, mmap_mode=mode)
    return Segment(**arrays)
