"""A read-only follower of an index folder, for the processes that do not own it.

    follower = IndexFollower.open("data/index")        # takes no LOCK, never writes
    follower.trace(case, window_from, window_to, rule)  # as the writer answers, <= poll_s late
    follower.last_checkin(person, venue, at)            # catches up first: read-your-writes
    follower.refresh()                                  # catch up now; True if anything changed
    follower.close()

`qrtrace serve --workers N` runs N processes; one owns the folder (CheckinIndex: LOCK, the
log, merges, purges), the others answer officials' queries through a follower. The
follower has CheckinIndex's read API with the same answers: it is made of the same code
(index.IndexReader: the base, the head and the replay of the log), fed from the files.

How it follows (index.py and generations.py describe the folder):
- Opening maps the base seg-g that MANIFEST.json names, reads dwell.npy and replays every
  log the manifest lists into a head, as CheckinIndex.open does.
- A refresh is incremental: the whole records appended to a log since the last read are
  replayed (wal.LogTail; a record still being written is left for the next refresh, and
  nothing is ever truncated); a log the manifest newly lists (a merge started) is
  followed from its start; dwell.npy is read again when its inode, mtime or size
  changes. With nothing new it costs a stat of the manifest and of dwell.npy and an
  fstat or two of each followed log (usually one): about 15 us in all.
- A new generation (a merge installed, a purge, compact(), a bulk load) is loaded whole
  into a new replica: base mapped, the manifest's logs replayed from their start; the
  new replica then replaces the old one in one assignment. Readers go on with the old
  one meanwhile, and incremental refreshes go on over the old base: the logs followed
  are read to their end (open files outlive the merge deleting them) and the newer logs
  opened. Every merged log read, that is exact after a merge or compact(); after a purge
  it still shows what the purge removed, and after a bulk load it lacks the loaded rows,
  until the reload swaps in.
- The writer deletes the old files right after installing a generation: a
  FileNotFoundError while opening them means the manifest moved on, and loading starts
  again from the manifest.
- A daemon thread refreshes every poll_s (the reloads happen there). last_checkin() and
  checkins() catch up first: the writer fsyncs a batch before acknowledging it, so a
  check-out posted here right after its check-in was acknowledged finds it.

What a follower cannot see or do: rows of a bulk append (a batch of a merge's size: no
log) until their generation is installed (then last_checkin() and checkins() load it
first: the manifest names the latest generation a bulk load made); it cannot write
(append, set_venue_dwell, purge and compact raise StorageError); it needs a folder a
writer created. It relies on local POSIX files (an open file outlives its unlinking,
whose st_nlink drops to 0): not NFS. stats()["head_rows"] counts a merging head too
(the writer's counts only the new one), and stats()["follower"] says how the follower
is doing.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import NoReturn

import numpy as np

from tracing import exposure
from tracing.errors import StorageError
from tracing.generations import DWELL, MANIFEST, latest_t_in
from tracing.index import DEFAULT_RETENTION_DAYS, DEFAULT_RULE, IndexReader, read_dwell
from tracing.model import ContactRule, TraceResult
from tracing.segments import Segment, load_segment
from tracing.wal import LogTail

REPLAY_ROWS = 1 << 20  # logged rows replayed as one batch (wal.decode_joined)
LOAD_ATTEMPTS = 100    # manifests tried while merges delete what they name
RELOADS = 3            # reloads in one refresh while the writer installs new generations


def _file_key(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_mtime_ns, st.st_size


def _read_manifest(folder: Path) -> tuple[tuple[int, int, int], dict]:
    """The manifest's file identity and content, from one open file."""
    with open(folder / MANIFEST, "rb") as f:
        return _file_key(os.fstat(f.fileno())), json.loads(f.read())


def _log_names(manifest: dict) -> list[str]:
    return list(manifest.get("wals", [f"wal-{int(manifest['generation'])}.log"]))


def _log_seq(name: str) -> int:
    return int(name[4:-4])  # wal-<n>.log: a writer numbers its logs one after another


