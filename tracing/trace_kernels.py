"""Numba kernels for one level of a trace, over a snapshot's two segments at once.

A segment is passed as a tuple of its arrays plus the query's per-venue dwell and person
mask (see `exposure.segment_args`), so that one call does what took a dozen numpy calls:
at 100M check-ins the Python between kernels, not the kernels, was most of a query.
Persons and venues leave these kernels as ids (uint64), never as segment codes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tracing.kernels import EXPLICIT, LOW_BITS, next_later, venue_row


@njit(cache=True)
def _code(sorted_ids, value):
    j = np.searchsorted(sorted_ids, value)
    if j < sorted_ids.shape[0] and sorted_ids[j] == value:
        return j
    return -1


@njit(cache=True)
def _next_in(seg, c, t):
    """Person code c's first t_in strictly after t in one segment, -1 if none or c < 0."""
    if c < 0:
        return np.int64(-1)
    return next_later(seg[7], seg[9], c, t)


@njit(cache=True)
def _in_other(seg, other, v, t, pid):
    """Whether `other` holds the check-in (venue code v of seg, t, person id pid)."""
    c = _code(other[6], pid)
    if c < 0:
        return False
    w = _code(other[0], seg[0][v])
    return w >= 0 and venue_row(other[1], other[4], other[3], w, t, c) >= 0


@njit(cache=True)
def _end(seg, other, v, t, explicit, c, c_other, exact):
    """A visit's end: its explicit check-out, else the earlier of t + dwell and the
    person's next later check-in in either segment (looked up only when `exact`)."""
    if explicit > 0:
        return t + explicit
    end = t + seg[10][v]
    if exact:
        for nxt in (_next_in(seg, c, t), _next_in(other, c_other, t)):
            if 0 <= nxt < end:
                end = nxt
    return end


@njit(cache=True)
def _visits_of(seg, other, c, c_other, lo, hi, linger, pid, out_p, out_v, out_s, out_e, k,
               skip_dups):
    """Person code c's presences from one segment appended to the outputs from k; with
    skip_dups, check-ins that `other` also holds are left to it."""
    venue_ids, venue_off, _maxexp, person, t_in, exp, _pids, person_off, pv_venue, \
        pv_t_in, _dwell, _mask = seg
    for j in range(person_off[c], person_off[c + 1]):
        v = np.int64(pv_venue[j] & LOW_BITS)
        t = np.int64(pv_t_in[j])
        if skip_dups and _in_other(seg, other, v, t, pid):
            continue
        explicit = np.int64(0)
        if pv_venue[j] & EXPLICIT:
            explicit = np.int64(exp[venue_row(venue_off, t_in, person, v, t, c)])
        end = _end(seg, other, v, t, explicit, c, c_other, True)
        s = max(t, lo)
        e = min(end, hi)
        if s < e:
            out_p[k], out_v[k], out_s[k], out_e[k] = pid, venue_ids[v], s, e + linger
            k += 1
    return k


@njit(cache=True)
def presences(base, overlay, persons, lows, hi, linger):
    """Presences of persons (uint64 ids): every visit clipped to [lows[i], hi) + linger.

    The overlay holds the head's check-ins, each carrying the largest t_out of its key;
    a base check-in that the overlay also holds is read from the overlay only.
    Returns (person, venue, start, end) arrays.
    """
    n = persons.shape[0]
    cb, co = np.empty(n, np.int64), np.empty(n, np.int64)
    rows = 0
    for i in range(n):
        cb[i] = _code(base[6], persons[i])
        co[i] = _code(overlay[6], persons[i])
        if cb[i] >= 0:
            rows += base[7][cb[i] + 1] - base[7][cb[i]]
        if co[i] >= 0:
            rows += overlay[7][co[i] + 1] - overlay[7][co[i]]
    out_p, out_v = np.empty(rows, np.uint64), np.empty(rows, np.uint64)
    out_s, out_e = np.empty(rows, np.int64), np.empty(rows, np.int64)
    k = 0
    for i in range(n):
        if cb[i] >= 0:
            k = _visits_of(base, overlay, cb[i], co[i], lows[i], hi, linger, persons[i],
                           out_p, out_v, out_s, out_e, k, co[i] >= 0)
        if co[i] >= 0:
            k = _visits_of(overlay, base, co[i], cb[i], lows[i], hi, linger, persons[i],
                           out_p, out_v, out_s, out_e, k, False)
    return out_p[:k], out_v[:k], out_s[:k], out_e[:k]


