"""The co-location index: durable check-in storage that answers exposure traces.

    with CheckinIndex.open("data/index") as index:
        index.set_venue_dwell(venues, dwell_seconds)
        index.append(person, venue, t_in, t_out)       # durable when it returns
        result = index.trace(case, window_from, window_to, ContactRule(depth=2))

Beyond the agreed API: `open(..., head_limit=1 << 20)` (rows in the head before it merges
into the base), `checkins()` (every distinct check-in as columns), `snapshot()`; append
returns AppendResult(added, duplicates), and with `rows=True` also `duplicate`, a bool per
input row; `duplicates(person, venue, t_in)` asks the same without storing;
`last_checkin(person, venue, at)` (the visit a check-out scan ends); `retention_days=None`
on open keeps the stored period; Evidence, Contact and Zone are named tuples now (same
fields, positional and keyword construction and to_dict as before); a trace's
TraceResult holds its answer as numpy columns (`columns`, `contact_persons`) and builds
those tuples on the first read of `contacts` or `zones`. Errors: tracing/errors.py. The
first call of each kernel in a fresh checkout compiles it (~30 s in all, cached after
that).

Layout of the folder (see segments.py for the columns; 20 bytes per check-in plus 16
per distinct person, both views and the id dictionaries counted):
    MANIFEST.json          generation g, the logs in use, retention_days (atomic rewrite)
    seg-g.<column>.npy     the base segment: sorted, deduplicated, memory-mapped
    wal-<n>.log            check-ins acknowledged since seg-g was built (wal.py); more
                           than one while a merge runs
    dwell.npy              per-venue dwell seconds, (2, n) uint64: venue ids, seconds
    LOCK                   flock'ed by the one process that has the index open; other
                           processes read the folder through tracing.follower.IndexFollower
Appended batches go to the last log (group commit: one fsync acknowledges every record
written before it) and to an in-memory head: batches of distinct keys sorted by (person,
venue, t_in), with a hash table of their keys (checkins.HeadKeys) that tells an append
which rows are already stored; a merge freezes the head with its table, and appends go
on into a new head and table until it installs. A query reads a snapshot: the base plus an
overlay segment of the head's check-ins (each with the largest t_out of its key, base
included); visit ends are computed at query time from both segments' person views, so
they stay exact when a new check-in shortens an older visit, and dwell is applied at
query time, so set_venue_dwell takes effect at once. A snapshot is made (the overlay
sorted) on the first query after an append. When the head reaches
max(head_limit, min(len(base) / 2, 4 * head_limit)) rows, a background thread merges it
with the base into generation g + 1 while appends go on into a new log (generations.py);
compact(), purge() and a batch that large (a bulk load: no log) merge in the caller's
thread. A query may see an appended row a moment before its append returns (before the
fsync).

Interpretations of DESIGN.md's contact rule (tests/tracing/naive.py encodes the same):
- Times must lie in [0, 2**32) seconds (until 2106) and a check-out within 2**31 s of its
  check-in: stored as uint32. Ids are any uint64; each segment's dictionary maps them to
  dense uint32 codes, so a segment holds at most 2**32 - 1 persons and check-ins.
- A t_out of 0 or less means "no check-out". Among duplicates the largest explicit t_out
  wins; a duplicate without t_out never removes a stored one. `duplicates` counts rows
  whose (person, venue, t_in) was already in the batch or the index, even when their
  t_out raised the stored one.
- Dwell 0 gives an empty visit, which is never present and never a contact. Venues
  without a dwell set use the query's rule.default_dwell.
- Intervals are half-open [start, end). A visit clipped to the window that leaves nothing
  of positive length has no presence, even with linger. Linger may run past `to`.
- Each (presence, visit) pair is judged on its own: two short overlaps with two adjacent
  presences of the case do not add up. Evidence is the distinct (venue, start, end)
  overlaps, ordered by start, end, venue.
- A level-k person's presence uses all their visits at every venue, clipped to
  [exposed_at, to) of the case's window.
- Zones: a venue's presences that overlap or touch are merged; zones with no exposed
  persons are listed too (exposed = 0); zones exist for levels 0 .. depth - 1.
- Contacts are ordered by (level, exposed_at, person); zones by (level, venue, start).
- `trace` on a person with no check-ins in the window returns no contacts and no zones.
- purge(now) removes check-ins with t_in < now - retention_days days; a remaining visit's
  end never depends on an earlier check-in, so nothing else changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

import numpy as np

from tracing import checkins, exposure, kernels
from tracing.checkins import AppendResult, HeadKeys, coalesce, group_batch, validate_batch
from tracing.errors import InvalidQuery, StorageError
from tracing.generations import (
    DWELL,
    MANIFEST,
    GenerationsMixin,
    is_index_file,
    latest_t_in,
    stored_durations,
)
from tracing.model import ContactRule, TraceResult
from tracing.segments import Segment, empty_segment, load_segment
from tracing.storage import fsync_dir, read_json, write_npy
from tracing.wal import WriteAheadLog

DEFAULT_RETENTION_DAYS = 21
SMALL_RUN = 8192  # head batches that merge while they are smaller than this
DEFAULT_RULE = ContactRule()


class IndexReader:
    """A base segment, a head of check-ins over it and venues' dwell, answering queries:
    what CheckinIndex and the read-only follower (tracing.follower) share.

    Thread-safe reads: queries read an immutable snapshot. Changes to the head (_replay,
    _record, _add_to_head) are serialised by the caller: the index's write lock, the
    follower's follow lock.
    """

    def __init__(self, folder: Path, retention_days: int | None):
        self.folder = folder
        self.retention_days = retention_days
        self._state_lock = threading.Lock()
        self._generation = 0
        self._bulk_generation = 0  # the latest generation a bulk load made (manifest)
        self._base: Segment = empty_segment()
        self._base_t_max = -1  # the base's latest t_in
        self._head: list[tuple[np.ndarray, ...]] = []
        self._head_rows = 0
        self._head_keys = HeadKeys()  # the head's keys (grows with them)
        self._head_new = 0  # head keys that the base lacks
        # a background merge's head batches (only an index merges; a follower's are empty)
        self._frozen: list[tuple[np.ndarray, ...]] = []
        self._frozen_keys: HeadKeys | None = None
        self._frozen_new = 0
        self._snapshot: exposure.Snapshot | None = None
        self._changes = 0  # counts what makes a snapshot stale
        self._dwell = (np.empty(0, np.uint64), np.empty(0, np.int64))

    def __len__(self) -> int:
        """The number of distinct check-ins (duplicates counted once)."""
        return len(self._base) + self._frozen_new + self._head_new

    # ---- the head --------------------------------------------------------------------

    def _replay(self, batches) -> bool:
        """Enter logged batches in the head as their appends did (the log holds each
        append's changes; replayed in any order they give the same check-ins). Returns
        whether any batch changed the store."""
        changed = False
        for batch in batches:
            changes = self._record(group_batch(*batch).columns)[1]
            if changes[0].shape[0]:
                self._add_to_head(changes)
                changed = True
        return changed

    def _record(self, columns):
        """Enter a batch's distinct keys in the head's key table (caller serialises
        changes). Returns which keys are new to the index, and the rows that change the
        store (new keys, longer explicit visits), for the log and the head."""
        fresh, changed = self._lookup(columns, write=True)
        return fresh, columns if changed.all() else tuple(c[changed] for c in columns)

    def _lookup(self, columns, write: bool):
        """Distinct keys against base and head: (which are new to the index, which change
        the store). If `write`, the changing ones enter the head's key table and count."""
        person, venue, t_in, t_out = columns
        stored = stored_durations(self._base, self._base_t_max, person, venue, t_in)
        if self._frozen_keys is not None:  # a merge runs: its rows are not in the base yet
            self._frozen_keys.upsert(person, venue, t_in, t_out, stored, write=False)
        changed, new = self._head_keys.upsert(person, venue, t_in, t_out, stored, write)
        if write:
            self._head_new += new
        return stored < 0, changed

    def _add_to_head(self, rows) -> None:
        """Add a batch of distinct keys to the head (caller serialises changes); small
        batches merge with the small ones before them (checkins.coalesce)."""
        rows, taken, removed = coalesce(self._head, rows, SMALL_RUN)
        with self._state_lock:
            self._head[len(self._head) - taken:] = [rows]
            self._head_rows += rows[0].shape[0] - removed
            self._snapshot, self._changes = None, self._changes + 1

    # ---- reading ------------------------------------------------------------------

    def snapshot(self) -> exposure.Snapshot:
        """The current data as an immutable snapshot (builds the head's overlay). One
        already built is read without the lock: a single attribute read, on every query."""
        snap = self._snapshot
        if snap is not None:
            return snap
        with self._state_lock:
            if self._snapshot is not None:
                return self._snapshot
            base, head = self._base, self._frozen + self._head
            dwell, changes = self._dwell, self._changes
        overlay, mask = exposure.build_overlay(base, head)
        snap = exposure.Snapshot(base, mask, overlay, *dwell)
        with self._state_lock:
            if self._changes == changes:
                self._snapshot = snap
        return snap

    def built_snapshot(self) -> exposure.Snapshot | None:
        """The snapshot `snapshot()` would return, if it is already built (nothing was
        appended, merged or purged since); None otherwise. Never builds: cheap enough to
        ask on every query."""
        return self._snapshot

    def trace(self, case: int, window_from: int, window_to: int,
              rule: ContactRule = DEFAULT_RULE) -> TraceResult:
        """Contacts and zones of `case` infectious in [window_from, window_to) by `rule`.

        Raises InvalidQuery for a case id outside uint64 or an empty window."""
        case, window_from, window_to = _check_query(case, window_from, window_to)
        # no GC pause: the answer is columns; its tuples pause the GC when first built
        return exposure.trace(self.snapshot(), case, window_from, window_to, rule)

    def trace_many(self, cases, froms, tos, rule: ContactRule = DEFAULT_RULE
                   ) -> list[TraceResult]:
        """`trace` for many cases over one snapshot; results in the order of `cases`."""
        cases, froms, tos = (np.asarray(a).ravel() for a in (cases, froms, tos))
        if not cases.shape == froms.shape == tos.shape:
            raise InvalidQuery("cases, froms and tos must have the same length")
        snap = self.snapshot()
        out = []
        for case, lo, hi in zip(cases.tolist(), froms.tolist(), tos.tolist(), strict=True):
            case, lo, hi = _check_query(case, lo, hi)
            out.append(exposure.trace(snap, case, lo, hi, rule))
        return out

    def last_checkin(self, person: int, venue: int, at: int) -> tuple[int, int] | None:
        """The person's latest check-in at `venue` with t_in <= `at` (for a check-out
        scan), as (t_in, t_out or 0 when it has none), or None if there is none.
        Raises InvalidQuery for a person or venue id outside uint64."""
        person, venue, at = _check_id("person", person), _check_id("venue", venue), int(at)
        if at < 0:
            return None
        at = min(at, 2**32 - 1)  # times are stored as uint32
        with self._state_lock:
            base, head = self._base, self._frozen + self._head
        best = (-1, 0)
        p = int(base.person_codes(np.array([person], np.uint64))[0])
        v = int(base.venue_codes(np.array([venue], np.uint64))[0])
        if p >= 0 and v >= 0:
            t, exp = kernels.last_in_person_view(base.person_off, base.pv_venue, base.pv_t_in,
                                                 base.venue_off, base.t_in, base.person,
                                                 base.exp, p, v, at)
            best = (int(t), int(t + exp) if exp else 0)
        person, venue = np.uint64(person), np.uint64(venue)
        for rows in head:  # each sorted by (person, venue, t_in)
            if rows[0][0] <= person <= rows[0][-1]:
                r = kernels.last_in_batch(rows[0], rows[1], rows[2], person, venue, at)
                if r >= 0:  # the same key in base and head: the larger t_out is stored
                    best = max(best, (int(rows[2][r]), int(rows[3][r])))
        return None if best[0] < 0 else best

    def checkins(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every distinct check-in as columns (person, venue, t_in, t_out; t_out 0 = none),
        in no particular order: for exports and checks."""
        snap = self.snapshot()
        base, overlay = snap.base.decode(), snap.overlay.decode()
        if len(snap.overlay):
            # a base check-in the head repeats is listed once, as the head has it
            ov = snap.overlay
            repeated = kernels.find_keys(ov.venue_off, ov.t_in, ov.person,
                                         ov.venue_codes(base[1]), base[2],
                                         ov.person_codes(base[0])) >= 0
            base = tuple(col[~repeated] for col in base)
        return tuple(np.concatenate([base[i], overlay[i]]) for i in range(4))

    def stats(self) -> dict:
        """Sizes: check-ins, rows in base and head, bytes on disk per check-in."""
        files = {}
        for p in self.folder.iterdir():
            with contextlib.suppress(FileNotFoundError):  # a merge may delete it meanwhile
                if p.is_file():
                    files[p.name] = p.stat().st_size
        seg_bytes = sum(s for n, s in files.items() if n.startswith("seg-"))
        n = len(self)
        return {
            "checkins": n, "base_rows": len(self._base), "head_rows": self._head_rows,
            "segments": 1, "generation": self._generation,
            "persons": int(self._base.person_ids.shape[0]),
            "venues": int(self._base.venue_ids.shape[0]),
            "segment_bytes": seg_bytes, "wal_bytes": files.get(f"wal-{self._generation}.log", 0),
            "disk_bytes": sum(files.values()),
            "bytes_per_checkin": seg_bytes / len(self._base) if len(self._base) else 0.0,
            "retention_days": self.retention_days,
        }


class CheckinIndex(GenerationsMixin, IndexReader):
    """Check-ins on disk (segments and a write-ahead log) answering exposure traces.

    Thread-safe: appends are serialised; queries read an immutable snapshot.
    """

    def __init__(self, folder: Path, retention_days: int | None, head_limit: int):
        super().__init__(folder, retention_days)
        self.head_limit = head_limit
        self._write_lock = threading.RLock()
        self._lock_fd = -1
        self._wal: WriteAheadLog | None = None
        self._wals: list[str] = []  # log files in the manifest, oldest first
        self._wal_seq = 0
        # a background merge: the logs it retires
        self._old_wals: list[WriteAheadLog] = []
        self._merger: threading.Thread | None = None
        self._merge_error: BaseException | None = None

    # ---- opening and closing -------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, *, retention_days: int | None = None,
             create: bool = True,
             head_limit: int = 1 << 20) -> CheckinIndex:
        """Open (or create) the index in folder `path`.

        Replays the write-ahead log (a torn tail is cut off) and memory-maps the base.
        retention_days (default 21) is stored on creation; None on a later open keeps the
        stored value, a number replaces it.
        Raises StorageError if the folder is not an index (and create is False), or is
        already open in another process.
        """
        if retention_days is not None and (not isinstance(retention_days, int)
                                           or retention_days < 1):
            raise ValueError(f"retention_days must be a positive integer, got {retention_days!r}")
        folder = Path(path)
        if not (folder / MANIFEST).exists():
            if not create:
                raise StorageError(f"{folder}: no qrtrace index here (no {MANIFEST})")
            # an index half made by a crash is ours to finish; a folder of other files
            # is not (its strays would be deleted as leftovers of a merge)
            foreign = sorted(p.name for p in folder.iterdir()
                             if not is_index_file(p.name)) if folder.is_dir() else []
            if foreign:
                more = ", ..." if len(foreign) > 3 else ""
                raise StorageError(f"{folder}: not a qrtrace index and not empty (it holds "
                                   f"{', '.join(foreign[:3])}{more}); name an empty or new "
                                   "folder")
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        index = cls(folder, retention_days, head_limit)
        index._lock_folder()
        try:
            index._load()
        except BaseException:
            index.close()
            raise
        return index

    def _lock_folder(self) -> None:
        self._lock_fd = os.open(self.folder / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise StorageError(f"{self.folder}: index is open in another process") from exc

    def _load(self) -> None:
        manifest_path = self.folder / MANIFEST
        if not manifest_path.exists():
            if self.retention_days is None:
                self.retention_days = DEFAULT_RETENTION_DAYS
            self._write_generation(0, empty_segment(), "wal-0.log")
        manifest = read_json(manifest_path)
        self._generation = int(manifest["generation"])
        self._bulk_generation = int(manifest.get("bulk_generation", 0))
        self._wals = list(manifest.get("wals", [f"wal-{self._generation}.log"]))
        self._wal_seq = 1 + max(int(name[4:-4]) for name in self._wals)
        if self.retention_days is None:
            self.retention_days = int(manifest.get("retention_days", DEFAULT_RETENTION_DAYS))
        if manifest.get("retention_days") != self.retention_days:
            self._write_manifest()
        self._remove_strays()
        self._base = load_segment(self.folder, f"seg-{self._generation}")
        self._base_t_max = latest_t_in(self._base)
        self._head_keys = HeadKeys(self._compact_threshold())
        self._dwell = read_dwell(self.folder)[1]
        # logs before the last one belong to a merge that a crash interrupted
        for name in self._wals:
            wal, batches = WriteAheadLog.open(self.folder / name)
            self._replay(batches)
            self._old_wals.append(wal)
        self._wal = self._old_wals.pop()

    def close(self) -> None:
        """Finish a running merge, close the logs and release the folder."""
        self._wait_merge(raise_error=False)
        with self._write_lock:
            for wal in self._old_wals:
                wal.close()
            if self._wal is not None:
                self._wal.close()
                self._wal = None
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def __enter__(self) -> CheckinIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- writing ------------------------------------------------------------------

    def set_venue_dwell(self, venues: np.ndarray, dwell_seconds: np.ndarray) -> None:
        """Set venues' dwell in seconds (already resolved: the venue's own, else its
        category's default). Venues never set use the rule's default_dwell. Persisted.
        Visit ends follow at once (dwell is applied at query time).
        Raises InvalidCheckin on negative or mismatched input."""
        from tracing.checkins import validate_dwell
        venues, seconds = validate_dwell(venues, dwell_seconds)
        with self._write_lock:
            old_v, old_s = self._dwell
            keep = ~np.isin(old_v, venues)
            all_v = np.concatenate([old_v[keep], venues])
            all_s = np.concatenate([old_s[keep], seconds])
            order = np.argsort(all_v, kind="stable")
            all_v, all_s = all_v[order], all_s[order]
            write_npy(self.folder / DWELL, np.stack([all_v, all_s.astype(np.uint64)]))
            fsync_dir(self.folder)
            with self._state_lock:
                self._dwell = (all_v, all_s)
                self._snapshot, self._changes = None, self._changes + 1

    def reserve_key_tables(self) -> threading.Thread:
        """Make the key tables of the next heads resident now, in a background thread
        (checkins.TablePool.reserve): for a process that will append much (a server, a
        worker), so that its first heads grow into memory it already has instead of
        faulting fresh pages in under an append's random probes (3-4 times the cost of a
        resident table's on this VM). Keeps two tables of 96 MB. Returns the thread."""
        thread = threading.Thread(target=checkins.TABLES.reserve,
                                  args=(2, checkins.REHASH_SLOTS // 2),
                                  name="qrtrace-reserve-key-tables", daemon=True)
        thread.start()
        return thread

    def append(self, person, venue, t_in, t_out=None, *, rows: bool = False) -> AppendResult:
        """Append check-ins (columns: uint64 ids, int64 seconds; t_out <= 0 or None = no
        check-out). Durable when it returns. Returns counts of added and duplicate rows
        (within the batch and against stored data) and, if `rows`, which input rows were
        duplicates (AppendResult.duplicate). Raises InvalidCheckin naming the first bad
        row; nothing of a bad batch is stored."""
        batch = validate_batch(person, venue, t_in, t_out)
        n = batch[0].shape[0]
        if n >= self._compact_threshold():
            return self._bulk_append(batch, rows)
        grouped = group_batch(*batch)
        with self._write_lock:
            if self._wal is None:
                raise StorageError(f"{self.folder}: index is closed")
            fresh, changes = self._record(grouped.columns)
            wal, synced_to = self._wal, -1
            if changes[0].shape[0]:
                try:
                    synced_to = wal.write(*changes)
                except BaseException:
                    self._recount_head()  # the key table took rows the head did not
                    raise
                self._add_to_head(changes)
                if self._head_rows >= self._compact_threshold() and self._merger is None:
                    self._start_merge()
        if synced_to >= 0:
            # outside the write lock, so that concurrent appenders share one fsync; a
            # query may see these rows a moment before they are durable
            wal.sync(synced_to)
        added = int(fresh.sum())
        return AppendResult(added, n - added, grouped.row_duplicates(~fresh) if rows else None)

    def duplicates(self, person, venue, t_in) -> np.ndarray:
        """Which rows an append now would call duplicates (bool per row): their
        (person, venue, t_in) is stored already or an earlier row of the batch has it.
        Stores nothing. Raises InvalidCheckin naming the first bad row."""
        grouped = group_batch(*validate_batch(person, venue, t_in))
        with self._write_lock:
            if self._wal is None:
                raise StorageError(f"{self.folder}: index is closed")
            fresh, _ = self._lookup(grouped.columns, write=False)
        return grouped.row_duplicates(~fresh)

    def _bulk_append(self, batch, rows: bool) -> AppendResult:
        """A batch as large as a merge: one merge into a new segment, no log."""
        n = batch[0].shape[0]
        grouped = group_batch(*batch) if rows else None

        def stored_before() -> np.ndarray | None:  # runs under the write lock
            if grouped is None:
                return None
            return ~self._lookup(grouped.columns, write=False)[0]

        added, stored = self._merge_now(extra=grouped.columns if rows else batch,
                                        before_build=stored_before)
        if stored is None:
            return AppendResult(added, n - added)
        added = int((~stored).sum())
        return AppendResult(added, n - added, grouped.row_duplicates(stored))



def read_dwell(folder: Path):
    """The folder's dwell table, (venue ids, int64 seconds), and its file's identity
    (inode, mtime, size; None when there is no file), both from one open file."""
    try:
        f = open(folder / DWELL, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return None, (np.empty(0, np.uint64), np.empty(0, np.int64))
    with f:
        st = os.fstat(f.fileno())
        table = np.load(f)
    return (st.st_ino, st.st_mtime_ns, st.st_size), (table[0].copy(), table[1].astype(np.int64))


def _check_id(name: str, value) -> int:
    value = int(value)
    if not 0 <= value < 2**64:
        raise InvalidQuery(f"{name}: id must be in [0, 2**64), got {value}")
    return value


def _check_query(case, window_from, window_to) -> tuple[int, int, int]:
    case, window_from, window_to = int(case), int(window_from), int(window_to)
    if not 0 <= case < 2**64:
        raise InvalidQuery(f"case: person id must be in [0, 2**64), got {case}")
    if window_from >= window_to:
        raise InvalidQuery(f"window: from ({window_from}) must be before to ({window_to})")
    return case, window_from, window_to
