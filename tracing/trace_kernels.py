"""Numba kernels for a whole trace, over a snapshot's two segments at once.

`trace` answers one case in one call: every level's presences, evidence and zones, as
three uint64 matrices in one array (see its docstring). The snapshot's arrays arrive as one table of
addresses and lengths (`exposure.Snapshot.table`) and are turned back into arrays here
with numba.carray: one small argument to check and unbox instead of two tuples of twelve
arrays, and one call a trace instead of two or three a level.

A segment inside these kernels is the tuple of its arrays plus the query's per-venue
dwell and person mask, in the order of `exposure.segment_args`. The per-row loops take
plain arrays, unpacked once per segment: handing the tuples down to helpers called for
every row cost reference counting on each of their arrays at each call, and was most of
a trace's time at 10M check-ins. Persons and venues leave these kernels as ids (uint64),
never as segment codes.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

from decoder.prefetch import prefetch_read
from tracing.kernels import EXPLICIT, LOW_BITS, next_later, venue_row

# dtypes of a segment's arrays in the kernels' order (exposure.segment_args)
SEGMENT_DTYPES = (np.uint64, np.int64, np.uint32, np.uint32, np.uint32, np.uint32,
                  np.uint64, np.int64, np.uint32, np.uint32, np.int64, np.uint8)


@intrinsic
def _pointer(typingctx, address, dtype):
    """`address` (an integer) as a pointer to values of the number class `dtype`."""
    pointer = types.CPointer(dtype.instance_type)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))

    return pointer(address, dtype), codegen


@njit(cache=True, nogil=True)
def _segment(table, i):
    """Segment i of the table (int64 [2, 12, 2]: address and length of each array) as
    its tuple of arrays. The arrays belong to the Snapshot that made the table, which
    the caller holds for the whole call."""
    t = table[i]
    return (carray(_pointer(t[0, 0], np.uint64), t[0, 1]),
            carray(_pointer(t[1, 0], np.int64), t[1, 1]),
            carray(_pointer(t[2, 0], np.uint32), t[2, 1]),
            carray(_pointer(t[3, 0], np.uint32), t[3, 1]),
            carray(_pointer(t[4, 0], np.uint32), t[4, 1]),
            carray(_pointer(t[5, 0], np.uint32), t[5, 1]),
            carray(_pointer(t[6, 0], np.uint64), t[6, 1]),
            carray(_pointer(t[7, 0], np.int64), t[7, 1]),
            carray(_pointer(t[8, 0], np.uint32), t[8, 1]),
            carray(_pointer(t[9, 0], np.uint32), t[9, 1]),
            carray(_pointer(t[10, 0], np.int64), t[10, 1]),
            carray(_pointer(t[11, 0], np.uint8), t[11, 1]))


@njit(cache=True, nogil=True, inline="always")
def _code(sorted_ids, value):
    """The position of `value` in `sorted_ids`, -1 if absent."""
    j = np.searchsorted(sorted_ids, value)
    if j < sorted_ids.shape[0] and sorted_ids[j] == value:
        return j
    return -1


@njit(cache=True, nogil=True, inline="always")
def _next_in(person_off, pv_t_in, c, t):
    """Person code c's first t_in strictly after t, -1 if none or c < 0."""
    if c < 0:
        return np.int64(-1)
    return next_later(person_off, pv_t_in, c, t)


