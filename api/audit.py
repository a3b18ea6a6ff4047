"""Append-only, hash-chained audit log of what officials asked: one entry per query.

UTF-8 text, one JSON object per line, each line ending in "\\n"::

    {"seq":1,"time":1764108000,"actor":"tran.thi.b","role":"official","action":"case.f1",
     "case":17,"purpose":"Ba Dinh cluster","detail":{"depth":2},"prev":"000…000","hash":"5e…"}

`seq` counts 1, 2, 3, … without gaps; `time` is integer seconds since the epoch (UTC);
`hash` is the SHA-256 (hex) of the canonical JSON of the entry without "hash" (json.dumps
with sort_keys=True, separators=(",", ":"), ensure_ascii=False; UTF-8), so it covers the
content, not the line's spacing; `prev` is the previous entry's hash (GENESIS for seq 1).

What the chain proves: an entry changed, removed, reordered or inserted anywhere but the end
breaks the chain there (or at the next line), and `verify` names that seq. What it does not:
whoever can write the file can rewrite it whole, cut entries off its end or append forged
ones, and recompute every hash. Against that, copy `head()` where they cannot write (another
machine, a signed report) and check it later with `verify(anchor=...)`; every `verify` also
checks the last head this object saw.

Durability: O_APPEND, lines are only ever added; a torn last line (crash mid-write) was never
acknowledged and is cut off on the next open or append. `record` returns once its line is
fsynced; threads share fsyncs (group commit), and so do the coroutines of `record_async`
(one fsync round by a helper process, api/syncer.py, for all that wait); processes append
under flock on the file and first read what others appended. After a failed fsync the log
refuses records: reopen it.

`record_async` can instead return once its line is written (`sync_wait=False`): the line is
in the file, so a crash or kill of the process loses nothing, and its fsync round is asked
for at once and runs in the background (typically under a millisecond later; a disk stall
can make it longer). Such rounds are paced: one starts at most every `sync_pace_s`
(default 10 ms), so a line waits up to that long for its round. Unpaced, 1,000 exposure
queries/s made ~780 rounds/s, each a journal commit and two process wake-ups on the
server's cores. Only a power cut or a crash of the machine can lose such lines, and
only those of the last rounds: when lines written more than `max_unsynced_s` ago are still
not on disk, `record_async` waits for their fsync as it does with `sync_wait=True`, and
a waiting coroutine's round is never paced.

Errors::

    AuditError (Exception)  the file cannot be opened, read, appended or synced, is not an
                            audit log, or shrank; the message names the path
    ValueError              a record() argument of the wrong type, or not JSON
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from api.syncer import LoopSyncer, SyncerGone

GENESIS = "0" * 64
_NONE = type(None)
_TYPES = dict(
    seq=int, time=int, actor=str, role=str, action=str, case=(int, _NONE), purpose=(str, _NONE)
)
_FIELDS = (*_TYPES, "detail", "prev", "hash")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SEQ_PREFIX = re.compile(rb'\{"seq":(\d+),')  # how every line starts: cheap to skip or bisect
_BLOCK = 1 << 16
_fsync = getattr(os, "fdatasync", os.fsync)  # data and size; the mtime need not reach the disk
_logger = logging.getLogger(__name__)


def audit_path(data: Path) -> Path:
    """The audit log of a data folder: the server's, and the command line's traces."""
    return data / "audit" / "audit.log"


class AuditError(Exception):
    """The audit log file is unusable: unreadable, not an audit log, shrank, or not durable."""


@dataclass(frozen=True)
class AuditEntry:
    """One recorded query, as stored."""

    seq: int
    time: int
    actor: str
    role: str
    action: str
    case: int | None
    purpose: str | None
    detail: dict
    prev: str
    hash: str

    def to_dict(self) -> dict:
        """The entry as a plain dict (a copy), keys in the file's order."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AuditVerification:
    """What `AuditLog.verify` found; the entries before `first_bad_seq` form a valid chain."""

    ok: bool
    entries: int  # entries that checked good: all of them when ok
    head: str  # hash of the last good entry (GENESIS if none)
    first_bad_seq: int | None
    reason: str | None

    def to_dict(self) -> dict:
        """The verification as a plain dict."""
        return dataclasses.asdict(self)


