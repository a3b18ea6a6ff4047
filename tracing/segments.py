"""Immutable segments: the columns of deduplicated check-ins, built once, read by mmap.

A segment holds N distinct check-ins twice, in venue order and in person order:

    venue_ids    uint64[V]    sorted distinct venue ids (the venue column is implicit:
    venue_off    int64[V+1]   rows venue_off[v]:venue_off[v+1] are at venue_ids[v])
    venue_maxexp uint32[V]    longest explicit visit at each venue (bounds a scan)
    person       uint32[N]    venue view, sorted by (venue, t_in, person): person code
    t_in         uint32[N]      seconds since the epoch
    exp          uint32[N]      explicit duration t_out - t_in, 0 = no check-out
    person_ids   uint64[P]    sorted distinct person ids (the dictionary of codes)
    person_off   int64[P+1]   person view: rows person_off[p]:person_off[p+1] are person
    pv_venue     uint32[N]      p's check-ins sorted by (t_in, venue): venue code, bit 31
    pv_t_in      uint32[N]      set when the visit has an explicit check-out; t_in

20 bytes per check-in plus 16 per distinct person and 20 per venue, every view counted.
Visit ends are not stored: see kernels.py.
"""

from __future__ import annotations

import mmap
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from tracing import build_kernels, kernels
from tracing.column_files import ColumnFiles, scratch
from tracing.storage import fsync_dir

PACK_BITS = 64  # packed keys wider than this (ids of 2**31 venues or more) take a lexsort
KEY_BITS = 64  # keys with the code's low bits wider than this take _build_by_groups
TWO_THREAD_ROWS = 1 << 16  # builds of fewer rows make both views in one thread
COLUMNS = ("venue_ids", "venue_off", "venue_maxexp", "person", "t_in", "exp",
           "person_ids", "person_off", "pv_venue", "pv_t_in")


@dataclass(frozen=True, slots=True)
class Segment:
    """The arrays of one segment (see the module docstring); numpy or memory-mapped."""

    venue_ids: np.ndarray
    venue_off: np.ndarray
    venue_maxexp: np.ndarray
    person: np.ndarray
    t_in: np.ndarray
    exp: np.ndarray
    person_ids: np.ndarray
    person_off: np.ndarray
    pv_venue: np.ndarray
    pv_t_in: np.ndarray

    def __post_init__(self) -> None:
        # Every column read-only, built or memory-mapped alike: numba compiles (and
        # caches) one version of a kernel per mix of writable and read-only arrays, and
        # the trace kernels take a dozen arrays at once.
        for f in fields(self):
            getattr(self, f.name).flags.writeable = False

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
        """Venue codes of the given venue-view rows (a search in the venue offsets)."""
        return np.searchsorted(self.venue_off, rows, side="right") - 1

    def decode(self, rows: np.ndarray | None = None):
        """Venue-view rows as raw columns (person, venue, t_in, t_out; t_out 0 = none)."""
        if rows is None:
            t_in = self.t_in.astype(np.int64)
            exp = self.exp
            person = self.person_ids[self.person]
            venue = np.repeat(self.venue_ids, np.diff(self.venue_off))
        else:
            t_in = self.t_in[rows].astype(np.int64)
            exp = self.exp[rows]
            person = self.person_ids[self.person[rows]]
            venue = self.venue_ids[self.rows_venue(rows)]
        return person, venue, t_in, np.where(exp > 0, t_in + exp, 0).astype(np.int64)


