"""Numba kernels of the co-location index: building segments and scanning them.

Only @njit(cache=True) functions over contiguous arrays and scalars live here; the callers
(tracing/segments.py, tracing/exposure.py) check dtypes, prepare inputs and wrap results.

A visit's duration word (`dur`, uint32) holds either an explicit check-out or the gap to
the same person's next strictly later check-in: bit 31 set means "explicit", and the low
31 bits are t_out - t_in; bit 31 clear means the low 31 bits are the gap (GAP_NONE when
there is no later check-in). The venue's dwell is applied at query time, so changing a
dwell or a rule's default dwell needs no rebuild:
    end = t_in + (low if explicit else min(low, dwell(venue)))
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

EXPLICIT = np.uint32(1 << 31)
LOW_BITS = np.uint32((1 << 31) - 1)
GAP_NONE = np.uint32((1 << 31) - 1)


@njit(cache=True)
def visit_end(t_in, dur, dwell):
    """The end of a visit from its t_in, duration word and its venue's dwell (int64)."""
    low = np.int64(dur & LOW_BITS)
    if dur & EXPLICIT:
        return np.int64(t_in) + low
    return np.int64(t_in) + min(low, np.int64(dwell))


@njit(cache=True)
def counting_order(codes, n_codes):
    """A stable permutation sorting rows by `codes`, and the CSR offsets of each code."""
    off = np.zeros(n_codes + 1, np.int64)
    for i in range(codes.shape[0]):
        off[codes[i] + 1] += 1
    for c in range(n_codes):
        off[c + 1] += off[c]
    fill = off[:-1].copy()
    order = np.empty(codes.shape[0], np.int64)
    for i in range(codes.shape[0]):
        c = codes[i]
        order[fill[c]] = i
        fill[c] += 1
    return order, off


def _sort_groups(order, off, key):
    """Sort each group order[off[g]:off[g+1]] by key[row], in place (keys are unique)."""
    for g in prange(off.shape[0] - 1):
        lo, hi = off[g], off[g + 1]
        if hi - lo > 1:
            rows = order[lo:hi].copy()
            keys = np.empty(hi - lo, np.uint64)
            for j in range(hi - lo):
                keys[j] = key[rows[j]]
            idx = np.argsort(keys)
            for j in range(hi - lo):
                order[lo + j] = rows[idx[j]]


@njit(cache=True)
def dedupe_sorted(order, vcode, t_in, pcode, t_out):
    """Merge exact (venue, t_in, person) duplicates, adjacent in `order`.

    Returns the kept rows (in order) and, per kept row, the largest t_out of its
    duplicates (0 when none has an explicit check-out).
    """
    n = order.shape[0]
    keep = np.empty(n, np.int64)
    merged = np.empty(n, np.int64)
    k = -1
    for j in range(n):
        r = order[j]
        if (k >= 0 and vcode[r] == vcode[keep[k]] and t_in[r] == t_in[keep[k]]
                and pcode[r] == pcode[keep[k]]):
            if t_out[r] > merged[k]:
                merged[k] = t_out[r]
        else:
            k += 1
            keep[k] = r
            merged[k] = max(t_out[r], np.int64(0))
    return keep[:k + 1], merged[:k + 1]


def _duration_words(perm, person_off, t_in, t_out):
    """Each row's duration word: its explicit check-out, else the gap to the person's next
    strictly later t_in. `perm` lists each person's rows sorted by t_in."""
    dur = np.empty(t_in.shape[0], np.uint32)
    for p in prange(person_off.shape[0] - 1):
        lo, hi = person_off[p], person_off[p + 1]
        nxt = np.int64(-1)
        j = hi - 1
        while j >= lo:
            # rows with equal t_in share the same "next strictly later" check-in
            k = j
            while k > lo and t_in[perm[k - 1]] == t_in[perm[j]]:
                k -= 1
            for m in range(k, j + 1):
                r = perm[m]
                if t_out[r] > 0:
                    dur[r] = np.uint32(t_out[r] - np.int64(t_in[r])) | EXPLICIT
                elif nxt < 0:
                    dur[r] = GAP_NONE
                else:
                    dur[r] = np.uint32(min(nxt - np.int64(t_in[r]), np.int64(GAP_NONE)))
            nxt = np.int64(t_in[perm[k]])
            j = k - 1
    return dur


