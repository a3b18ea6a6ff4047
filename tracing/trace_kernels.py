"""Numba kernels for one level of a trace, over a snapshot's two segments at once.

A segment is passed as a tuple of its arrays plus the query's per-venue dwell and person
mask (see `exposure.segment_args`), so that one call does what took a dozen numpy calls:
at 100M check-ins the Python between kernels, not the kernels, was most of a query.
Persons and venues leave these kernels as ids (uint64), never as segment codes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tracing.kernels import EXPLICIT, LOW_BITS, scan_venue, venue_row


@njit(cache=True)
def _code(sorted_ids, value):
    j = np.searchsorted(sorted_ids, value)
    if j < sorted_ids.shape[0] and sorted_ids[j] == value:
        return j
    return -1


@njit(cache=True)
def _visits_of(seg, c, lo, hi, linger, person_id, out_p, out_v, out_s, out_e, k):
    """Person code c's presences in one segment appended to the outputs from k."""
    venue_ids, venue_off, _maxexp, person, t_in, exp, _pids, person_off, pv_venue, \
        pv_t_in, dwell, _mask = seg
    last = person_off[c + 1]
    for j in range(person_off[c], last):
        v = np.int64(pv_venue[j] & LOW_BITS)
        t = np.int64(pv_t_in[j])
        if pv_venue[j] & EXPLICIT:
            end = t + np.int64(exp[venue_row(venue_off, t_in, person, v, t, c)])
        else:
            end = t + dwell[v]
            nxt = j + 1
            while nxt < last and np.int64(pv_t_in[nxt]) == t:
                nxt += 1
            if nxt < last:
                end = min(end, np.int64(pv_t_in[nxt]))
        s = max(t, lo)
        e = min(end, hi)
        if s < e:
            out_p[k], out_v[k], out_s[k], out_e[k] = person_id, venue_ids[v], s, e + linger
            k += 1
    return k


@njit(cache=True)
def presences(base, overlay, persons, lows, hi, linger):
    """Presences of persons (uint64 ids): every visit clipped to [lows[i], hi) + linger.

    A person in the overlay is read from it alone (it holds all their check-ins).
    Returns (person, venue, start, end) arrays.
    """
    codes = np.empty(persons.shape[0], np.int64)
    in_overlay = np.empty(persons.shape[0], np.bool_)
    n = 0
    for i in range(persons.shape[0]):
        c = _code(overlay[6], persons[i])
        in_overlay[i] = c >= 0
        if c < 0:
            c = _code(base[6], persons[i])
        codes[i] = c
        if c >= 0:
            off = overlay[7] if in_overlay[i] else base[7]
            n += off[c + 1] - off[c]
    out_p, out_v = np.empty(n, np.uint64), np.empty(n, np.uint64)
    out_s, out_e = np.empty(n, np.int64), np.empty(n, np.int64)
    k = 0
    for i in range(persons.shape[0]):
        if codes[i] < 0:
            continue
        if in_overlay[i]:
            k = _visits_of(overlay, codes[i], lows[i], hi, linger, persons[i], out_p, out_v,
                           out_s, out_e, k)
        else:
            k = _visits_of(base, codes[i], lows[i], hi, linger, persons[i], out_p, out_v,
                           out_s, out_e, k)
    return out_p[:k], out_v[:k], out_s[:k], out_e[:k]


@njit(cache=True)
def _scan(seg, pres_v, pres_s, pres_e, need):
    """All qualifying overlaps in one segment, as (person id, venue id, start, end)."""
    venue_ids, venue_off, maxexp, person, t_in, exp, person_ids, person_off, _pv_venue, \
        pv_t_in, dwell, mask = seg
    codes = np.empty(pres_v.shape[0], np.int64)
    for i in range(pres_v.shape[0]):
        codes[i] = _code(venue_ids, pres_v[i])
    empty = np.empty((0, 4), np.int64)
    k = 0
    for i in range(codes.shape[0]):
        if codes[i] >= 0:
            k = scan_venue(venue_off, t_in, person, exp, maxexp, person_off, pv_t_in, dwell,
                          mask, codes[i], pres_s[i], pres_e[i], need, empty, k)
    hits = np.empty((k, 4), np.int64)
    k = 0
    for i in range(codes.shape[0]):
        if codes[i] >= 0:
            k = scan_venue(venue_off, t_in, person, exp, maxexp, person_off, pv_t_in, dwell,
                          mask, codes[i], pres_s[i], pres_e[i], need, hits, k)
    p, v = np.empty(k, np.uint64), np.empty(k, np.uint64)
    for i in range(k):
        p[i] = person_ids[hits[i, 0]]
        v[i] = venue_ids[hits[i, 1]]
    return p, v, hits[:, 2].copy(), hits[:, 3].copy()