class _Replica(IndexReader):
    """One generation of the folder as the follower sees it: its base mapped, its logs
    followed (and kept open) and replayed into the head."""

    def __init__(self, folder: Path, manifest_key, manifest: dict, base: Segment,
                 logs: list[LogTail]):
        super().__init__(folder, int(manifest.get("retention_days", DEFAULT_RETENTION_DAYS)))
        self._generation = int(manifest["generation"])
        self._base, self._base_t_max = base, latest_t_in(base)
        self.logs = logs
        self.manifest_key, self.manifest = manifest_key, manifest
        self.dwell_key = None  # dwell.npy's identity when read; None: no file
        # as strings: making Path objects cost more than the stat calls of an idle refresh
        self._manifest_path = os.path.join(folder, MANIFEST)
        self._dwell_path = os.path.join(folder, DWELL)
        self.behind = False  # the manifest names a newer generation: reload
        self.stuck = False   # ... and logs of it came and went unread: rows are missing

    @classmethod
    def load(cls, folder: Path) -> _Replica:
        """The folder's current generation, caught up. Raises StorageError if merges
        delete what manifest after manifest names faster than it is opened."""
        for _ in range(LOAD_ATTEMPTS):
            key, manifest = _read_manifest(folder)
            logs: list[LogTail] = []
            try:
                base = load_segment(folder, f"seg-{int(manifest['generation'])}")
                for name in _log_names(manifest):
                    logs.append(LogTail.open(folder / name))
            except FileNotFoundError:  # installed and deleted since the manifest was read
                for log in logs:
                    log.close()
                continue
            replica = cls(folder, key, manifest, base, logs)
            try:
                replica.follow()
            except BaseException:
                replica.close()
                raise
            return replica
        raise StorageError(f"{folder}: the manifest kept moving on while loading it")

    def follow(self) -> bool:
        """Catch up incrementally (the caller serialises): dwell, newly listed logs, new
        records. Returns whether the answers may have changed."""
        try:
            changed = self._follow_dwell()
            self._follow_manifest()
            for log in self.logs:
                changed |= self._replay(log.read_new(REPLAY_ROWS))
            return changed
        except BaseException:
            self.behind = self.stuck = True  # half replayed: only a reload is sure
            raise

    def _follow_dwell(self) -> bool:
        try:
            key = _file_key(os.stat(self._dwell_path))
        except FileNotFoundError:
            key = None
        if key == self.dwell_key:
            return False
        self.dwell_key, dwell = read_dwell(self.folder)
        with self._state_lock:
            self._dwell = dwell
            self._snapshot, self._changes = None, self._changes + 1
        return True

    def _follow_manifest(self) -> None:
        """Open the logs a newer manifest lists. A merge installed (the first log
        followed deleted) or another generation named: behind."""
        key = _file_key(os.stat(self._manifest_path))
        # a rewrite keeping inode (reused), mtime (coarse) and size could hide a new
        # generation; it cannot hide that the first log followed was deleted
        if key == self.manifest_key and not self.logs[0].unlinked():
            return
        self.manifest_key, manifest = _read_manifest(self.folder)
        if manifest == self.manifest:
            return
        self.manifest = manifest
        self.retention_days = int(manifest.get("retention_days", DEFAULT_RETENTION_DAYS))
        names = _log_names(manifest)
        followed = [log.path.name for log in self.logs]
        if int(manifest["generation"]) != self._generation:
            self.behind = True
            if int(manifest.get("bulk_generation", 0)) > self._generation:
                self.stuck = True  # a bulk load since: rows that no log carries
        elif not set(followed) <= set(names):
            self.behind = self.stuck = True  # not how a writer changes a manifest
        if self.stuck:
            return
        last = _log_seq(followed[-1])
        if min(map(_log_seq, names)) > last + 1:
            self.stuck = True  # logs after `last` were merged and deleted unseen
            return
        opened: list[LogTail] = []
        try:
            for name in names:
                if _log_seq(name) > last:
                    opened.append(LogTail.open(self.folder / name))
        except FileNotFoundError:
            for log in opened:
                log.close()
            self.stuck = True
            return
        self.logs += opened

    def close(self) -> None:
        """Close the logs (idempotent); answers stay readable."""
        for log in self.logs:
            log.close()