@njit(cache=True, nogil=True)
def _visits_of(seg, other, c, c_other, lo, hi, linger, is_base, out_c, out_v, out_s, out_e,
               out_t, out_x, k, skip_dups):
    """Person code c's presences from one segment appended to the outputs from k; with
    skip_dups, check-ins that `other` also holds are left to it. out_t and out_x are None
    or get each presence's t_in and 1 if its visit has a check-out, else 0."""
    venue_ids, venue_off, maxexp, person, t_in, exp, _pids, person_off, pv_venue, \
        pv_t_in, dwell, _mask = seg
    o_venue_ids, o_venue_off, _o_maxexp, o_person, o_t_in, _o_exp, _o_pids, o_person_off, \
        _o_pv_venue, o_pv_t_in, _o_dwell, _o_mask = other
    for j in range(person_off[c], person_off[c + 1]):
        t = np.int64(pv_t_in[j])
        if t >= hi:  # the person's check-ins ascend: none later is present
            break
        v = np.int64(pv_venue[j] & LOW_BITS)
        if t + max(np.int64(maxexp[v]), dwell[v]) <= lo:  # over before lo: no lookups
            continue
        if skip_dups:  # c_other >= 0: is this check-in in `other` too?
            w = _code(o_venue_ids, venue_ids[v])
            if w >= 0 and venue_row(o_venue_off, o_t_in, o_person, w, t, c_other) >= 0:
                continue
        explicit = pv_venue[j] & EXPLICIT
        if explicit:
            end = t + np.int64(exp[venue_row(venue_off, t_in, person, v, t, c)])
        else:  # the next strictly later check-in in this segment follows row j
            end = t + dwell[v]
            nxt = j + 1
            while nxt < person_off[c + 1] and np.int64(pv_t_in[nxt]) == t:
                nxt += 1
            if nxt < person_off[c + 1] and np.int64(pv_t_in[nxt]) < end:
                end = np.int64(pv_t_in[nxt])
            nxt = _next_in(o_person_off, o_pv_t_in, c_other, t)  # or in `other`
            if 0 <= nxt < end:
                end = nxt
        s = max(t, lo)
        e = min(end, hi)
        if s < e:
            out_c[k] = v if is_base else -1
            out_v[k], out_s[k], out_e[k] = venue_ids[v], s, e + linger
            if out_t is not None:
                out_t[k], out_x[k] = t, 1 if explicit else 0
            k += 1
    return k


@njit(cache=True, nogil=True, inline="always")
def person_codes(base, overlay, persons):
    """(codes of the persons in the base, in the overlay (-1: absent), their check-ins
    in both)."""
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
    return cb, co, rows


@njit(cache=True, nogil=True)
def presences(base, overlay, persons, lows, hi, linger):
    """Presences of persons (uint64 ids): every visit clipped to [lows[i], hi) + linger.

    The overlay holds the head's check-ins, each carrying the largest t_out of its key;
    a base check-in that the overlay also holds is read from the overlay only.
    Returns (venue code in the base or -1 when the visit is the overlay's, venue id,
    start, end) arrays: the code spares the search of the venue's id that _candidates
    would do.
    """
    n = persons.shape[0]
    cb, co, rows = person_codes(base, overlay, persons)
    out_c, out_v = np.empty(rows, np.int64), np.empty(rows, np.uint64)
    out_s, out_e = np.empty(rows, np.int64), np.empty(rows, np.int64)
    k = 0
    for i in range(n):
        if cb[i] >= 0:
            k = _visits_of(base, overlay, cb[i], co[i], lows[i], hi, linger, True,
                           out_c, out_v, out_s, out_e, None, None, k, co[i] >= 0)
        if co[i] >= 0:
            k = _visits_of(overlay, base, co[i], cb[i], lows[i], hi, linger, False,
                           out_c, out_v, out_s, out_e, None, None, k, False)
    return out_c[:k], out_v[:k], out_s[:k], out_e[:k]


@njit(cache=True, nogil=True)
def _lower_bounds(t_in, los, his, values):
    """For each i, the first row r in [los[i], his[i]) with t_in[r] >= values[i] (his[i]
    if none): binary searches run in lockstep, each prefetching its next probe, so that
    the cache misses of all of them overlap instead of coming one after another."""
    lo, size = los.copy(), his - los
    times = t_in.reshape((t_in.shape[0], 1))
    searching = True
    while searching:
        searching = False
        for i in range(lo.shape[0]):
            if size[i] > 0:
                half = size[i] >> 1
                if t_in[lo[i] + half] < values[i]:
                    lo[i] += half + 1
                    size[i] -= half + 1
                else:
                    size[i] = half
                if size[i] > 0:
                    prefetch_read(times, lo[i] + (size[i] >> 1))
                    searching = True
    return lo