# built once: json.dumps with options builds an encoder on every call
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_LINE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_STORED = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def _canonical_hash(entry: dict) -> str:
    body = {key: value for key, value in entry.items() if key != "hash"}
    return hashlib.sha256(_CANONICAL.encode(body).encode("utf-8")).hexdigest()


def _parse(line: bytes) -> dict:
    """The entry on `line`; raises ValueError naming what is wrong with it."""
    try:
        obj = json.loads(line)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if set(obj) != set(_FIELDS):
        raise ValueError(f"not an audit entry (fields {sorted(obj)[:12]})")
    for key, kinds in (*_TYPES.items(), ("detail", dict), ("prev", str), ("hash", str)):
        if not isinstance(obj[key], kinds) or isinstance(obj[key], bool):
            raise ValueError(f"field {key!r} has the wrong type")
    if obj["seq"] < 1 or not (_HEX64.fullmatch(obj["prev"]) and _HEX64.fullmatch(obj["hash"])):
        raise ValueError("seq below 1, or prev or hash not 64 lowercase hex digits")
    return obj


def _stored_fields(actor, role, action, case, purpose, detail) -> dict:
    """The caller's fields as they will be stored (a JSON copy); ValueError if unfit."""
    for name, value in (("actor", actor), ("role", role), ("action", action)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"audit {name}: must be a non-empty string, not {value!r}")
    if case is not None and (isinstance(case, bool) or not hasattr(case, "__index__")):
        raise ValueError(f"audit case: must be an int or None, not {case!r}")
    if purpose is not None and not isinstance(purpose, str):
        raise ValueError(f"audit purpose: must be a string or None, not {purpose!r}")
    if detail is not None and not isinstance(detail, dict):
        raise ValueError(f"audit detail: must be a dict, not {type(detail).__name__}")
    stored = dict(actor=actor, role=role, action=action, case=None if case is None else int(case),
                  purpose=purpose, detail=detail or {})
    try:
        if _flat(stored["detail"]):  # what the service records: a copy is enough
            stored["detail"] = dict(stored["detail"])
            "".join((actor, role, action, purpose or "", *stored["detail"],
                     *(v for v in stored["detail"].values() if type(v) is str))).encode("utf-8")
            return stored
        return json.loads(_STORED.encode(stored).encode("utf-8"))  # no lone surrogates
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit record: not JSON ({exc})") from None


def _flat(detail: dict) -> bool:
    """Whether `detail` maps strings to strings, ints or None only (stored as they are)."""
    return all(type(k) is str and (v is None or type(v) in (str, int))
               for k, v in detail.items())


def _lines(fd: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line without "\\n") for each whole line in [start, end); a torn tail is left."""
    base, buf, pos = start, b"", start
    while pos < end and (chunk := os.pread(fd, min(16 * _BLOCK, end - pos), pos)):
        pos += len(chunk)
        buf, at = buf + chunk, 0
        while (newline := buf.find(b"\n", at)) >= 0:
            yield base + at, buf[at:newline]
            at = newline + 1
        base, buf = base + at, buf[at:]


def _after_last_newline(fd: int, end: int) -> int:
    while end > 0:
        start = max(0, end - _BLOCK)
        if (found := os.pread(fd, end - start, start).rfind(b"\n")) >= 0:
            return start + found + 1
        end = start
    return 0


def _first_line_start(fd: int, pos: int, limit: int) -> int:
    """The first line start in [pos, limit) (pos >= 1), or limit if there is none."""
    for at in range(pos, limit, _BLOCK):
        if (found := os.pread(fd, min(_BLOCK, limit - at + 1), at - 1).find(b"\n")) >= 0:
            return at + found
    return limit


def _open_append(path: Path) -> int:
    """A descriptor open for appending to `path`, created (and its name synced) if absent."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if created:  # the new name must survive a crash too
            dir_fd = os.open(path.parent, os.O_RDONLY)
            os.fsync(dir_fd)
            os.close(dir_fd)
        return fd
    except OSError as exc:
        raise AuditError(f"{path}: cannot open ({exc.strerror})") from exc