# Parallel and serial builds of the same kernels: small inputs (the overlay, a test's
# index) skip the thread pool, whose start-up costs more than they do and which must not
# run in a process that later forks (the durability test's zygote).
sort_groups = njit(cache=True, parallel=True)(_sort_groups)
sort_groups_serial = njit(cache=True)(_sort_groups)
duration_words = njit(cache=True, parallel=True)(_duration_words)
duration_words_serial = njit(cache=True)(_duration_words)


@njit(cache=True)
def venue_max_explicit(venue_off, dur):
    """Per venue, the longest explicit visit (0 if none): bounds how far back to scan."""
    out = np.zeros(venue_off.shape[0] - 1, np.uint32)
    for v in range(venue_off.shape[0] - 1):
        for r in range(venue_off[v], venue_off[v + 1]):
            if dur[r] & EXPLICIT:
                out[v] = max(out[v], dur[r] & LOW_BITS)
    return out


@njit(cache=True)
def find_keys(venue_off, t_in, person, vcodes, times, pcodes):
    """For each key (venue code, t_in, person code), its row in the segment or -1."""
    out = np.full(vcodes.shape[0], -1, np.int64)
    for i in range(vcodes.shape[0]):
        if vcodes[i] < 0 or pcodes[i] < 0:
            continue
        lo, hi = venue_off[vcodes[i]], venue_off[vcodes[i] + 1]
        r = lo + np.searchsorted(t_in[lo:hi], np.uint32(times[i]))
        while r < hi and np.int64(t_in[r]) == times[i]:
            if np.int64(person[r]) == pcodes[i]:
                out[i] = r
                break
            r += 1
    return out


@njit(cache=True)
def _scan_one(venue_off, t_in, dur, person, maxexp, dwell, mask, v, ps, pe, need, out, k):
    lo, hi = venue_off[v], venue_off[v + 1]
    back = max(np.int64(maxexp[v]), dwell[v])
    r = lo + np.searchsorted(t_in[lo:hi], np.uint32(max(ps - back, np.int64(0))))
    while r < hi and np.int64(t_in[r]) < pe:
        p = person[r]
        if mask.shape[0] == 0 or mask[p] == 0:
            s = max(ps, np.int64(t_in[r]))
            e = min(pe, visit_end(t_in[r], dur[r], dwell[v]))
            if e - s >= need:
                if out.shape[0] > 0:
                    out[k, 0] = p
                    out[k, 1] = v
                    out[k, 2] = s
                    out[k, 3] = e
                k += 1
        r += 1
    return k


@njit(cache=True)
def scan_presences(venue_off, t_in, dur, person, maxexp, dwell, mask, pres_v, pres_s,
                   pres_e, need):
    """Every visit overlapping a presence by >= need seconds.

    Presences are (venue code, start, end), code -1 when the venue is not in this segment.
    `mask[person] != 0` hides a person's rows (they are answered from another segment).
    Returns an (k, 4) int64 array of (person code, venue code, overlap start, overlap end).
    """
    empty = np.empty((0, 4), np.int64)
    k = 0
    for i in range(pres_v.shape[0]):
        if pres_v[i] >= 0:
            k = _scan_one(venue_off, t_in, dur, person, maxexp, dwell, mask, pres_v[i],
                          pres_s[i], pres_e[i], need, empty, k)
    out = np.empty((k, 4), np.int64)
    k = 0
    for i in range(pres_v.shape[0]):
        if pres_v[i] >= 0:
            k = _scan_one(venue_off, t_in, dur, person, maxexp, dwell, mask, pres_v[i],
                          pres_s[i], pres_e[i], need, out, k)
    return out