@njit(cache=True, nogil=True)
def _venue_rows(venue_off, maxexp, t_in, dwell, codes, pres_s, pres_e):
    """For each presence at venue code codes[i] (-1: absent), the rows a scan for
    overlaps with [pres_s[i], pres_e[i]) reads: those with t_in in [ps - the venue's
    longest visit, pe). Returns (starts, stops)."""
    n = codes.shape[0]
    los, his = np.zeros(2 * n, np.int64), np.zeros(2 * n, np.int64)
    values = np.zeros(2 * n, np.uint32)
    for i in range(n):
        v = codes[i]
        if v < 0:
            continue
        los[i], his[i] = venue_off[v], venue_off[v + 1]
        back = max(np.int64(maxexp[v]), dwell[v])
        values[i] = min(max(pres_s[i] - back, np.int64(0)), np.int64(0xFFFFFFFF))
        los[n + i], his[n + i] = venue_off[v], venue_off[v + 1]
        if pres_e[i] > 0xFFFFFFFF:
            los[n + i] = his[n + i]  # every row to the venue's end
        else:
            values[n + i] = max(pres_e[i], np.int64(0))
    bounds = _lower_bounds(t_in, los, his, values)
    starts, stops = bounds[:n], bounds[n:]
    for i in range(n):
        stops[i] = max(stops[i], starts[i])
    return starts, stops


@njit(cache=True, nogil=True)
def _candidates(seg, pres_c, pres_v, pres_s, pres_e, need):
    """The venue rows of one segment whose visits would overlap a presence by >= need
    seconds at their full length, as (rows, the presence of each, venue codes of the
    presences); the person view's offsets of each candidate are prefetched. pres_c
    holds the presences' venue codes in this segment where known (>= 0)."""
    venue_ids, venue_off, maxexp, person, t_in, exp, _person_ids, person_off, _pv_venue, \
        _pv_t_in, dwell, _mask = seg
    n = pres_v.shape[0]
    codes = np.empty(n, np.int64)
    for i in range(n):
        codes[i] = pres_c[i] if pres_c[i] >= 0 else _code(venue_ids, pres_v[i])
    starts, stops = _venue_rows(venue_off, maxexp, t_in, dwell, codes, pres_s, pres_e)
    room = 0
    for i in range(n):
        room += stops[i] - starts[i]
    rows, at = np.empty(room, np.int64), np.empty(room, np.int64)
    offsets = person_off.reshape((person_off.shape[0], 1))
    m = 0
    for i in range(n):
        v = codes[i]
        if v < 0:
            continue
        ps, pe, full = pres_s[i], pres_e[i], dwell[v]
        for r in range(starts[i], stops[i]):
            t = np.int64(t_in[r])
            explicit = np.int64(exp[r])
            end = t + explicit if explicit > 0 else t + full
            if min(pe, end) - max(ps, t) >= need:
                rows[m], at[m] = r, i
                m += 1
                prefetch_read(offsets, np.int64(person[r]))
    return rows[:m], at[:m], codes


AHEAD = 12


@njit(cache=True, nogil=True)
def _confirm(seg, other, is_base, rows, at, codes, pres_s, pres_e, need, found,
             out_p, out_v, out_s, out_e, out_t, out_at, out_x, k):
    """The candidates' visits (see _candidates) that overlap their presence by >= need
    seconds with their exact end, of persons not in `found`, appended to the outputs
    from k as (person id, venue id, start, end); returns the new k. In the base,
    persons marked in its mask also have check-ins in the overlay (`other`): their visits
    may end earlier, and keys the overlay holds are left to it. out_t, out_at and out_x are
    None or get each visit's t_in, its presence and 1 if it has a check-out."""
    venue_ids, _venue_off, _maxexp, person, t_in, exp, person_ids, person_off, _pv_venue, \
        pv_t_in, dwell, mask = seg
    o_venue_ids, o_venue_off, _o_maxexp, o_person, o_t_in, _o_exp, o_person_ids, \
        o_person_off, _o_pv_venue, o_pv_t_in, _o_dwell, _o_mask = other
    m = rows.shape[0]
    # Each candidate prefetches what the candidate AHEAD places later reads at random:
    # its person's id and, for a visit without check-out, the first and last of their
    # check-in times (the offsets came with _candidates); the loop starts AHEAD early.
    ids, times = person_ids.reshape((person_ids.shape[0], 1)), pv_t_in.reshape((-1, 1))
    w, last_v = -1, -1
    for j in range(-AHEAD, m):
        # The helpers of this loop are written out in it: called with the arrays,
        # they cost tens of ns a candidate (benchmarks/RESULTS.md, seventeenth session).
        if j + AHEAD < m:
            ra = rows[j + AHEAD]
            pa = np.int64(person[ra])
            prefetch_read(ids, pa)
            if exp[ra] == 0:
                lo, hi = person_off[pa], person_off[pa + 1]
                if lo < hi:
                    prefetch_read(times, lo)
                    prefetch_read(times, hi - 1)
        if j < 0:
            continue
        r, i = rows[j], at[j]
        p = np.int64(person[r])
        pid = person_ids[p]
        lo, hi = 0, found.shape[0]
        while lo < hi:  # is pid in found?
            mid = (lo + hi) >> 1
            if found[mid] < pid:
                lo = mid + 1
            else:
                hi = mid
        if lo < found.shape[0] and found[lo] == pid:
            continue
        v = codes[i]
        if v != last_v:  # the venue in the other segment
            w, last_v = _code(o_venue_ids, venue_ids[v]), v
        ps, pe = pres_s[i], pres_e[i]
        t = np.int64(t_in[r])
        explicit = np.int64(exp[r])
        s = max(ps, t)
        end = t + explicit if explicit > 0 else t + dwell[v]
        c_other = -1
        if not is_base or (mask.shape[0] > 0 and mask[p]):
            c_other = _code(o_person_ids, pid)
        if is_base and c_other >= 0 and w >= 0 and \
                venue_row(o_venue_off, o_t_in, o_person, w, t, c_other) >= 0:
            continue
        if explicit == 0:  # ends at the person's next later check-in, if earlier
            lo, hi = person_off[p], person_off[p + 1]
            while lo < hi:
                mid = (lo + hi) >> 1
                if np.int64(pv_t_in[mid]) <= t:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < person_off[p + 1] and np.int64(pv_t_in[lo]) < end:
                end = np.int64(pv_t_in[lo])
            nxt = _next_in(o_person_off, o_pv_t_in, c_other, t)  # or in `other`
            if 0 <= nxt < end:
                end = nxt
        e = min(pe, end)
        if e - s >= need:
            out_p[k], out_v[k], out_s[k], out_e[k] = pid, venue_ids[v], s, e
            if out_t is not None:
                out_t[k], out_at[k], out_x[k] = t, i, 1 if explicit > 0 else 0
            k += 1
    return k