class AuditLog:
    """An audit log file open for appending; share one between threads, or open one per
    process on the same file."""

    def __init__(self, path: str | os.PathLike, clock: Callable[[], float] = time.time, *,
                 sync_wait: bool = True, max_unsynced_s: float = 1.0,
                 sync_pace_s: float = 0.01) -> None:
        """Open (or create: mode 0600, in a folder made with mode 0700) the log at `path` and
        read its last entry to continue the chain; a torn last line is cut off. Raises
        AuditError if the file cannot be opened or its last line is not an audit entry.
        `sync_wait`, `max_unsynced_s` and `sync_pace_s`: whether `record_async` waits for
        its line's fsync, and how the rounds of lines it does not wait for are paced (see
        the module's docstring); `record` always waits."""
        if not max_unsynced_s > 0:
            raise ValueError(f"max_unsynced_s must be positive, got {max_unsynced_s!r}")
        if not 0 <= sync_pace_s < max_unsynced_s:
            raise ValueError(f"sync_pace_s must be in [0, max_unsynced_s), got {sync_pace_s!r}")
        self._path, self._clock = Path(path), clock
        self._sync_wait, self._max_unsynced_s = sync_wait, max_unsynced_s
        self._sync_pace_s = sync_pace_s
        self._lock = threading.Lock()  # the append and the chain state: _seq, _hash, _size
        self._sync = threading.Condition()  # _written, _synced, _syncing, _failure
        self._seq, self._hash, self._size = 0, GENESIS, 0
        self._written, self._synced, self._syncing, self._failure = 0, 0, False, None
        # coroutines of record_async waiting for their line's fsync (touched by the loop only)
        self._async_waiters: list[tuple[int, asyncio.Future]] = []
        self._syncer: LoopSyncer | None = None  # the fsync helper of record_async
        self._sync_requested, self._helper_losses = False, 0
        # when the last round was asked for, and the timer of a paced one (loop thread)
        self._last_request = -float("inf")
        self._paced: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None
        # (ticket, monotonic time) of record_async's lines returned before their fsync
        self._unsynced: collections.deque[tuple[int, float]] = collections.deque()
        self._fd = _open_append(self._path)
        try:
            with self._flocked():
                self._read_tail(os.fstat(self._fd).st_size)
        except BaseException:
            os.close(self._fd)
            raise

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _flocked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _read_tail(self, size: int) -> None:
        """Continue the chain from the last whole line of the first `size` bytes (flock held)."""
        end = _after_last_newline(self._fd, size)
        if end < size:
            if not b'{"seq":'.startswith(os.pread(self._fd, min(size - end, 7), end)):
                raise AuditError(f"{self._path}: ends in {size - end} bytes of no audit entry")
            _logger.warning("%s: cutting a torn last line (%d bytes)", self._path, size - end)
            os.ftruncate(self._fd, end)
        self._seq, self._hash, self._size = 0, GENESIS, end
        if end:
            start = _after_last_newline(self._fd, end - 1)
            try:
                last = _parse(os.pread(self._fd, end - 1 - start, start))
            except ValueError as exc:
                raise AuditError(f"{self._path}: last line (byte {start}): {exc}") from None
            self._seq, self._hash = last["seq"], last["hash"]

    def _catch_up(self) -> None:
        """Read what other processes appended since (flock held)."""
        size = os.fstat(self._fd).st_size
        if size < self._size:
            raise AuditError(f"{self._path}: shrank from {self._size} to {size} bytes")
        if size != self._size:
            self._read_tail(size)

    def _check_usable(self) -> None:
        if self._fd < 0:
            raise AuditError(f"{self._path}: the log is closed")
        if self._failure is not None:
            raise AuditError(self._failure)

    def record(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        case: int | None = None,
        purpose: str | None = None,
        detail: dict | None = None,
    ) -> AuditEntry:
        """Append one entry and return it once it is on disk (fsynced). `detail` is stored as
        its JSON (tuples become lists). Raises ValueError for an argument of the wrong type or
        a detail that is not JSON, AuditError if the file cannot be appended or synced."""
        entry, ticket = self._write(_stored_fields(actor, role, action, case, purpose, detail))
        self._wait_durable(ticket)
        return AuditEntry(**entry)

    async def record_async(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        case: int | None = None,
        purpose: str | None = None,
        detail: dict | None = None,
    ) -> AuditEntry:
        """`record` for an event loop: the line is written at once (a write of one line,
        no wait), and the coroutine returns once it is fsynced, or with `sync_wait=False`
        at once, its fsync asked for (see the module's docstring). The fsync is done by a
        child process (api/syncer.py: no thread to take the GIL from the loop), one round
        at a time for every line written before it. Same errors as `record`."""
        entry, ticket = self._write(_stored_fields(actor, role, action, case, purpose, detail))
        if self._synced < ticket:
            loop, now = asyncio.get_running_loop(), time.monotonic()
            if self._sync_wait or (self._unsynced_lines()
                                   and now - self._unsynced[0][1] > self._max_unsynced_s):
                future = loop.create_future()
                self._async_waiters.append((ticket, future))
                self._request_sync(loop)
                await future
            else:
                self._unsynced.append((ticket, now))
                self._request_sync(loop, paced=True)
        return AuditEntry(**entry)

    def _request_sync(self, loop: asyncio.AbstractEventLoop, paced: bool = False) -> None:
        """(loop thread) Ask the helper for a round covering every line written, unless
        one is under way: its answer asks for the next. A `paced` round starts no sooner
        than sync_pace_s after the last one (a timer asks for it then)."""
        syncer = self._syncer
        if syncer is None or syncer.loop is not loop or syncer.closed:
            if syncer is not None:  # it exited, or its loop ended (asyncio.run again)
                syncer.close()
            try:
                syncer = self._syncer = LoopSyncer(self._fd, loop, self._synced_to,
                                                   self._syncer_gone)
            except SyncerGone as exc:
                self._syncer = None
                self._fail_async_waiters(AuditError(f"{self._path}: {exc}"))
                return
        elif self._sync_requested:
            return
        if paced:
            wait = self._last_request + self._sync_pace_s - time.monotonic()
            if wait > 0:
                if self._paced is None or self._paced[0] is not loop:
                    self._paced = (loop, loop.call_later(wait, self._paced_round, loop))
                return
        if self._paced is not None:
            self._paced[1].cancel()
            self._paced = None
        with self._sync:
            target = self._written
        self._sync_requested = True
        self._last_request = time.monotonic()
        syncer.request(target)

    def _paced_round(self, loop: asyncio.AbstractEventLoop) -> None:
        """(loop thread) The paced round's time has come."""
        self._paced = None
        if self._async_waiters or self._unsynced_lines():
            self._request_sync(loop)

    def _synced_to(self, ticket: int) -> None:
        """(loop thread) The helper's answer: lines up to `ticket` are on disk, or the
        fdatasync failed (minus its errno)."""
        self._sync_requested = False
        self._helper_losses = 0
        if ticket < 0:
            with self._sync:
                self._failure = (f"{self._path}: fsync failed ({os.strerror(-ticket)}); "
                                 "reopen")
                self._sync.notify_all()
            self._syncer = None  # it has exited
            self._fail_async_waiters(AuditError(self._failure))
            return
        with self._sync:
            self._synced = max(self._synced, ticket)
            self._sync.notify_all()
        waiting = []
        for waiter, future in self._async_waiters:
            if waiter > self._synced:
                waiting.append((waiter, future))
            elif not future.done():
                future.set_result(None)
        self._async_waiters = waiting
        if waiting:
            self._request_sync(asyncio.get_running_loop())
        elif self._unsynced_lines():
            self._request_sync(asyncio.get_running_loop(), paced=True)

    def _unsynced_lines(self) -> bool:
        """(loop thread) Whether lines that record_async returned are not yet on disk."""
        while self._unsynced and self._unsynced[0][0] <= self._synced:
            self._unsynced.popleft()
        return bool(self._unsynced)

    def _syncer_gone(self, reason: str) -> None:
        """(loop thread) The helper exited with a request unanswered: start another once;
        twice in a row, fail the waiters (the log itself stays usable)."""
        self._sync_requested, self._syncer = False, None
        self._helper_losses += 1
        if self._helper_losses > 1:
            self._helper_losses = 0
            self._fail_async_waiters(AuditError(f"{self._path}: {reason}"))
        elif self._async_waiters or self._unsynced_lines():
            _logger.warning("%s: %s; starting another", self._path, reason)
            self._request_sync(asyncio.get_running_loop())

    def _fail_async_waiters(self, error: AuditError) -> None:
        waiters, self._async_waiters = self._async_waiters, []
        for _, future in waiters:
            if not future.done():
                future.set_exception(error)

    def _write(self, fields: dict) -> tuple[dict, int]:
        """Append the entry of `fields` to the chain; (entry, its ticket for _wait_durable)."""
        with self._lock:
            self._check_usable()
            with self._flocked():
                self._catch_up()
                entry = {"seq": self._seq + 1, "time": int(self._clock()), **fields}
                entry["prev"] = self._hash
                entry["hash"] = _canonical_hash(entry)
                self._append((_LINE.encode(entry) + "\n").encode("utf-8"))
                self._seq, self._hash = entry["seq"], entry["hash"]
            with self._sync:
                self._written += 1
                return entry, self._written

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)  # our own partial line, nobody else's
            raise AuditError(f"{self._path}: cannot append ({exc.strerror})") from exc
        self._size += len(data)

    def _wait_durable(self, ticket: int) -> None:
        """Return once this object's `ticket`-th write is fsynced: one thread syncs everything
        written so far while the others wait for it (group commit)."""
        with self._sync:
            while self._synced < ticket:
                if self._failure is not None:
                    raise AuditError(self._failure)
                if self._syncing:
                    self._sync.wait()
                    continue
                self._syncing, target, error = True, self._written, None
                self._sync.release()
                try:
                    _fsync(self._fd)
                except OSError as exc:
                    error = exc
                finally:
                    self._sync.acquire()
                    self._syncing = False
                    self._sync.notify_all()
                if error is not None:
                    self._failure = f"{self._path}: fsync failed ({error.strerror}); reopen"
                    raise AuditError(self._failure) from error
                self._synced = max(self._synced, target)

    def entries(self, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
        """Up to `limit` entries with seq > `after_seq`, in file order; a binary search finds
        the start, so paging through a long log stays cheap. Raises ValueError for a negative
        after_seq or a limit below 1, AuditError if a line read is not an audit entry."""
        if after_seq < 0 or limit < 1:
            raise ValueError(f"entries: after_seq {after_seq} must be >= 0, limit {limit} >= 1")
        found: list[AuditEntry] = []
        with self._reader() as (fd, size):
            lo, hi = 0, size  # lo: a line start at or before the first wanted line
            while hi - lo > _BLOCK:
                start = _first_line_start(fd, mid := (lo + hi) // 2, hi)
                match = start < hi and _SEQ_PREFIX.match(os.pread(fd, 32, start))
                lo, hi = (start, hi) if match and int(match[1]) <= after_seq else (lo, mid)
            for offset, line in _lines(fd, lo, size):
                if (match := _SEQ_PREFIX.match(line)) and int(match[1]) <= after_seq:
                    continue
                try:
                    found.append(AuditEntry(**_parse(line)))
                except ValueError as exc:
                    raise AuditError(f"{self._path}: line at byte {offset}: {exc}") from None
                if len(found) == limit:
                    break
        return found

    @contextlib.contextmanager
    def _reader(self) -> Iterator[tuple[int, int]]:  # a descriptor that close() leaves open
        with self._lock:
            self._check_usable()
            fd = os.dup(self._fd)
        try:
            yield fd, os.fstat(fd).st_size
        finally:
            os.close(fd)

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last entry, other processes' entries included; (0, GENESIS) for
        an empty log. Keep it elsewhere to check later with verify(anchor=...). Raises
        AuditError if the log is closed, or the file cannot be read or shrank."""
        with self._lock:
            self._check_usable()
            with self._flocked():
                self._catch_up()
            return self._seq, self._hash

    def verify(self, anchor: tuple[int, str] | None = None) -> AuditVerification:
        """Re-read the whole file, recompute every hash and link, and check that it still
        holds `anchor` (a (seq, hash) from an earlier head()) and this object's last head.
        Returns the verdict; raises AuditError only if the log is closed or unreadable."""
        with self._lock:
            self._check_usable()
            with self._flocked():  # no append is half-written while we note the size
                size = os.fstat(self._fd).st_size
            anchors = {self._seq: self._hash} if self._seq else {}
        if anchor is not None:
            anchors[anchor[0]] = anchor[1]
        with self._reader() as (fd, _):
            return _verify_chain(fd, size, anchors)

    def close(self) -> None:
        """Sync what was written and close the file; later calls raise AuditError. Call
        from the thread of the loop that awaited `record_async`, or after that loop ended."""
        if self._paced is not None:
            self._paced[1].cancel()
            self._paced = None
        if self._syncer is not None:
            self._syncer.close()
            self._syncer = None
        with self._lock, self._sync:
            if self._fd < 0:
                return
            while self._syncing:
                self._sync.wait()
            try:
                if self._synced < self._written and self._failure is None:
                    _fsync(self._fd)
                    self._synced = self._written
            except OSError as exc:  # its waiters must not return as if synced
                self._failure = f"{self._path}: fsync failed ({exc.strerror}); reopen"
            os.close(self._fd)
            self._fd = -1


def _verify_chain(fd: int, size: int, anchors: dict[int, str]) -> AuditVerification:
    """Check the lines in the first `size` bytes as one chain that holds every anchor."""
    prev, seq = GENESIS, 0
    for _, line in _lines(fd, 0, size):
        seq += 1
        try:
            entry = _parse(line)
        except ValueError as exc:
            return AuditVerification(False, seq - 1, prev, seq, f"line {seq}: {exc}")
        if entry["seq"] > seq:
            reason = f"line {seq} holds seq {entry['seq']}: an entry is missing or was moved"
        elif entry["seq"] < seq:
            reason = f"line {seq} holds seq {entry['seq']}: a line was inserted or repeated"
        elif entry["prev"] != prev:
            reason = f"seq {seq}: prev is not the hash of seq {seq - 1} (replaced or rehashed)"
        elif _canonical_hash(entry) != entry["hash"]:
            reason = f"seq {seq}: hash does not match the content (a field or the hash changed)"
        elif anchors.get(seq, entry["hash"]) != entry["hash"]:
            reason = f"seq {seq}: not the anchored head (the file was rewritten up to here)"
        else:
            prev = entry["hash"]
            continue
        return AuditVerification(False, seq - 1, prev, seq, reason)
    if anchors and max(anchors) > seq:
        reason = f"the file ends at seq {seq}, the anchored head is seq {max(anchors)}: cut off"
        return AuditVerification(False, seq, prev, seq + 1, reason)
    return AuditVerification(True, seq, prev, None, None)