def _codes(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return kernels.lookup_codes(sorted_ids, np.ascontiguousarray(ids, np.uint64))


def code_table(ids: np.ndarray):
    """rank_table's (sorted distinct ids, table, group starts) for ids that are small
    integers; None for others (see dense_codes)."""
    if ids.shape[0] == 0:
        return np.empty(0, np.uint64), np.zeros(1, np.uint32), np.zeros(1, np.int64)
    top = int(ids.max())
    if top < max(2 * ids.shape[0], 1 << 22):
        return build_kernels.rank_table(ids, top)
    return None


def dense_codes(ids: np.ndarray, codes: np.ndarray | None = None, table=None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted distinct ids, code of each id, group_starts of the codes), the codes
    (uint32) written into `codes` when given. Small ids take a linear path, not a sort
    (`table`: their code_table, if known)."""
    codes = np.empty(ids.shape[0], np.uint32) if codes is None else codes
    table = code_table(ids) if table is None else table
    if table is not None:
        build_kernels.codes_from_table(ids, table[1], codes)
        return table[0], codes, table[2]
    uniq, inverse = np.unique(ids, return_inverse=True)
    codes[:] = inverse
    starts = np.empty(uniq.shape[0] + 1, np.int64)
    build_kernels.group_starts(codes, uniq.shape[0], starts)
    return uniq.astype(np.uint64), codes, starts


def empty_segment() -> Segment:
    """A segment with no check-ins (made directly: no kernel to load)."""
    u32, u64 = np.empty(0, np.uint32), np.empty(0, np.uint64)
    off = np.zeros(1, np.int64)
    return Segment(u64, off, u32, u32, u32, u32, u64, off, u32, u32)


def _bits(n: int) -> int:
    """Bits to hold the values 0 .. n - 1."""
    return max(int(n - 1).bit_length(), 1)


def build_segment(person, venue, t_in, t_out, files: ColumnFiles | None = None) -> Segment:
    """Build a segment from raw, validated columns (uint64 ids, int64 seconds, t_out 0 =
    none). Duplicates are merged: the largest explicit t_out wins. With `files`, the
    large columns are built in their files (then save it with files.close)."""
    n = person.shape[0]
    if n == 0:
        return empty_segment()
    vcode, pcode = scratch(n, np.uint32), scratch(n, np.uint32)
    person = np.ascontiguousarray(person, np.uint64)
    tabled = threading.Event()
    take = _from_both_ends(n, CODE_CLAIM)
    table = None

    def code_persons(backward: bool, codes=pcode) -> None:
        while (rows := take(backward)) is not None:
            build_kernels.codes_from_table(person[rows[0]:rows[1]], table[1],
                                           codes[rows[0]:rows[1]])

    def person_codes(codes=pcode):
        """The person table, then person codes from the first rows on (or, for large
        ids, all the codes by a sort)."""
        nonlocal table
        try:
            table = code_table(person)
        finally:
            tabled.set()
        if table is None:
            return dense_codes(person, codes)
        code_persons(False)
        return None

    with ThreadPoolExecutor(1, thread_name_prefix="qrtrace-build") as pool:
        # the person table in a second thread while this one codes the venues; then both
        # code the persons, from either end (numba and numpy's sort release the GIL)
        threaded = n >= TWO_THREAD_ROWS
        persons = pool.submit(person_codes) if threaded else None
        venue_ids, vcode, v_starts = dense_codes(np.ascontiguousarray(venue, np.uint64), vcode)
        t_in = np.ascontiguousarray(t_in, np.int64)
        t_out = np.ascontiguousarray(t_out, np.int64)
        t0 = int(t_in.min())
        if persons is None:
            coded = person_codes()
        else:
            tabled.wait()
            if table is not None:
                code_persons(True)
            coded = persons.result()
        if coded is not None:
            person_ids, pcode, p_starts = coded
        else:
            person_ids, p_starts = table[0], table[2]
    vb, pb = _bits(venue_ids.shape[0]), _bits(person_ids.shape[0])
    tb = _bits(int(t_in.max()) - t0 + 1)
    vshift = build_kernels.coarse_shift(venue_ids.shape[0])
    pshift = build_kernels.coarse_shift(person_ids.shape[0])
    if tb + pb + vshift <= min(KEY_BITS, PACK_BITS) \
            and tb + vb + 1 + pshift <= min(KEY_BITS, PACK_BITS):
        return _build_by_keys(venue_ids, vcode, v_starts, t_in, person_ids, pcode, p_starts,
                              t_out, t0, vb, pb, tb, files)
    if tb + pb <= PACK_BITS and tb + vb + 1 <= PACK_BITS:
        return _build_by_groups(venue_ids, vcode, t_in, person_ids, pcode, t_out, t0, vb, pb,
                                files)
    v_sorted, t_sorted, p_sorted, exp = _venue_order_lexsort(vcode, t_in, pcode, t_out)
    del vcode, pcode
    venue_off = np.zeros(venue_ids.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(v_sorted, minlength=venue_ids.shape[0]), out=venue_off[1:])
    person_off = np.zeros(person_ids.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(p_sorted, minlength=person_ids.shape[0]), out=person_off[1:])
    pv_venue, pv_t_in = _person_order_lexsort(v_sorted, t_sorted, p_sorted, exp)
    return Segment(venue_ids, venue_off, kernels.venue_max_explicit(venue_off, exp),
                   p_sorted, t_sorted, exp, person_ids, person_off, pv_venue, pv_t_in)


COARSE_CLAIM = 8  # coarse groups of the venue view's second pass a thread takes at a time
CODE_CLAIM = 1 << 22  # rows a thread codes at a time


def _from_both_ends(n: int, claim: int):
    """take(backward): the next `claim` items (lo, hi) of 0 .. n - 1 not taken yet, from
    the first or from the last; None when all are taken. Thread-safe."""
    lock = threading.Lock()
    left = [0, n]

    def take(backward: bool):
        with lock:
            lo, hi = left
            if lo >= hi:
                return None
            if backward:
                left[1] = lo = max(hi - claim, lo)
            else:
                left[0] = hi = min(lo + claim, hi)
            return lo, hi

    take.stop = lambda: left.__setitem__(0, n)
    return take


def _build_by_keys(venue_ids, vcode, starts, t_in, person_ids, pcode, p_starts, t_out, t0, vb,
                   pb, tb, files):
    """build_segment by counting sorts of the raw rows, the two views at once
    (tracing/build_kernels.py, "the two views at once"): the venue view's first pass in
    this thread while the person view is built in another (numba releases the GIL); then
    both threads take the venue view's coarse groups, this one from the first, the other
    from the last, and the gap between the two runs of rows is closed. Duplicates merge
    in each view alike. Each view's keys are kept in its own output columns: the only
    scratch columns are the codes (starts, p_starts: their group_starts)."""
    n, venues, persons = t_in.shape[0], venue_ids.shape[0], person_ids.shape[0]
    threaded = n >= TWO_THREAD_ROWS
    venue_off, person_off = np.zeros(venues + 1, np.int64), np.empty(persons + 1, np.int64)
    maxexp = np.empty(venues, np.uint32)
    if files is None:
        person, times, exp, pv_venue, pv_t_in = (scratch(n, np.uint32) for _ in range(5))
    else:
        person, times, exp, pv_venue, pv_t_in = (
            files.empty(name, n, np.uint32)
            for name in ("person", "t_in", "exp", "pv_venue", "pv_t_in"))
    vshift = build_kernels.coarse_shift(venues)
    coarse = build_kernels.coarse_starts(starts, vshift)
    widest = int(np.diff(coarse).max())
    scattered = threading.Event()
    take = _from_both_ends(coarse.shape[0] - 1, COARSE_CLAIM)

    def venue_part(backward: bool):
        """This thread's share of the venue view's second pass: (its `at`, the first
        coarse group it took, or None)."""
        t_key, t_dur = np.empty(widest, np.uint64), np.empty(widest, np.uint32)
        out = [np.empty(widest if backward else 0, np.uint32) for _ in range(3)]
        at, first = (n if backward else 0), None
        while (got := take(backward)) is not None:
            first = got[0]
            at = build_kernels.finish_venue_coarse(
                got[0], got[1], backward, at, coarse, starts, vshift, pb, tb, t0, times,
                person, exp, venue_off, maxexp, person, times, exp, t_key, t_dur, *out)
        return at, first

    def person_view():
        _touch(pv_t_in, pv_venue)
        # the keys' two words go in the view's own columns: no scratch column
        build_kernels.scatter_person_words(pcode, t_in, vcode, t_out, t0, vb, tb,
                                           p_starts, build_kernels.coarse_shift(persons),
                                           pv_t_in, pv_venue)
        m2 = build_kernels.finish_person_words(p_starts, pv_t_in, pv_venue, vb, tb, t0,
                                               person_off)
        scattered.wait()
        return m2, venue_part(True)

    pool = ThreadPoolExecutor(1, thread_name_prefix="qrtrace-build") if threaded else None
    try:
        other = pool.submit(person_view) if pool else None
        try:
            _touch(person, times, exp)
            build_kernels.scatter_venue_words(vcode, t_in, pcode, t_out, t0, pb, tb,
                                              coarse, vshift, times, person, exp)
        except BaseException:
            take.stop()  # nothing for the other thread to take
            raise
        finally:
            scattered.set()
        front = venue_part(False)[0]
        m2, (back, first) = person_view() if other is None else other.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    v_back = venues if first is None else first << vshift
    m = build_kernels.close_gap(front, back, n, person, times, exp, venue_off, v_back)
    person, times, exp = person[:m], times[:m], exp[:m]
    if files is not None:
        for name in ("person", "t_in", "exp"):
            files.finish(name, m)
    if m2 != m:
        raise AssertionError(f"the views disagree: {m} rows by venue, {m2} by person")
    return Segment(venue_ids, venue_off, maxexp, person, times, exp, person_ids, person_off,
                   pv_venue[:m], pv_t_in[:m])


def _touch(*columns) -> None:
    """Write each column's pages in order before a scatter writes them out of order. In
    the benchmark at 100M, the scatters' first touches of their file pages from hundreds
    of streams at once cost more than the pass: the two scatters 3.3-4.0 and 2.0-2.5 s of
    CPU without it, 1.95 and 1.46 s after it (its own cost 0.43 and 0.31 s)."""
    for column in columns:
        build_kernels.fill_zero(column)


def _build_by_groups(venue_ids, vcode, t_in, person_ids, pcode, t_out, t0, vb, pb, files):
    """build_segment by counting sorts (tracing/build_kernels.py): rows grouped by venue
    and each venue's few rows sorted by (t_in, person) as one packed key; then the
    distinct rows grouped by person and sorted by (t_in, venue, explicit). One view
    after the other, with a scratch column of codes: the path for keys too wide to
    carry the codes' low bits as well (_build_by_keys).

    Fresh memory is the cost to avoid (at 100M rows the zeroing of fresh pages cost as
    much as the work): the scratch (a code, a key and a duration per row) is reused by
    both views, the codes are written over, and with `files` the output columns are
    their files' memory, written in order, and the venue view's files are saved while
    the person view is built. The scratch is anonymous memory in small pages
    (column_files.scratch). Tried and dropped: looking codes up in a table as rows are
    grouped instead of a column of codes (random lookups over millions of persons:
    three times the grouping's CPU)."""
    n, venues, persons = t_in.shape[0], venue_ids.shape[0], person_ids.shape[0]
    starts = np.empty(venues + 1, np.int64)
    build_kernels.group_starts(vcode, venues, starts)
    tmp_code, keys, durs = scratch(n, np.uint32), scratch(n, np.uint64), scratch(n, np.uint32)
    build_kernels.scatter_by_venue(vcode, t_in, pcode, t_out, t0, pb, starts,
                                   build_kernels.coarse_shift(venues), tmp_code, keys, durs)
    person, times = vcode, pcode  # the codes are spent
    exp = durs if files is None else files.empty("exp", n, np.uint32)
    venue_off = np.empty(venues + 1, np.int64)
    # exp may be durs: each distinct row is written at or before its first
    m = build_kernels.finish_venue_view(starts, keys, durs, pb, t0, venue_off, person,
                                        times, exp)
    person, times, exp = person[:m], times[:m], exp[:m]
    if files is not None:
        for name in ("person", "t_in", "exp"):  # the person view only reads them
            files.finish(name, m)
    del durs
    person_off = np.empty(persons + 1, np.int64)
    build_kernels.group_starts(person, persons, person_off)
    pkeys = keys[:m]
    build_kernels.scatter_by_person(venue_off, person, times, exp, t0, vb, person_off,
                                    build_kernels.coarse_shift(persons), tmp_code[:m], pkeys)
    if files is None:
        pv_venue, pv_t_in = tmp_code[:m], scratch(m, np.uint32)
    else:
        pv_venue, pv_t_in = (files.empty(name, m, np.uint32) for name in ("pv_venue", "pv_t_in"))
    build_kernels.finish_person_view(person_off, pkeys, vb, t0, pv_venue, pv_t_in)
    return Segment(venue_ids, venue_off, kernels.venue_max_explicit(venue_off, exp),
                   person, times, exp, person_ids, person_off, pv_venue, pv_t_in)


def merge_segments(a: Segment, b: Segment, files: ColumnFiles | None = None) -> Segment:
    """One segment holding the check-ins of both (a check-in in both once, with the
    longer explicit visit), as build_segment would build it from both segments' rows;
    but linear: each view's runs merge, nothing is sorted again. With `files`, the large
    columns are written in their files (then save it with files.close)."""
    if not len(b):
        return a
    if not len(a):
        return b
    venue_ids, a_v, b_v = _union(a.venue_ids, b.venue_ids)
    person_ids, a_p, b_p = _union(a.person_ids, b.person_ids)
    # the kernels take the maps, and the venue and person codes: an empty map where
    # the codes stay
    vb, pb = _old_codes_kept(a_v, b_v, venue_ids), _old_codes_kept(a_p, b_p, person_ids)
    a_v, b_v, a_p, b_p = vb[0], vb[1], pb[0], pb[1]
    n = len(a) + len(b)
    venue_off = np.empty(venue_ids.shape[0] + 1, np.int64)
    person, t_in, exp = (_empty(files, column, n) for column in ("person", "t_in", "exp"))
    m = build_kernels.merge_venue_views(a.venue_off, a.person, a.t_in, a.exp, a_v, a_p,
                                        b.venue_off, b.person, b.t_in, b.exp, b_v, b_p,
                                        venue_off, person, t_in, exp)
    if files is not None:
        for column in ("person", "t_in", "exp"):
            files.finish(column, m)
    person_off = np.empty(person_ids.shape[0] + 1, np.int64)
    pv_venue, pv_t_in = _empty(files, "pv_venue", m), _empty(files, "pv_t_in", m)
    build_kernels.merge_person_views(a.person_off, a.pv_venue, a.pv_t_in, a_v, a_p,
                                     b.person_off, b.pv_venue, b.pv_t_in, b_v, b_p,
                                     person_off, pv_venue, pv_t_in)
    exp = exp[:m]
    return Segment(venue_ids, venue_off, kernels.venue_max_explicit(venue_off, exp),
                   person[:m], t_in[:m], exp, person_ids, person_off, pv_venue[:m],
                   pv_t_in[:m])


def _empty(files: ColumnFiles | None, column: str, n: int) -> np.ndarray:
    """A uint32 output column of n rows: in its file, or in memory."""
    return np.empty(n, np.uint32) if files is None else files.empty(column, n, np.uint32)


def _old_codes_kept(a_code, b_code, union):
    """(a_code, b_code), each replaced by an empty map when it is the identity."""
    keep = np.empty(0, np.uint32)
    return (keep if a_code.shape[0] == union.shape[0] else a_code,
            keep if b_code.shape[0] == union.shape[0] else b_code)


def _union(a: np.ndarray, b: np.ndarray):
    """(sorted union of two sorted id arrays, the union's code of each a, of each b)."""
    a_code, b_code = np.empty(a.shape[0], np.uint32), np.empty(b.shape[0], np.uint32)
    return build_kernels.union_ids(a, b, a_code, b_code), a_code, b_code


def _venue_order_lexsort(vcode, t_in, pcode, t_out):
    """Distinct (venue, t_in, person) in order by a lexsort, for keys too wide to pack:
    uint32 venue code, t_in, person code and explicit duration columns."""
    order = np.lexsort((pcode, t_in, vcode))
    vcode, t_in, pcode, t_out = vcode[order], t_in[order], pcode[order], t_out[order]
    first = np.r_[True, (vcode[1:] != vcode[:-1]) | (t_in[1:] != t_in[:-1])
                  | (pcode[1:] != pcode[:-1])] if len(order) else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    t_out = np.maximum.reduceat(t_out, starts) if len(starts) else t_out
    exp = np.where(t_out > 0, t_out - t_in[starts], 0).astype(np.uint32)
    return (vcode[starts].astype(np.uint32), t_in[starts].astype(np.uint32),
            pcode[starts].astype(np.uint32), exp)


def _person_order_lexsort(vcode, t_in, pcode, exp):
    """The person view's columns by a lexsort (see _build_by_groups): venue code with
    bit 31 set for an explicit check-out, and t_in."""
    order = np.lexsort((vcode, t_in, pcode))
    flags = np.where(exp[order] > 0, kernels.EXPLICIT, 0).astype(np.uint32)
    return vcode[order] | flags, t_in[order]


def save_segment(segment: Segment, folder: Path, name: str,
                 files: ColumnFiles | None = None) -> list[str]:
    """Write each column to `name.<column>.npy` durably; return the file names. `files`:
    the ColumnFiles the segment was built with (its columns already in their files).

    Columns are written and fsynced by a few threads at once: the work is I/O (the GIL is
    released), and at 100M rows one file after another took seconds longer.
    """
    names = (files or ColumnFiles(folder, name)).close(segment, COLUMNS)
    fsync_dir(folder)
    return names


# Columns that every query binary-searches: mapped with their page tables filled at open
# (MAP_POPULATE), since a cold binary search over 43 MB of person ids faults on a dozen
# pages. The big columns are read a few contiguous rows at a time and map lazily.
SEARCHED = frozenset({"venue_ids", "venue_off", "venue_maxexp", "person_ids", "person_off"})


def load_segment(folder: Path, name: str) -> Segment:
    """Memory-map a saved segment's columns (read-only); the big ones are faulted in by a
    background thread (see _fault_in)."""
    arrays = {}
    for column in COLUMNS:
        arrays[column] = _map_npy(folder / f"{name}.{column}.npy", column in SEARCHED)
    big = [arrays[c] for c in COLUMNS if c not in SEARCHED and arrays[c].nbytes]
    if big:
        threading.Thread(target=_fault_in, args=(big,), daemon=True,
                         name=f"qrtrace-fault-in-{name}").start()
    return Segment(**arrays)


def _fault_in(columns: list[np.ndarray]) -> None:
    """Read a byte of every page of `columns` (a numba kernel: no GIL held), so that the
    first queries after an open do not take the page faults: in a freshly opened 10M
    index the first F2 query of each case had a p99 of 75 ms of CPU, the same queries
    again 26 ms. Queries answer meanwhile; this only gets there first."""
    for column in columns:
        kernels.touch_pages(column.view(np.uint8), mmap.PAGESIZE)


def _map_npy(path: Path, populate: bool) -> np.ndarray:
    """A read-only ndarray over a .npy file's memory map (a plain ndarray: np.memmap's
    subclass hooks cost microseconds on every slice, and a query slices thousands of
    times)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
        count = int(np.prod(shape))
        if fortran or len(shape) != 1:
            raise ValueError(f"{path}: expected a 1-d column")
        if count == 0:
            return np.empty(0, dtype)
        flags = mmap.MAP_SHARED | (getattr(mmap, "MAP_POPULATE", 0) if populate else 0)
        mapped = mmap.mmap(f.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset)
