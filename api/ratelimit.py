"""Rate limits for check-in points: scans per device, per venue and per person.

`ScanLimiter.admit(device, venue, persons)` admits a whole batch of scans or refuses the whole
batch with RateLimited and consumes nothing, so a refused batch leaves nothing half-counted
and can be sent again unchanged. `refund` gives back what admitted scans took when they
turn out to be duplicates of stored check-ins (a retried upload adds nothing).

- Device and venue: token buckets holding up to `*_burst` scans, refilled at `*_per_hour`.
  A batch larger than the burst can never pass: split it. A bucket that has filled up again
  is forgotten (a new one starts full), so memory follows the devices active in the last
  few hours, not all devices ever seen.
- Person: at most `person_per_hour` scans of one person at one venue made in one hour (by
  the scans' own times, when the caller gives them) and counted in a sliding hour of the
  server's clock, across the venue's devices; repeats inside one batch count. Not across
  venues: a refusal would then tell a check-in point that the person was scanned
  elsewhere in the hour. Counts live in a count-min
  sketch (2 rows of 2**22 16-bit counters, one multiply-shift hash of the uint64 id per row,
  random multipliers) for each of two fixed one-hour windows, current and previous: 32 MiB
  in all, whatever the number of persons. A person's count is the smaller of its two rows'
  `current + previous * (share of the previous window still inside the sliding hour)`.
  The sliding hour is thereby approximate: it assumes the previous window's scans spread
  evenly over it (50 scans just before a window turns fade over the next hour).

Collisions only ever over-count. With n distinct persons in a window and w = 2**22 counters
a row, a person shares its counter with someone in one row with probability 1 - e^(-n/w)
(2.4% at n = 100,000; 21% at n = 1,000,000) and in both rows with its square (0.06%; 4.5%);
its count then rises by the smaller of those others' counts. So a person near the limit may
be refused a little early. At 1,000,000 persons an hour scanning 3 times each (computed, and
matched by simulation): the 41st scan is refused early with probability 1e-8, the 45th to
47th 6e-4, the 48th to 50th 4.5% (one neighbour in each row then suffices); at 100,000
persons: 8e-8 up to the 47th, 6e-4 for the 48th to 50th.

Errors::

    RateLimited (Exception)  the batch is refused: .scope ("device", "venue" or "person"),
                             .retry_after (whole seconds >= 1), .persons (the ids over their
                             limit, for scope "person"), .never (it can never pass as it
                             is: split it); str() says what and what to do
    ValueError               limits that are not positive, persons not a 1-D integer array
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

HOUR = 3600
SCOPES = ("device", "venue", "person")
SKETCH_BITS = 22
_SATURATED = np.uint16(np.iinfo(np.uint16).max)
_ONE = np.uint16(1)
_CHUNK = int(_SATURATED)  # rows per np.add.at: a counter can then wrap at most once, visibly
_EPSILON = 1e-6  # counts are whole: this only absorbs the rounding of the window share


class RateLimited(Exception):
    """A batch refused by a rate limit; nothing of it was counted."""

    def __init__(
        self, scope: str, retry_after: int, message: str, persons: np.ndarray | None = None,
        never: bool = False,
    ) -> None:
        """`scope` is "device", "venue" or "person"; `retry_after` whole seconds >= 1;
        `persons` the ids over their limit (scope "person"); `never` when the batch can
        never pass as it is (larger than a burst, or a person more often than the hourly
        limit): waiting will not help, splitting will. Raises ValueError otherwise."""
        if scope not in SCOPES or int(retry_after) < 1:
            raise ValueError(f"RateLimited: bad scope {scope!r} or retry_after {retry_after!r}")
        super().__init__(message)
        self.scope, self.retry_after, self.message = scope, int(retry_after), message
        self.persons = np.zeros(0, np.uint64) if persons is None else persons
        self.never = never


@dataclass(frozen=True)
class ScanLimits:
    """How many scans a device, a venue and a person may make; `enabled=False` lifts all."""

    device_burst: int = 20_000
    device_per_hour: int = 5_000
    venue_burst: int = 50_000
    venue_per_hour: int = 20_000
    person_per_hour: int = 50
    enabled: bool = True

    def __post_init__(self) -> None:
        for name in (field.name for field in fields(self) if field.name != "enabled"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ScanLimits.{name}: must be an int >= 1, not {value!r}")
        if self.person_per_hour >= _SATURATED:
            raise ValueError(f"ScanLimits.person_per_hour: must be below {int(_SATURATED)}")


class _Buckets:
    """The token buckets of one scope, least recently used first."""

    def __init__(self, scope: str, burst: int, per_hour: int) -> None:
        self.scope, self.burst, self.per_hour = scope, burst, per_hour
        self.rate = per_hour / HOUR  # tokens a second
        self._held: OrderedDict[int, tuple[float, float]] = OrderedDict()  # key: (tokens, at)

    def __len__(self) -> int:
        return len(self._held)

    def tokens(self, key: int, now: float) -> float:
        """The tokens `key` has at `now` (a full bucket if it has none on record)."""
        tokens, at = self._held.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - at) * self.rate)

    def refusal(self, key: int, scans: int, now: float) -> RateLimited | None:
        """Why `scans` scans cannot be taken from `key` now, or None if they can."""
        name, burst = f"{self.scope} {key}", self.burst
        if scans > burst:
            return RateLimited(
                self.scope,
                HOUR,
                f"{name}: a batch of {scans} scans exceeds the {self.scope} burst of {burst} "
                f"and can never pass: split it into batches of at most {burst} scans",
                never=True,
            )
        tokens = self.tokens(key, now)
        if scans <= tokens:
            return None
        wait = max(1, math.ceil((scans - tokens) / self.rate))
        return RateLimited(
            self.scope,
            wait,
            f"{name}: {scans} scans but {int(tokens)} left of its burst of {burst} (refilled "
            f"at {self.per_hour} an hour): retry in {wait} s or send fewer",
        )

    def take(self, key: int, scans: int, now: float) -> None:
        """Take `scans` tokens (checked by `refusal` first), then forget buckets full again."""
        self._held[key] = (self.tokens(key, now) - scans, now)
        self._held.move_to_end(key)
        while self._held:  # the least recently used first: amortised O(1) per call
            oldest = next(iter(self._held))
            if self.tokens(oldest, now) < self.burst:
                break
            del self._held[oldest]

    def give_back(self, key: int, scans: int, now: float) -> None:
        """Return `scans` tokens taken from `key` (never past a full bucket)."""
        if key in self._held:
            self._held[key] = (min(self.burst, self.tokens(key, now) + scans), now)


# Odd 64-bit constants (the golden ratio's, and splitmix64's): hours and venues spread
# over the key's bits.
_HOUR_MIX = np.uint64(0x9E3779B97F4A7C15)
_VENUE_MIX = np.uint64(0xBF58476D1CE4E5B9)


def keys_of(persons: np.ndarray, times: np.ndarray | None, venue: int) -> np.ndarray:
    """The sketch's key of each scan: its person at `venue`, and with `times` the hour of
    its scan time too. A person's scans are then counted per venue and per hour they
    were made in: a device uploading a backlog of a person's check-ins over ten days is
    not over the hourly limit, and old scans of a person cannot use up their count for
    the hour they scan in now. Per venue: a count over every venue would let a check-in
    point learn, by being refused, that a person was scanned elsewhere in the hour (a
    privacy review did)."""
    # the product wraps at 64 bits, as a hash should: in Python ints, since a numpy
    # scalar product that wraps warns of an overflow
    keys = persons ^ np.uint64(int(venue) * int(_VENUE_MIX) & 0xFFFF_FFFF_FFFF_FFFF)
    if times is None:
        return keys
    hours = (np.asarray(times).astype(np.int64) // int(HOUR)).astype(np.uint64)
    return keys ^ (hours * _HOUR_MIX)


class _PersonCounts:
    """Scans per person in the sliding hour: count-min sketches of two one-hour windows.

    One flat array holds, for each row and counter, the current and the previous window's
    count side by side, so that one cache miss fetches both; which of the two is current
    flips when a window turns."""

    def __init__(self, limit: int, now: float, seed: int | None) -> None:
        self.limit = limit
        rng = np.random.default_rng(seed)
        self._multipliers = rng.integers(0, 2**63, size=2, dtype=np.uint64) * 2 + 1  # odd
        self._counts = np.zeros(2 * 2 << SKETCH_BITS, np.uint16)  # [row][counter][window]
        self._current = 0  # which window of each pair is the current one
        self._start = now  # of the current window

    def slots(self, keys: np.ndarray) -> list[np.ndarray]:
        """Each row's counter for each key (`keys_of`), as the index of its pair (pure:
        call it outside the lock)."""
        shift, width = np.uint64(64 - SKETCH_BITS), 1 << SKETCH_BITS
        return [((keys * m) >> shift).astype(np.intp) + r * width
                for r, m in enumerate(self._multipliers)]  # fmt: skip

    def _turn(self, now: float) -> float:
        """Move to the window holding `now`; the share of the previous one still in the hour."""
        if (turns := int((now - self._start) // HOUR)) >= 1:
            if turns == 1:
                self._current ^= 1
                self._counts[self._current :: 2] = 0
            else:
                self._counts.fill(0)
            self._start += turns * HOUR
        return (HOUR - (now - self._start)) / HOUR

    def add_or_refuse(
        self, persons: np.ndarray, keys: np.ndarray, slots: list[np.ndarray], now: float
    ) -> RateLimited | None:
        """Count every scan in `persons` (by its `keys`, whose `slots` these are) and return
        None, or count none of them and return why: some person would pass the limit."""
        share, counts, k = self._turn(now), self._counts, self._current
        pairs = [self._counts.view(np.uint32)[slot] for slot in slots]  # both windows: 1 miss
        before = [pair.view(np.uint16)[k::2] for pair in pairs]
        previous = [pair.view(np.uint16)[1 - k :: 2] for pair in pairs]
        estimates = []
        for slot, was_all, prev in zip(slots, before, previous, strict=True):
            index = 2 * slot + k
            for begin in range(0, len(index), _CHUNK):
                part = index[begin : begin + _CHUNK]
                was = was_all[: len(part)] if begin == 0 else counts[part]  # rows apart
                np.add.at(counts, part, _ONE)
                if (wrapped := (after := counts[part]) <= was).any():  # past 65535: stay there
                    counts[part[wrapped]] = after[wrapped] = _SATURATED
            if len(index) > _CHUNK:
                after = counts[index]
            estimates.append(after + prev * share)
        over = np.minimum(*estimates) > self.limit + _EPSILON
        if not over.any():
            return None
        for slot, pair in zip(slots, pairs, strict=True):
            self._counts.view(np.uint32)[slot] = pair  # each occurrence saw the same old value
        return self._refusal(persons[over], keys[over], [b[over] for b in before],
                             [p[over] for p in previous], share)  # fmt: skip

    def remove(self, persons: np.ndarray, slots: list[np.ndarray], since: float,
               now: float) -> None:
        """Uncount scans of `persons` that `add_or_refuse` counted at time `since`, if the
        window it counted them in is still the current one (else they have faded into the
        previous window's share, and are left there). Saturated counters stay."""
        self._turn(now)
        if since < self._start:
            return
        counts, k = self._counts, self._current
        for slot in slots:
            # each occurrence added one to its counter in this window, and only a refused
            # batch's rollback or a window's turn ever lowers one: none goes below zero
            index = 2 * slot + k
            np.subtract.at(counts, index[counts[index] < _SATURATED], _ONE)

    def _refusal(self, bad, bad_keys, before, previous, share) -> RateLimited:
        """The refusal for the occurrences of persons `bad` (with their keys, and their
        counters' `before` and `previous` counts in each row), and when to retry."""
        _, first, in_batch = np.unique(bad_keys, return_index=True, return_counts=True)
        ids = np.unique(bad)
        now_count = np.minimum(*before)[first].astype(np.float64)  # before this batch
        prev = np.minimum(*previous)[first].astype(np.float64)
        limit, elapsed = self.limit, (1 - share) * HOUR
        if (repeats := int(in_batch.max())) > limit:
            person = int(bad[first[in_batch.argmax()]])
            return RateLimited(
                "person",
                HOUR,
                f"person {person} appears {repeats} times in one hour of this batch's scans, "
                f"more than the {limit} scans a person may make in an hour: this batch can "
                "never pass",
                ids,
                never=True,
            )
        headroom = limit - now_count - in_batch
        # Within this window, the previous one's share fades; else the next window begins
        # with this window's count as its previous one, fading in turn.
        this_window = HOUR - headroom * HOUR / np.maximum(prev, 1) - elapsed
        next_window = 2 * HOUR - elapsed - (limit - in_batch) * HOUR / np.maximum(now_count, 1)
        wait = np.where(headroom >= 0, this_window, next_window)
        retry = max(1, math.ceil(float(wait.max())))
        return RateLimited(
            "person",
            retry,
            f"{len(ids)} person(s) would pass {limit} scans in the last hour (person "
            f"{int(ids[0])} among them): retry in {retry} s, or leave them out",
            ids,
        )


class ScanLimiter:
    """Admits batches of scans within ScanLimits; one lock, safe to share between threads."""

    def __init__(
        self,
        limits: ScanLimits,
        clock: Callable[[], float] = time.monotonic,
        *,
        seed: int | None = None,
    ) -> None:
        """Limits as given, time from `clock` (seconds); `seed` fixes the sketch's hashes
        (tests), else they are random so that nobody can pick colliding ids."""
        self.limits, self._clock = limits, clock
        self._lock = threading.Lock()
        self._devices = _Buckets("device", limits.device_burst, limits.device_per_hour)
        self._venues = _Buckets("venue", limits.venue_burst, limits.venue_per_hour)
        self._persons = (
            _PersonCounts(limits.person_per_hour, clock(), seed) if limits.enabled else None
        )

    @property
    def buckets(self) -> int:
        """How many device and venue buckets are held (the others are full): for metrics."""
        with self._lock:
            return len(self._devices) + len(self._venues)

    def admit(self, device: int, venue: int, persons: np.ndarray,
              times: np.ndarray | None = None) -> float:
        """Count the scans of `persons` (uint64 ids, repeats allowed) at `device` and `venue`,
        or raise RateLimited and count none of them. The device's limit is checked first,
        then the venue's (the larger wait of the two), then the persons'. `times`, the
        scans' own times, puts each in the count of its person and hour (see keys_of).
        Returns the time they were counted at (for `refund`). A no-op when the limits are
        disabled. Raises ValueError if persons is not a 1-D integer array."""
        if self._persons is None:
            return 0.0
        persons = np.asarray(persons)
        if persons.ndim != 1 or not np.issubdtype(persons.dtype, np.integer):
            raise ValueError(f"persons: must be a 1-D integer array, not {persons.dtype}")
        scans = len(persons)
        if scans == 0:
            return 0.0
        persons = persons.astype(np.uint64, copy=False)
        keys = keys_of(persons, times, venue)
        slots = self._persons.slots(keys)
        with self._lock:
            now = self._clock()
            refusals = [
                refusal
                for buckets, key in ((self._devices, device), (self._venues, venue))
                if (refusal := buckets.refusal(key, scans, now)) is not None
            ]
            if refusals:
                raise max(refusals, key=lambda refusal: refusal.retry_after)
            if (refusal := self._persons.add_or_refuse(persons, keys, slots, now)) is not None:
                raise refusal
            self._devices.take(device, scans, now)
            self._venues.take(venue, scans, now)
        return now

    def refund(self, device: int, venue: int, persons: np.ndarray, admitted_at: float,
               times: np.ndarray | None = None) -> None:
        """Give back what `admit` (which returned `admitted_at`) counted for the scans of
        `persons` at `device` and `venue` that stored nothing: duplicates of check-ins
        already stored (a retried upload). They are not check-ins, so they take no room
        from the limits. A no-op when the limits are disabled."""
        if self._persons is None or not len(persons):
            return
        persons = np.asarray(persons).astype(np.uint64, copy=False)
        slots = self._persons.slots(keys_of(persons, times, venue))
        with self._lock:
            now = self._clock()
            self._devices.give_back(device, len(persons), now)
            self._venues.give_back(venue, len(persons), now)
            self._persons.remove(persons, slots, admitted_at, now)