class IndexFollower:
    """A read-only, following view of an index folder that another process writes.

    Thread-safe: readers never wait for a reload; changes to the view are serialised.
    """

    def __init__(self, folder: Path, replica: _Replica, poll_s: float | None):
        self.folder = folder
        self.poll_s = poll_s
        self._replica = replica
        self._follow_lock = threading.Lock()  # changes to the replica, and its swap
        self._reload_lock = threading.Lock()  # one refresh (and reload) at a time
        self._closed = threading.Event()
        self._poller: threading.Thread | None = None
        self._error: BaseException | None = None  # the background refresh's last failure
        self._reloads = 0

    @classmethod
    def open(cls, path: str | os.PathLike, *, poll_s: float | None = 0.05) -> IndexFollower:
        """Follow the index in folder `path`: map its base, replay its logs, and refresh
        every `poll_s` seconds in a daemon thread (None: only when asked).

        Takes no lock and never writes, renames or deletes anything in the folder.
        Raises StorageError if the folder holds no index or cannot be read, ValueError
        for a poll_s that is not positive.
        """
        if poll_s is not None and not poll_s > 0:
            raise ValueError(f"poll_s must be positive seconds or None, got {poll_s!r}")
        folder = Path(path)
        if not (folder / MANIFEST).exists():
            raise StorageError(f"{folder}: no qrtrace index here (no {MANIFEST})")
        try:
            follower = cls(folder, _Replica.load(folder), poll_s)
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(f"{folder}: cannot follow the index: {exc}") from exc
        if poll_s is not None:
            follower._poller = threading.Thread(target=follower._poll, daemon=True,
                                                name=f"qrtrace-follow-{folder.name}")
            follower._poller.start()
        return follower

    @property
    def retention_days(self) -> int:
        """The retention period the manifest names, in days."""
        return self._replica.retention_days

    # ---- following ----------------------------------------------------------------

    def refresh(self) -> bool:
        """Catch up with the writer now: new log records, dwell, and a new generation
        (loaded in this thread). Returns whether anything changed.
        Raises StorageError if the follower is closed or the folder cannot be read."""
        if self._closed.is_set():
            raise StorageError(f"{self.folder}: follower is closed")
        try:
            with self._reload_lock:
                changed = self._catch_up()
                for _ in range(RELOADS):
                    if not self._replica.behind:
                        break
                    self._reload()
                    changed = True
                return changed
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(f"{self.folder}: cannot follow the index: {exc}") from exc

    def _catch_up(self) -> bool:
        with self._follow_lock:
            return self._replica.follow()

    def _reload(self) -> None:
        """Load the current generation (long: readers go on with the old replica), catch
        it up under the follow lock, so that it holds at least what the old one does,
        and swap it in."""
        fresh = _Replica.load(self.folder)
        with self._follow_lock:
            try:
                fresh.follow()
            except BaseException:
                fresh.close()
                raise
            old, self._replica = self._replica, fresh
            old.close()
        self._reloads += 1

    def _read_your_writes(self) -> None:
        """Catch up before a read that must see what the writer acknowledged."""
        if self._closed.is_set():
            return
        self._catch_up()
        if self._replica.stuck:  # rare: two merges within one poll; the reload is due
            self.refresh()

    def _poll(self) -> None:
        while not self._closed.wait(self.poll_s):
            try:
                self.refresh()
                self._error = None
            except Exception as exc:  # kept for stats(); tried again at the next poll
                self._error = exc

    def close(self) -> None:
        """Stop following (after a refresh under way) and close the logs; answers from
        the last state stay readable. Idempotent."""
        self._closed.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join()
        with self._follow_lock:
            self._replica.close()

    def __enter__(self) -> IndexFollower:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- reading: CheckinIndex's answers ---------------------------------------------

    def __len__(self) -> int:
        """The number of distinct check-ins (duplicates counted once)."""
        return len(self._replica)

    def snapshot(self) -> exposure.Snapshot:
        """The current data as an immutable snapshot (builds the head's overlay)."""
        return self._replica.snapshot()

    def built_snapshot(self) -> exposure.Snapshot | None:
        """The snapshot `snapshot()` would return if already built, else None. No I/O:
        new data reaches the follower by the background refresh."""
        return self._replica.built_snapshot()

    def trace(self, case: int, window_from: int, window_to: int,
              rule: ContactRule = DEFAULT_RULE) -> TraceResult:
        """Contacts and zones of `case` infectious in [window_from, window_to) by `rule`
        (CheckinIndex.trace). Raises InvalidQuery for a bad case id or empty window."""
        return self._replica.trace(case, window_from, window_to, rule)

    def trace_many(self, cases, froms, tos, rule: ContactRule = DEFAULT_RULE
                   ) -> list[TraceResult]:
        """`trace` for many cases over one snapshot; results in the order of `cases`.
        Raises InvalidQuery as trace does, or for columns of different lengths."""
        return self._replica.trace_many(cases, froms, tos, rule)

    def last_checkin(self, person: int, venue: int, at: int) -> tuple[int, int] | None:
        """After catching up: the person's latest check-in at `venue` with t_in <= `at`,
        as (t_in, t_out or 0), or None (CheckinIndex.last_checkin).
        Raises InvalidQuery for ids outside uint64, StorageError if the folder cannot be
        read."""
        self._read_your_writes()
        return self._replica.last_checkin(person, venue, at)

    def checkins(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """After catching up: every distinct check-in as columns (person, venue, t_in,
        t_out; 0 = none), in no particular order. Raises StorageError as last_checkin."""
        self._read_your_writes()
        return self._replica.checkins()

    def stats(self) -> dict:
        """CheckinIndex.stats() of the view, and under "follower": reloads done, whether
        a reload is due ("behind") and the background refresh's last error."""
        replica = self._replica
        error = self._error
        return {**replica.stats(), "follower": {
            "reloads": self._reloads, "behind": replica.behind, "logs": len(replica.logs),
            "error": None if error is None else f"{type(error).__name__}: {error}"}}

    # ---- writing: the writer's alone ---------------------------------------------------

    def _refuse(self, what: str) -> NoReturn:
        raise StorageError(f"{self.folder}: this is a read-only follower of the index; "
                           f"{what} belongs to the process that has it open for writing")

    def append(self, *args, **kwargs) -> NoReturn:
        """Refused: raises StorageError (a follower never writes)."""
        self._refuse("append")

    def set_venue_dwell(self, *args, **kwargs) -> NoReturn:
        """Refused: raises StorageError (a follower never writes)."""
        self._refuse("set_venue_dwell")

    def purge(self, *args, **kwargs) -> NoReturn:
        """Refused: raises StorageError (a follower never writes)."""
        self._refuse("purge")

    def compact(self, *args, **kwargs) -> NoReturn:
        """Refused: raises StorageError (a follower never writes)."""
        self._refuse("compact")
