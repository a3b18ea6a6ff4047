"""Validating and merging batches of check-ins before they reach the log."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracing.errors import InvalidCheckin
from tracing.kernels import check_times

MAX_TIME = 2**32          # times are stored as uint32 seconds
MAX_DURATION = 2**31 - 1  # an explicit visit's length is stored in 31 bits


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did: `added` new distinct check-ins, `duplicates` rows that
    repeated a (person, venue, t_in) already in the batch or the index."""

    added: int
    duplicates: int


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
    return arr.astype(np.uint64, copy=False)


def _times(name: str, values, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise InvalidCheckin(f"{name}: expected {n} values like person, got shape {arr.shape}")
    if n and arr.dtype.kind not in "iu":
        raise InvalidCheckin(f"{name}: expected integer seconds, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and n and arr.max() >= MAX_TIME:
        bad = int(np.argmax(arr >= MAX_TIME))
        raise InvalidCheckin(f"row {bad}: {name} {arr[bad]} is after 2106 (not a uint32 time)")
    return arr.astype(np.int64, copy=False)


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


def merge_batch(person, venue, t_in, t_out):
    """Merge a batch's exact (person, venue, t_in) duplicates; the largest t_out wins.

    Returns the distinct keys' columns sorted by (person, venue, t_in).
    """
    order = np.lexsort((t_in, venue, person))
    person, venue, t_in, t_out = person[order], venue[order], t_in[order], t_out[order]
    if person.shape[0] < 2:
        return person, venue, t_in, t_out
    first = np.r_[True, (person[1:] != person[:-1]) | (venue[1:] != venue[:-1])
                  | (t_in[1:] != t_in[:-1])]
    starts = np.flatnonzero(first)
    return person[starts], venue[starts], t_in[starts], np.maximum.reduceat(t_out, starts)


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
