"""Batches of check-ins on their way in: validating, grouping duplicates, and the table
of the keys in the index's head."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from tracing import kernels
from tracing.errors import InvalidCheckin
from tracing.kernels import check_times

MAX_TIME = 2**32          # times are stored as uint32 seconds
# A scanned visit (a check-in and its check-out) lasts a day at the most, as a venue's
# dwell does: a forgotten check-out days later would make a zone of days. The index itself
# stores up to MAX_DURATION (an imported table may hold what it holds).
MAX_VISIT = 86_400
MAX_DURATION = 2**31 - 1  # an explicit visit's length is stored in 31 bits


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did: `added` new distinct check-ins, `duplicates` rows that
    repeated a (person, venue, t_in) already in the batch or the index. With
    append(..., rows=True), `duplicate` says which rows did (bool, in input order: a
    key's first row in the batch is a duplicate only if the index held it before)."""

    added: int
    duplicates: int
    duplicate: np.ndarray | None = field(default=None, compare=False)


def _ids(name: str, values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidCheckin(f"{name}: expected a 1-d array, got shape {arr.shape}")
    if arr.dtype.kind == "u":
        return arr.astype(np.uint64, copy=False)
    if arr.dtype.kind not in "iO" and arr.shape[0]:
        raise InvalidCheckin(f"{name}: expected integer ids, got dtype {arr.dtype}")
    if arr.dtype.kind == "O":
        try:
            return np.array([int(v) for v in arr], dtype=np.uint64)
        except (OverflowError, ValueError, TypeError) as exc:
            raise InvalidCheckin(f"{name}: ids must be integers in [0, 2**64): {exc}") from exc
    bad = np.flatnonzero(arr < 0)
    if bad.shape[0]:
        raise InvalidCheckin(f"row {bad[0]}: {name} {arr[bad[0]]} is negative")
    return np.ascontiguousarray(arr, np.uint64)


def _times(name: str, values, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise InvalidCheckin(f"{name}: expected {n} values like person, got shape {arr.shape}")
    if n and arr.dtype.kind not in "iu":
        raise InvalidCheckin(f"{name}: expected integer seconds, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and n and arr.max() >= MAX_TIME:
        bad = int(np.argmax(arr >= MAX_TIME))
        raise InvalidCheckin(f"row {bad}: {name} {arr[bad]} is after 2106 (not a uint32 time)")
    return np.ascontiguousarray(arr, np.int64)


def validate_batch(person, venue, t_in, t_out=None):
    """Check and convert a batch to (uint64, uint64, int64, int64) columns, t_out 0 = none.

    Raises InvalidCheckin naming the first bad row, the field and the problem.
    """
    person = _ids("person", person)
    n = person.shape[0]
    venue = _ids("venue", venue)
    if venue.shape[0] != n:
        raise InvalidCheckin(f"venue: expected {n} values like person, got {venue.shape[0]}")
    t_in = _times("t_in", t_in, n)
    t_out = np.zeros(n, np.int64) if t_out is None else _times("t_out", t_out, n)
    # one pass over the rows, and no copy of a column unless it must change (at 100M
    # rows each copy costs about a second)
    row, problem, negative = check_times(t_in, t_out, MAX_TIME, MAX_DURATION)
    if problem == 1:
        raise InvalidCheckin(f"row {row}: t_in {t_in[row]} is outside [0, 2**32) seconds")
    if problem == 2:
        raise InvalidCheckin(f"row {row}: t_out {t_out[row]} is not after t_in {t_in[row]}")
    if problem == 3:
        raise InvalidCheckin(f"row {row}: t_out {t_out[row]} is more than 2**31 s after t_in")
    if negative:
        t_out = np.maximum(t_out, 0)  # any t_out <= 0 means "no check-out": store 0
    return person, venue, t_in, t_out


@dataclass(frozen=True, slots=True)
class GroupedBatch:
    """A batch's distinct keys, sorted by (person, venue, t_in), each with the largest
    t_out of its rows (`columns`); `order` (the input rows sorted by key, stably) and
    `first` (whether order[i] is its key's first row) map results back to input rows."""

    columns: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    order: np.ndarray
    first: np.ndarray

    def row_duplicates(self, stored: np.ndarray) -> np.ndarray:
        """Per input row: a later row of its key in the batch, or its key is `stored`
        (bool per distinct key)."""
        by_key = stored[np.cumsum(self.first) - 1] | ~self.first
        out = np.empty(self.order.shape[0], np.bool_)
        out[self.order] = by_key
        return out


def group_batch(person, venue, t_in, t_out) -> GroupedBatch:
    """Merge a validated batch's exact (person, venue, t_in) duplicates; the largest
    t_out wins.

    Sorts by radix over the key's fields less their minima, packed into as few 64-bit
    words as fit: one for ids and times of small spread, two for 40-bit ids. A lexsort of
    the three columns took most of an append.
    """
    n = person.shape[0]
    order = np.arange(n, dtype=np.int64)
    out = (np.empty(n, np.uint64), np.empty(n, np.uint64), np.empty(n, np.int64),
           np.empty(n, np.int64))
    first = np.empty(n, np.bool_)
    if not n:
        return GroupedBatch(out, order, first)
    words = _key_words([("t_in", t_in.view(np.uint64)), ("venue", venue), ("person", person)])
    low = _pack(order, words[0], np.empty(n, np.uint64))  # the lowest word, by input row
    key = _sort(order, words, low)
    if len(words) > 2:
        k = kernels.squeeze_sorted(order, person, venue, t_in, t_out, *out, first)
    else:
        spec = {name: (np.uint64(w == len(words) - 1), np.uint64(shift), np.uint64(bits), lo)
                for w, word in enumerate(words) for name, _, lo, bits, shift in word}
        k = kernels.squeeze_words(key, low if len(words) == 2 else np.empty(0, np.uint64),
                                  order, t_out, bool(t_out.any()), spec["t_in"],
                                  spec["venue"], spec["person"], *out, first)
    return GroupedBatch(tuple(c[:k] for c in out), order, first)


def _sort(order, words, low) -> np.ndarray:
    """Sort the rows `order` (in place, stably) by their key words; returns the highest
    word of each row in the new order."""
    n = order.shape[0]
    tmp_key, tmp_order = np.empty(n, np.uint64), np.empty(n, np.int64)
    if len(words) == 1:
        kernels.radix_sort_pairs(low, order, _bits(words[0]), tmp_key, tmp_order)
        return low
    key = np.empty(n, np.uint64)
    if len(words) == 2:
        # by the high word (the person), then each person's few rows by the low word:
        # half the radix passes of sorting by both words
        kernels.radix_sort_pairs(_pack(order, words[1], key), order, _bits(words[1]),
                                 tmp_key, tmp_order)
        if kernels.sort_runs(key, low, order, 64):
            return key
    # least significant word first: each sort is stable
    kernels.radix_sort_pairs(np.take(low, order, out=key), order, _bits(words[0]), tmp_key,
                             tmp_order)
    for word in words[1:]:
        kernels.radix_sort_pairs(_pack(order, word, key), order, _bits(word), tmp_key,
                                 tmp_order)
    return key


def _key_words(fields):
    """Named columns (least significant first) as words of at most 64 bits: lists of
    (name, column, minimum, bits, shift in the word)."""
    words, bits = [[]], 0
    for name, column in fields:
        lo, hi = int(column.min()), int(column.max())
        width = (hi - lo).bit_length()
        if bits + width > 64:
            words.append([])
            bits = 0
        words[-1].append((name, column, np.uint64(lo), width, bits))
        bits += width
    return words


def _bits(word) -> int:
    return sum(field[3] for field in word)


def _pack(order, word, out) -> np.ndarray:
    """pack_word of a word's fields for the rows `order`, into `out`."""
    fields = [(column, lo, np.uint64(shift)) for _, column, lo, _, shift in word]
    fields += [(word[0][1], np.uint64(0), np.uint64(0))] * (3 - len(word))
    (c0, lo0, _), (c1, lo1, s1), (c2, lo2, s2) = fields
    kernels.pack_word(order, c0, lo0, c1, lo1, s1, c2, lo2, s2, len(word), out)
    return out


def coalesce(runs: list, rows, small: int):
    """A new batch `rows` merged with the last `runs` while each is at most twice its
    size and the sum stays under `small` rows: however small the appends, the head stays
    a few runs (last_checkin searches each), and every row is copied about
    log2(small / batch) times. Runs and result: distinct keys sorted by (person, venue,
    t_in); a key in two keeps the larger t_out. Returns (merged rows, how many of the
    last runs they replace, how many rows those held)."""
    taken = removed = 0
    while taken < len(runs):
        run = runs[-1 - taken]
        if run[0].shape[0] > 2 * rows[0].shape[0] or run[0].shape[0] + rows[0].shape[0] > small:
            break
        n = run[0].shape[0] + rows[0].shape[0]
        out = (np.empty(n, np.uint64), np.empty(n, np.uint64), np.empty(n, np.int64),
               np.empty(n, np.int64))
        k = kernels.merge_runs(*run, *rows, *out)
        rows = tuple(c[:k] for c in out)
        removed += run[0].shape[0]
        taken += 1
    return rows, taken, removed


class HeadKeys:
    """Keys (person, venue, t_in) of head rows and each one's longest explicit visit: hash
    tables (kernels.head_upsert) kept at most half full.

    A table starts small and grows (its keys rehashed) up to REHASH_SLOTS; past that,
    a new table takes the new keys and lookups read every table, since rehashing more
    keys would stall an append. A table sized for a whole head up front (32M slots,
    768 MB, for a head of 16M rows) was touched all over by the first million random
    keys: on a virtual machine the first touch of a page cost more than the probes.
    """

    def __init__(self, rows: int = 0):
        self._tables: list[tuple[np.ndarray, np.uint64]] = []
        self._in_last = 0
        self.count = 0
        self._add_table(min(rows, FIRST_ROWS))

    def __del__(self) -> None:
        # a finished head's tables serve the next head (see TablePool)
        try:
            for table, _ in self._tables:
                TABLES.give(table)
        except Exception:  # at interpreter exit the pool (or contextlib) may be gone
            pass

    def _add_table(self, rows: int) -> None:
        self._tables.append(TABLES.take(rows))
        self._in_last = 0

    def __len__(self) -> int:
        return self.count

    def _make_room(self, n: int) -> None:
        """Grow so that n more keys keep the last table at most half full: the last
        table grows while it stays within REHASH_SLOTS, else a new one starts."""
        table = self._tables[-1][0]
        want = self._in_last + n
        if 2 * want <= table.shape[0]:
            return
        if 2 * want <= REHASH_SLOTS:
            # room for four times the keys: a batch of a million random keys then
            # rehashes once, not at every doubling
            bigger, shift = TABLES.take(max(want, min(4 * want, REHASH_SLOTS // 2)),
                                        at_least=True)
            kernels.head_rehash(table, bigger, shift)
            self._tables[-1] = (bigger, shift)
            TABLES.give(table)
        else:
            self._add_table(n)

    def upsert(self, person, venue, t_in, t_out, stored: np.ndarray, write: bool = True):
        """Look up distinct keys (`stored`: each one's explicit duration elsewhere, -1 =
        not stored; raised to the tables', in place) and, if `write`, record those that
        change the store. Returns (changed mask, how many keys are new to the index)."""
        n = person.shape[0]
        if write:
            self._make_room(n)
        changed = np.empty(n, np.bool_)
        for table, shift in self._tables[:-1]:
            kernels.head_upsert(table, shift, person, venue, t_in, t_out, stored, changed,
                                False)
        table, shift = self._tables[-1]
        added, new = kernels.head_upsert(table, shift, person, venue, t_in, t_out, stored,
                                         changed, write)
        self._in_last += added
        self.count += added
        return changed, new


FIRST_ROWS = 1 << 15       # keys that a new head's first table holds
REHASH_SLOTS = 1 << 22     # a table doubles by rehashing up to this size (96 MB)


def _capacity(rows: int) -> int:
    """The slots of a table with room for `rows` keys at most half full."""
    return max(1 << 12, 1 << (2 * rows - 1).bit_length())


def _table(rows: int) -> tuple[np.ndarray, np.uint64]:
    """An empty table with room for `rows` keys at most half full, and its hash shift."""
    capacity = _capacity(rows)
    return np.zeros((capacity, 3), np.uint64), np.uint64(64 - (capacity.bit_length() - 1))


class TablePool:
    """Key tables that a finished head (or a table outgrown by rehashing) gave back,
    cleared and handed to the next head that wants one of their size.

    Every merge starts a new head, and its table grows to REHASH_SLOTS (96 MB) within
    the first large batches. A fresh table from np.zeros is memory the process maps
    anew: its first touch by the random probes faulted page after page, and the old
    table's pages went back to the system at the merge. On this 2-core VM that cost the
    probes of a fresh table 3-4 times those of a resident one (0.19 against 0.05 us a
    check-in of the packed benchmark). Clearing a resident 96 MB table costs ~7 ms once
    per head. At most `limit_bytes` are kept; thread-safe (heads of an index and of a
    follower may give and take at once)."""

    def __init__(self, limit_bytes: int):
        self.limit_bytes = limit_bytes
        self._free: dict[int, list[np.ndarray]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, rows: int, at_least: bool = False) -> tuple[np.ndarray, np.uint64]:
        """An empty table with room for `rows` keys at most half full, and its hash
        shift: a kept one if one of that size is free, or with `at_least` (a head's
        table growing) the smallest kept one at least that large."""
        capacity = _capacity(rows)
        with self._lock:
            sizes = [c for c, free in self._free.items()
                     if free and (c == capacity or (at_least and c > capacity))]
            table = self._free[min(sizes)].pop() if sizes else None
            if table is not None:
                self._bytes -= table.nbytes
        if table is None:
            return _table(rows)
        table.fill(0)
        return table, np.uint64(64 - (table.shape[0].bit_length() - 1))

    def reserve(self, count: int, rows: int) -> None:
        """Keep `count` tables with room for `rows` keys, their pages made resident now
        (within the limit; tables already kept count): a server or a worker calls it at
        start, so that its first heads grow into memory it already has."""
        capacity = _capacity(rows)
        while True:
            with self._lock:
                have = len(self._free.get(capacity, ()))
                if have >= count or self._bytes + capacity * 24 > self.limit_bytes:
                    return
            table = np.empty((capacity, 3), np.uint64)
            table.fill(0)  # every page touched here, not by an append's random probes
            if not self.give(table):
                return

    def give(self, table: np.ndarray) -> bool:
        """Keep a table no head uses any more, if there is room (else let it go);
        whether it was kept."""
        if table.shape[0] < MIN_POOLED_SLOTS:  # small ones cost little to make afresh
            return False
        with self._lock:
            if self._bytes + table.nbytes > self.limit_bytes:
                return False
            self._free.setdefault(table.shape[0], []).append(table)
            self._bytes += table.nbytes
            return True

    def clear(self) -> None:
        """Let every kept table go."""
        with self._lock:
            self._free.clear()
            self._bytes = 0


MIN_POOLED_SLOTS = 1 << 16
# two tables of the largest size: the one a merge's frozen head gives back while the new
# head grows into the other
TABLES = TablePool(2 * REHASH_SLOTS * 24)


def validate_dwell(venues, dwell_seconds) -> tuple[np.ndarray, np.ndarray]:
    """Check per-venue dwell input: distinct uint64 venues, seconds in [0, 2**31)."""
    venues = _ids("venue", venues)
    seconds = np.asarray(dwell_seconds)
    if seconds.shape != venues.shape:
        raise InvalidCheckin(f"dwell_seconds: expected {venues.shape[0]} values, "
                             f"got shape {seconds.shape}")
    seconds = seconds.astype(np.int64)
    bad = np.flatnonzero((seconds < 0) | (seconds > MAX_DURATION))
    if bad.shape[0]:
        raise InvalidCheckin(f"venue {venues[bad[0]]}: dwell {seconds[bad[0]]} s is negative "
                             "or too large")
    if np.unique(venues).shape[0] != venues.shape[0]:
        raise InvalidCheckin("venue: the same venue is given twice")
    return venues, seconds