@njit(cache=True)
def evidence(base, overlay, pres_v, pres_s, pres_e, found, need):
    """The next level's evidence: overlaps with the presences by >= need seconds, of
    persons not in `found` (sorted ids), sorted by (person, start, end, venue) without
    repeats. Returns (person, venue, start, end, index of each person's first row)."""
    bp, bv, bs, be = _scan(base, pres_v, pres_s, pres_e, need)
    op, ov, os_, oe = _scan(overlay, pres_v, pres_s, pres_e, need)
    p = np.concatenate((bp, op))
    v = np.concatenate((bv, ov))
    s = np.concatenate((bs, os_))
    e = np.concatenate((be, oe))
    keep = np.empty(p.shape[0], np.bool_)
    for i in range(p.shape[0]):
        keep[i] = _code(found, p[i]) < 0
    p, v, s, e = p[keep], v[keep], s[keep], e[keep]
    # least significant key first, each sort stable: (person, start, end, venue) order
    order = np.argsort(v, kind="mergesort")
    order = order[np.argsort(e[order], kind="mergesort")]
    order = order[np.argsort(s[order], kind="mergesort")]
    order = order[np.argsort(p[order], kind="mergesort")]
    n = 0
    firsts = np.empty(order.shape[0], np.int64)
    nf = 0
    out_p, out_v = np.empty(order.shape[0], np.uint64), np.empty(order.shape[0], np.uint64)
    out_s, out_e = np.empty(order.shape[0], np.int64), np.empty(order.shape[0], np.int64)
    for r in order:
        if n > 0 and out_p[n - 1] == p[r] and out_v[n - 1] == v[r] and out_s[n - 1] == s[r] \
                and out_e[n - 1] == e[r]:
            continue
        if n == 0 or out_p[n - 1] != p[r]:
            firsts[nf] = n
            nf += 1
        out_p[n], out_v[n], out_s[n], out_e[n] = p[r], v[r], s[r], e[r]
        n += 1
    return out_p[:n], out_v[:n], out_s[:n], out_e[:n], firsts[:nf]


@njit(cache=True)
def zones(pres_v, pres_s, pres_e, ev_v, ev_s, firsts):
    """Zones of one level: each venue's presences merged where they overlap or touch,
    sorted by (venue, start), with the number of distinct persons (evidence rows grouped
    by `firsts`) whose evidence starts in each. Returns (venue, start, end, exposed)."""
    order = np.argsort(pres_s, kind="mergesort")
    order = order[np.argsort(pres_v[order], kind="mergesort")]
    n = order.shape[0]
    zv, zs, ze = np.empty(n, np.uint64), np.empty(n, np.int64), np.empty(n, np.int64)
    k = -1
    for r in order:
        if k >= 0 and zv[k] == pres_v[r] and pres_s[r] <= ze[k]:
            ze[k] = max(ze[k], pres_e[r])
        else:
            k += 1
            zv[k], zs[k], ze[k] = pres_v[r], pres_s[r], pres_e[r]
    k += 1
    counts = np.zeros(k, np.int64)
    last_person = np.full(k, -1, np.int64)
    for g in range(firsts.shape[0]):
        stop = firsts[g + 1] if g + 1 < firsts.shape[0] else ev_v.shape[0]
        for i in range(firsts[g], stop):
            lo, hi = 0, k
            while lo < hi:  # the last zone at or before (venue, start)
                mid = (lo + hi) // 2
                if zv[mid] < ev_v[i] or (zv[mid] == ev_v[i] and zs[mid] <= ev_s[i]):
                    lo = mid + 1
                else:
                    hi = mid
            z = lo - 1
            if z >= 0 and zv[z] == ev_v[i] and last_person[z] != g:
                last_person[z] = g
                counts[z] += 1
    return zv[:k], zs[:k], ze[:k], counts