_HASH = np.uint64(0x9E3779B97F4A7C15)  # spreads person ids over contacts_of's table
SMALL_TIE = 32  # runs of equal starts up to this long are ordered by insertion


@njit(cache=True, nogil=True)
def _insertion_by_start(p, v, s, e, order, budget):
    """Sort `order` by (start, person, end, venue) by insertion, giving up (False) after
    `budget` moves. A level's rows come presence by presence, each presence's by visit
    start: nearly in order already, but for the persons who were at a venue when the
    presence began (their start is the presence's). The comparison is written out in
    the loop: a helper taking the arrays, even inlined, cost about 80 ns a call, 8 us an
    F1 trace (benchmarks/RESULTS.md, seventeenth session)."""
    n = order.shape[0]
    for a in range(1, n):
        x = order[a]
        sx, px, ex, vx = s[x], p[x], e[x], v[x]
        b = a - 1
        while b >= 0:
            y = order[b]
            if not (sx < s[y] or (sx == s[y] and (px < p[y] or (px == p[y] and (
                    ex < e[y] or (ex == e[y] and vx < v[y])))))):
                break
            order[b + 1] = y
            b -= 1
            budget -= 1
        order[b + 1] = x
        if budget < 0:
            return False
    return True


@njit(cache=True, nogil=True)
def _start_order(p, v, s, e):
    """The rows' order by (start, person, end, venue): by insertion when they come
    nearly in order (as a level's do), else one argsort of the starts, then each run of
    equal starts (the persons already at a venue when a presence began share its start)
    by insertion, or by stable sorts when it is long."""
    n = s.shape[0]
    order = np.arange(n)
    if _insertion_by_start(p, v, s, e, order, 4 * n + 64):
        return order
    order = np.argsort(s)
    i = 0
    while i < n:
        j = i + 1
        while j < n and s[order[j]] == s[order[i]]:
            j += 1
        if 1 < j - i <= SMALL_TIE:  # (a call for each row alone cost F2 5%)
            _insertion_by_start(p, v, s, e, order[i:j], SMALL_TIE * SMALL_TIE)
        elif j - i > SMALL_TIE:  # rows the same in every key are equal: any order
            g = order[i:j].copy()
            g = g[np.argsort(v[g], kind="mergesort")]
            g = g[np.argsort(e[g], kind="mergesort")]
            order[i:j] = g[np.argsort(p[g], kind="mergesort")]
        i = j
    return order


