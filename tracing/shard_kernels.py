"""Numba kernels for what one shard answers in a trace over several (tracing/shards.py).

A shard sees only its own check-ins, so the visit ends it computes are upper bounds: a
visit without check-out ends at the person's next check-in at any venue, which may be in
another shard. Each kernel therefore returns, with every row, what the coordinator needs
to finish the job: the visit's t_in and whether it has a check-out. The ends here are
already cut by the next check-in in this shard (both of its segments), and rows whose
upper bound already fails (no presence, an overlap under `need`) are left out: a later
check-in elsewhere can only shorten a visit.

The kernels read a snapshot's table (exposure.Snapshot.table) and reuse the trace's own
per-row steps (trace_kernels), so a shard applies exactly the single index's rules.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tracing.kernels import venue_row
from tracing.trace_kernels import (
    _candidates,
    _code,
    _confirm,
    _next_in,
    _segment,
    _visits_of,
    person_codes,
)


@njit(cache=True, nogil=True)
def presence_rows(table, persons, lows, hi):
    """Each person's visits in this shard clipped to [lows[i], hi), without linger:
    (person index into `persons`, venue id, start, end, t_in, 1 if the visit has a
    check-out else 0), int64 but the venue ids (uint64)."""
    base, overlay = _segment(table, 0), _segment(table, 1)
    n = persons.shape[0]
    cb, co, rows = person_codes(base, overlay, persons)
    codes, venues = np.empty(rows, np.int64), np.empty(rows, np.uint64)
    starts, ends = np.empty(rows, np.int64), np.empty(rows, np.int64)
    who, t_in, explicit = np.empty(rows, np.int64), np.empty(rows, np.int64), \
        np.empty(rows, np.int64)
    k = 0
    for i in range(n):
        first = k
        if cb[i] >= 0:
            k = _visits_of(base, overlay, cb[i], co[i], lows[i], hi, 0, True, codes, venues,
                           starts, ends, t_in, explicit, k, co[i] >= 0)
        if co[i] >= 0:
            k = _visits_of(overlay, base, co[i], cb[i], lows[i], hi, 0, False, codes, venues,
                           starts, ends, t_in, explicit, k, False)
        who[first:k] = i
    return who[:k], venues[:k], starts[:k], ends[:k], t_in[:k], explicit[:k]


@njit(cache=True, nogil=True)
def overlap_rows(table, pres_v, pres_s, pres_e, need):
    """The visits in this shard at the presences' venues (pres_v, ids) that overlap a
    presence [pres_s, pres_e) by >= need seconds, each pair judged on its own: (person id,
    venue id, start, end, t_in, the presence's index, 1 if the visit has a check-out else
    0), int64 but the ids (uint64). The case itself and persons found before are not
    left out here: the coordinator knows them."""
    base, overlay = _segment(table, 0), _segment(table, 1)
    unknown = np.full(pres_v.shape[0], -1, np.int64)  # venue codes: searched by id
    rows_b, at_b, codes_b = _candidates(base, unknown, pres_v, pres_s, pres_e, need)
    rows_o, at_o, codes_o = _candidates(overlay, unknown, pres_v, pres_s, pres_e, need)
    room = rows_b.shape[0] + rows_o.shape[0]
    p, v = np.empty(room, np.uint64), np.empty(room, np.uint64)
    s, e = np.empty(room, np.int64), np.empty(room, np.int64)
    t, at, x = np.empty(room, np.int64), np.empty(room, np.int64), np.empty(room, np.int64)
    nobody = np.empty(0, np.uint64)
    k = _confirm(base, overlay, True, rows_b, at_b, codes_b, pres_s, pres_e, need, nobody,
                 p, v, s, e, t, at, x, 0)
    k = _confirm(overlay, base, False, rows_o, at_o, codes_o, pres_s, pres_e, need, nobody,
                 p, v, s, e, t, at, x, k)
    return p[:k], v[:k], s[:k], e[:k], t[:k], at[:k], x[:k]


@njit(cache=True, nogil=True)
def visit_ends(table, persons, venues, times):
    """For each check-in without a check-out as the coordinator knows it (persons[i],
    venues[i], times[i]: ids and t_in), what this shard knows that ends it: (the length
    of its visit to a check-out of a copy of it here, the longest, or 0 if this shard
    holds no copy with one; the person's first t_in here strictly after times[i], or -1
    if there is none)."""
    base, overlay = _segment(table, 0), _segment(table, 1)
    length = np.zeros(persons.shape[0], np.int64)
    nxt = np.full(persons.shape[0], -1, np.int64)
    for i in range(persons.shape[0]):
        for seg in (base, overlay):
            p = _code(seg[6], persons[i])
            if p < 0:
                continue
            v = _code(seg[0], venues[i])
            if v >= 0:
                r = venue_row(seg[1], seg[4], seg[3], v, times[i], p)
                if r >= 0:
                    length[i] = max(length[i], np.int64(seg[5][r]))
            t = _next_in(seg[7], seg[9], p, times[i])
            if t >= 0 and (nxt[i] < 0 or t < nxt[i]):
                nxt[i] = t
    return length, nxt