@njit(cache=True)
def person_presences(venue_off, t_in, dur, person_off, perm, dwell, pcodes, lows, hi,
                     linger):
    """The presences of persons: each visit clipped to [lows[i], hi), then + linger.

    Returns an (k, 4) int64 array of (index into pcodes, venue code, start, end).
    """
    n = 0
    for i in range(pcodes.shape[0]):
        n += person_off[pcodes[i] + 1] - person_off[pcodes[i]]
    out = np.empty((n, 4), np.int64)
    k = 0
    for i in range(pcodes.shape[0]):
        c = pcodes[i]
        for j in range(person_off[c], person_off[c + 1]):
            r = np.int64(perm[j])
            v = np.searchsorted(venue_off, r, side="right") - 1
            s = max(np.int64(t_in[r]), lows[i])
            e = min(visit_end(t_in[r], dur[r], dwell[v]), hi)
            if s < e:
                out[k, 0] = i
                out[k, 1] = v
                out[k, 2] = s
                out[k, 3] = e + linger
                k += 1
    return out[:k]


@njit(cache=True)
def gather_person_rows(person_off, perm, pcodes):
    """The rows (indices into the venue-ordered columns) of the given person codes."""
    n = 0
    for c in pcodes:
        n += person_off[c + 1] - person_off[c]
    out = np.empty(n, np.int64)
    k = 0
    for c in pcodes:
        for j in range(person_off[c], person_off[c + 1]):
            out[k] = perm[j]
            k += 1
    return out


@njit(cache=True)
def merge_zones(venue, start, end):
    """Merge presences sorted by (venue, start) into zones: overlapping or touching
    intervals at one venue become one. Returns (zone venue, zone start, zone end)."""
    n = venue.shape[0]
    zv = np.empty(n, np.uint64)
    zs = np.empty(n, np.int64)
    ze = np.empty(n, np.int64)
    k = -1
    for i in range(n):
        if k >= 0 and zv[k] == venue[i] and start[i] <= ze[k]:
            ze[k] = max(ze[k], end[i])
        else:
            k += 1
            zv[k] = venue[i]
            zs[k] = start[i]
            ze[k] = end[i]
    return zv[:k + 1], zs[:k + 1], ze[:k + 1]


@njit(cache=True)
def zone_of(zv, zs, ev_venue, ev_start):
    """For each evidence (venue, start), the last zone at that venue starting at or before
    it (zones are sorted by venue, start); -1 if none."""
    out = np.full(ev_venue.shape[0], -1, np.int64)
    for i in range(ev_venue.shape[0]):
        lo, hi = 0, zv.shape[0]
        while lo < hi:  # first zone after (venue, start)
            mid = (lo + hi) // 2
            if zv[mid] < ev_venue[i] or (zv[mid] == ev_venue[i] and zs[mid] <= ev_start[i]):
                lo = mid + 1
            else:
                hi = mid
        if lo > 0 and zv[lo - 1] == ev_venue[i]:
            out[i] = lo - 1
    return out


@njit(cache=True)
def head_stored_tout(head_keys, person, venue, t_in, stored):
    """Raise stored[i] to the head's t_out of key i where the head holds that key."""
    for i in range(person.shape[0]):
        key = (person[i], venue[i], t_in[i])
        if key in head_keys:
            stored[i] = max(stored[i], head_keys[key])


@njit(cache=True)
def head_record(head_keys, person, venue, t_in, t_out, in_base):
    """Record keys in the head (largest t_out wins); returns how many were new to the
    index (neither in the head nor, per in_base, in the base)."""
    new = 0
    for i in range(person.shape[0]):
        key = (person[i], venue[i], t_in[i])
        if key in head_keys:
            head_keys[key] = max(head_keys[key], t_out[i])
        else:
            head_keys[key] = t_out[i]
            if not in_base[i]:
                new += 1
    return new