@njit(cache=True, nogil=True)
def contacts_of(p, v, s, e):
    """A level's evidence rows (person, venue, start, end; in any order, repeats
    allowed) as its contacts: (persons, exposed_at, first row of each and, last, the
    row count; venue, start, end of the rows). Contacts are ordered by (exposed_at,
    person), each one's rows by (start, end, venue), without repeats.

    One sort by (start, person, end, venue) does it all: a person's first row in that
    order is their exposure, so persons come in contact order as they are first met
    (numbered through a small hash table), and their rows in evidence order."""
    order = _start_order(p, v, s, e)
    n = order.shape[0]
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    slots = np.full(size, -1, np.int64)
    persons = np.empty(n, np.uint64)
    exposed_at = np.empty(n, np.int64)
    group = np.empty(n, np.int64)
    counts = np.zeros(n + 1, np.int64)
    nc = 0
    for i in range(n):
        r = order[i]
        if i > 0:
            q = order[i - 1]
            if p[r] == p[q] and v[r] == v[q] and s[r] == s[q] and e[r] == e[q]:
                group[i] = -1  # a repeat
                continue
        h = np.int64(((p[r] * _HASH) >> np.uint64(32)) & np.uint64(mask))
        while slots[h] >= 0 and persons[slots[h]] != p[r]:
            h = (h + 1) & mask
        if slots[h] < 0:
            slots[h] = nc
            persons[nc], exposed_at[nc] = p[r], s[r]
            nc += 1
        group[i] = slots[h]
        counts[slots[h] + 1] += 1
    for g in range(nc):
        counts[g + 1] += counts[g]
    m = counts[nc]
    ev_v, ev_s, ev_e = np.empty(m, np.uint64), np.empty(m, np.int64), np.empty(m, np.int64)
    at = counts[:nc].copy()
    for i in range(n):
        g = group[i]
        if g >= 0:
            r = order[i]
            ev_v[at[g]], ev_s[at[g]], ev_e[at[g]] = v[r], s[r], e[r]
            at[g] += 1
    return persons[:nc], exposed_at[:nc], counts[:nc + 1], ev_v, ev_s, ev_e


@njit(cache=True, nogil=True)
def evidence(base, overlay, pres_c, pres_v, pres_s, pres_e, found, need):
    """The next level's evidence: overlaps with the presences by >= need seconds, of
    persons not in `found` (sorted ids), as rows (person, venue, start, end) in no
    order, repeats possible (contacts_of orders them). A segment without check-ins (the
    overlay, after a merge) is not searched."""
    rows_b, at_b, codes_b = _candidates(base, pres_c, pres_v, pres_s, pres_e, need)
    if overlay[0].shape[0]:
        rows_o, at_o, codes_o = _candidates(overlay, np.full(pres_c.shape[0], -1, np.int64),
                                            pres_v, pres_s, pres_e, need)
    else:
        rows_o, at_o, codes_o = rows_b[:0], at_b[:0], codes_b
    room = rows_b.shape[0] + rows_o.shape[0]
    p, v = np.empty(room, np.uint64), np.empty(room, np.uint64)
    s, e = np.empty(room, np.int64), np.empty(room, np.int64)
    k = _confirm(base, overlay, True, rows_b, at_b, codes_b, pres_s, pres_e, need, found,
                 p, v, s, e, None, None, None, 0)
    k = _confirm(overlay, base, False, rows_o, at_o, codes_o, pres_s, pres_e, need, found,
                 p, v, s, e, None, None, None, k)
    return p[:k], v[:k], s[:k], e[:k]


@njit(cache=True, nogil=True)
def zones(pres_v, pres_s, pres_e, ev_v, ev_s, offsets):
    """Zones of one level: each venue's presences merged where they overlap or touch,
    sorted by (venue, start), with the number of distinct persons (evidence rows
    offsets[g]:offsets[g + 1] are person g's) whose evidence starts in each. Returns
    (venue, start, end, exposed)."""
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
    for g in range(offsets.shape[0] - 1):
        for i in range(offsets[g], offsets[g + 1]):
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


@njit(cache=True, nogil=True)
def _room(buf, used, extra):
    """`buf`, or a copy of its first `used` values with room for `extra` more."""
    if used + extra <= buf.shape[0]:
        return buf
    out = np.empty(max(2 * buf.shape[0], used + extra), buf.dtype)
    out[:used] = buf[:used]
    return out