@njit(cache=True)
def _venue_rows(seg, v, ps, pe):
    """The rows of venue code v that a scan for overlaps with [ps, pe) reads: those with
    t_in in [ps - the venue's longest visit, pe)."""
    venue_off, maxexp, t_in, dwell = seg[1], seg[2], seg[4], seg[10]
    lo, hi = venue_off[v], venue_off[v + 1]
    back = max(np.int64(maxexp[v]), dwell[v])
    first = min(max(ps - back, np.int64(0)), np.int64(0xFFFFFFFF))
    start = lo + np.searchsorted(t_in[lo:hi], np.uint32(first))
    stop = hi
    if pe <= 0xFFFFFFFF:
        stop = lo + np.searchsorted(t_in[lo:hi], np.uint32(max(pe, np.int64(0))))
    return start, max(stop, start)


@njit(cache=True)
def _scan_venue(seg, other, is_base, v, ps, pe, need, out, k):
    """Visits at venue code v overlapping [ps, pe) by >= need seconds, written to out[k:]
    as (person code, venue code, start, end) (out has room for every row _venue_rows
    names); returns the new k. In the base, persons marked in its mask also have
    check-ins in the overlay (`other`): their visits may end earlier, and keys the
    overlay holds are left to it."""
    _venue_ids, _venue_off, _maxexp, person, t_in, exp, person_ids, _off, _pv_venue, \
        _pv_t_in, _dwell, mask = seg
    r, stop = _venue_rows(seg, v, ps, pe)
    while r < stop:
        p = np.int64(person[r])
        t = np.int64(t_in[r])
        s = max(ps, t)
        # only a visit that would qualify at full length needs more lookups
        if min(pe, _end(seg, other, v, t, np.int64(exp[r]), p, -1, False)) - s >= need:
            c_other = -1
            if not is_base or (mask.shape[0] > 0 and mask[p]):
                c_other = _code(other[6], person_ids[p])
            if is_base and c_other >= 0 and _in_other(seg, other, v, t, person_ids[p]):
                r += 1
                continue
            e = min(pe, _end(seg, other, v, t, np.int64(exp[r]), p, c_other, True))
            if e - s >= need:
                out[k, 0], out[k, 1], out[k, 2], out[k, 3] = p, v, s, e
                k += 1
        r += 1
    return k


@njit(cache=True)
def _scan(seg, other, is_base, pres_v, pres_s, pres_e, need):
    """All qualifying overlaps in one segment, as (person id, venue id, start, end)."""
    venue_ids, person_ids = seg[0], seg[6]
    codes = np.empty(pres_v.shape[0], np.int64)
    room = 0
    for i in range(pres_v.shape[0]):
        codes[i] = _code(venue_ids, pres_v[i])
        if codes[i] >= 0:
            start, stop = _venue_rows(seg, codes[i], pres_s[i], pres_e[i])
            room += stop - start
    # one pass, with room for every row read: a pass to count first looked up each
    # candidate's visit end twice (random reads of the person view)
    hits = np.empty((room, 4), np.int64)
    k = 0
    for i in range(codes.shape[0]):
        if codes[i] >= 0:
            k = _scan_venue(seg, other, is_base, codes[i], pres_s[i], pres_e[i], need,
                            hits, k)
    p, v = np.empty(k, np.uint64), np.empty(k, np.uint64)
    for i in range(k):
        p[i] = person_ids[hits[i, 0]]
        v[i] = venue_ids[hits[i, 1]]
    return p, v, hits[:k, 2].copy(), hits[:k, 3].copy()


@njit(cache=True)
def evidence(base, overlay, pres_v, pres_s, pres_e, found, need):
    """The next level's evidence: overlaps with the presences by >= need seconds, of
    persons not in `found` (sorted ids), sorted by (person, start, end, venue) without
    repeats. Returns (person, venue, start, end, index of each person's first row)."""
    bp, bv, bs, be = _scan(base, overlay, True, pres_v, pres_s, pres_e, need)
    op, ov, os_, oe = _scan(overlay, base, False, pres_v, pres_s, pres_e, need)
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
