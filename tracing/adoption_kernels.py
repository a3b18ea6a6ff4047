"""Numba kernels of the adoption report and the lockdown comparison (tracing/adoption.py).

Only @njit(cache=True) functions over contiguous arrays and scalars. They read a
segment's venue view: rows venue_off[v]:venue_off[v + 1] are venue code v, sorted by
t_in, so a time window is two binary searches per venue and a local day is a run of rows.
Times are int64 seconds; a day is the local epoch day (t + tz) // 86400.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SECONDS_PER_DAY = 86400


@njit(cache=True)
def lower_bound(t_in, lo, hi, t):
    """The first row r in [lo, hi) with t_in[r] >= t (hi if none); t_in sorted there."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if np.int64(t_in[mid]) < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def venue_day_groups(venue_off, t_in, skip, t_from, t_to, tz):
    """How many distinct (venue code, local day) groups the rows with t_from <= t_in <
    t_to form, rows with skip[r] set left out (skip may be empty: none skipped)."""
    masked = skip.shape[0] > 0
    groups = 0
    for v in range(venue_off.shape[0] - 1):
        a = lower_bound(t_in, venue_off[v], venue_off[v + 1], t_from)
        b = lower_bound(t_in, a, venue_off[v + 1], t_to)
        have, last = False, np.int64(0)
        for r in range(a, b):
            if masked and skip[r]:
                continue
            day = (np.int64(t_in[r]) + tz) // SECONDS_PER_DAY
            if not have or day != last:
                groups += 1
                have, last = True, day
    return groups


@njit(cache=True)
def venue_day_fill(venue_off, t_in, skip, t_from, t_to, tz, out_code, out_day, out_count):
    """Fill the groups that venue_day_groups counted, in (venue code, day) order: venue
    code, local day and number of rows of each."""
    masked = skip.shape[0] > 0
    g = -1
    for v in range(venue_off.shape[0] - 1):
        a = lower_bound(t_in, venue_off[v], venue_off[v + 1], t_from)
        b = lower_bound(t_in, a, venue_off[v + 1], t_to)
        have, last = False, np.int64(0)
        for r in range(a, b):
            if masked and skip[r]:
                continue
            day = (np.int64(t_in[r]) + tz) // SECONDS_PER_DAY
            if not have or day != last:
                g += 1
                out_code[g] = v
                out_day[g] = day
                out_count[g] = 0
                have, last = True, day
            out_count[g] += 1
    return g + 1


@njit(cache=True)
def merge_counts(v1, d1, c1, v2, d2, c2, out_v, out_d, out_c):
    """Merge two lists sorted by (venue id, day), adding the counts of equal keys; the
    outputs hold at least len(v1) + len(v2) rows. Returns the rows written."""
    i, j, k = 0, 0, 0
    n1, n2 = v1.shape[0], v2.shape[0]
    while i < n1 or j < n2:
        if j >= n2 or (i < n1 and (v1[i] < v2[j] or (v1[i] == v2[j] and d1[i] < d2[j]))):
            out_v[k], out_d[k], out_c[k] = v1[i], d1[i], c1[i]
            i += 1
        elif i >= n1 or v2[j] < v1[i] or d2[j] < d1[i]:
            out_v[k], out_d[k], out_c[k] = v2[j], d2[j], c2[j]
            j += 1
        else:
            out_v[k], out_d[k], out_c[k] = v1[i], d1[i], c1[i] + c2[j]
            i += 1
            j += 1
        k += 1
    return k


@njit(cache=True)
def window_rows(venue_off, t_in, codes, t_from, t_to):
    """(rows, which): the venue-view rows at the given venue codes with t_from <= t_in <
    t_to (repeats included), and for each the index in `codes` of its venue."""
    total = 0
    for v in codes:
        a = lower_bound(t_in, venue_off[v], venue_off[v + 1], t_from)
        total += lower_bound(t_in, a, venue_off[v + 1], t_to) - a
    rows = np.empty(total, np.int64)
    which = np.empty(total, np.int64)
    k = 0
    for i in range(codes.shape[0]):
        v = codes[i]
        a = lower_bound(t_in, venue_off[v], venue_off[v + 1], t_from)
        b = lower_bound(t_in, a, venue_off[v + 1], t_to)
        for r in range(a, b):
            rows[k] = r
            which[k] = i
            k += 1
    return rows, which


@njit(cache=True)
def overlay_repeats(b_venue_ids, b_venue_off, b_t_in, b_person, b_person_ids,
                    o_venue_ids, o_venue_off, o_t_in, o_person, o_person_ids, out):
    """Set out[r] = 1 for each overlay venue-view row whose (venue, t_in, person) the base
    holds too. Both views are sorted by t_in within a venue, so each venue is one walk."""
    for ov in range(o_venue_ids.shape[0]):
        bv = np.searchsorted(b_venue_ids, o_venue_ids[ov])
        if bv >= b_venue_ids.shape[0] or b_venue_ids[bv] != o_venue_ids[ov]:
            continue
        lo, hi = b_venue_off[bv], b_venue_off[bv + 1]
        for r in range(o_venue_off[ov], o_venue_off[ov + 1]):
            t = np.int64(o_t_in[r])
            lo = lower_bound(b_t_in, lo, hi, t)
            pid = o_person_ids[o_person[r]]
            k = lo
            while k < hi and np.int64(b_t_in[k]) == t:
                if b_person_ids[b_person[k]] == pid:
                    out[r] = 1
                    break
                k += 1