@njit(cache=True, nogil=True)
def trace(table, case, window_from, window_to, need, linger, depth):
    """The case's (uint64) contacts to `depth` levels and the zones of each level's
    presence (DESIGN.md, "The contact rule"), over the snapshot whose arrays `table`
    names. Returns (flat, n, m, z): one uint64 array (one array to box: each returned
    array cost about a microsecond) holding three row-major matrices one after another,
    and their numbers of rows:
    contacts [n, 5]: person, level, exposed_at, first and end row of its evidence,
        ordered by (level, exposed_at, person);
    evidence [m, 3]: venue, start, end; each contact's rows ordered by (start, end, venue);
    zones [z, 5]: venue, level, start, end, exposed; ordered by (level, venue, start).
    """
    base, overlay = _segment(table, 0), _segment(table, 1)
    found = np.full(1, case, np.uint64)
    pres_c, pres_v, pres_s, pres_e = presences(
        base, overlay, found, np.full(1, window_from, np.int64), window_to, linger)
    answer = empty_answer()
    for level in range(1, depth + 1):
        if pres_v.shape[0] == 0:
            break
        p, v, s, e = evidence(base, overlay, pres_c, pres_v, pres_s, pres_e, found, need)
        answer, new_persons, exposed_at = add_level(answer, level, pres_v, pres_s, pres_e,
                                                    p, v, s, e)
        if new_persons.shape[0] == 0:
            break
        if level < depth:
            found = np.sort(np.concatenate((found, new_persons)))
            pres_c, pres_v, pres_s, pres_e = presences(base, overlay, new_persons, exposed_at,
                                                       window_to, linger)
    return flat_answer(answer)


@njit(cache=True, nogil=True, inline="always")
def empty_answer():
    """An answer to build (add_level, flat_answer): contacts, values used, evidence
    rows, values used, zones, values used; each buffer flat uint64."""
    return np.empty(0, np.uint64), 0, np.empty(0, np.uint64), 0, np.empty(0, np.uint64), 0


@njit(cache=True, nogil=True)
def add_level(answer, level, pres_v, pres_s, pres_e, p, v, s, e):
    """`answer` with one level added from its presences (venue, start, end) and its
    evidence rows (person, venue, start, end; any order, repeats possible): the zones
    of the presences with the persons exposed in each, the level's contacts and their
    evidence (contacts_of). Returns (answer, the level's persons, their exposed_at), in
    contact order."""
    contacts, nc, evidence_rows, ne, zone_rows, nz = answer
    persons, exposed_at, offsets, ev_v, ev_s, ev_e = contacts_of(p, v, s, e)
    zv, zs, ze, counts = zones(pres_v, pres_s, pres_e, ev_v, ev_s, offsets)
    zone_rows = _room(zone_rows, nz, 5 * zv.shape[0])
    for i in range(zv.shape[0]):
        zone_rows[nz], zone_rows[nz + 1], zone_rows[nz + 2] = zv[i], level - 1, zs[i]
        zone_rows[nz + 3], zone_rows[nz + 4] = ze[i], counts[i]
        nz += 5
    n = persons.shape[0]
    contacts = _room(contacts, nc, 5 * n)
    evidence_rows = _room(evidence_rows, ne, 3 * ev_v.shape[0])
    first = ne // 3  # the number of this level's first evidence row
    for g in range(n):
        contacts[nc], contacts[nc + 1], contacts[nc + 2] = persons[g], level, exposed_at[g]
        contacts[nc + 3], contacts[nc + 4] = first + offsets[g], first + offsets[g + 1]
        nc += 5
    for r in range(ev_v.shape[0]):
        evidence_rows[ne], evidence_rows[ne + 1], evidence_rows[ne + 2] = ev_v[r], ev_s[r], \
            ev_e[r]
        ne += 3
    return (contacts, nc, evidence_rows, ne, zone_rows, nz), persons, exposed_at


@njit(cache=True, nogil=True, inline="always")
def flat_answer(answer):
    """A built answer as `trace` returns it: (flat, n, m, z)."""
    contacts, nc, evidence_rows, ne, zone_rows, nz = answer
    out = np.empty(nc + ne + nz, np.uint64)
    out[:nc] = contacts[:nc]
    out[nc:nc + ne] = evidence_rows[:ne]
    out[nc + ne:] = zone_rows[:nz]
    return out, nc // 5, ne // 3, nz // 5
