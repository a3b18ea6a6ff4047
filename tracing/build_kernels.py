"""Numba kernels that build a segment's two views by bucketing rows, not sorting them all.

Only @njit(cache=True, nogil=True) functions over contiguous arrays and scalars;
tracing/segments.py prepares their inputs. A view is rows grouped by one code (venue or
person) and ordered inside each group by a packed key: a counting sort by the code (one
pass to count, two to scatter) and then a sort of each small group, in the cache. It
replaces a full sort of packed 64-bit keys per view: at 100M rows about the same user
time (numpy's sort is vectorised), less fresh memory, whose first touch cost as much
as the work on the benchmark machine (a VM). Rows that arrive in time order (a log, a
CSV export) leave each group nearly sorted, and an insertion sort finishes it in one
pass. Merging a base with later rows (merge_*_views) is linear: nothing sorted again.
"""

from __future__ import annotations

import numpy as np
from numba import njit

EXPLICIT = np.uint32(1 << 31)
INSERTION_MOVES = 32  # an insertion sort gives up after this many moves per row


@njit(cache=True, nogil=True)
def rank_table(ids, top):
    """(sorted distinct ids, table, starts) for ids all <= top: table[id] is the id's rank
    among the distinct ids, its code, and starts the group_starts of those codes (the
    counting rides in the pass that finds the ids: no second pass over the rows). Linear,
    no sort: for ids that are small integers."""
    table = np.zeros(top + 1, np.uint32)
    for x in ids:
        table[x] += 1
    n = 0
    for x in range(top + 1):
        n += table[x] > 0
    distinct = np.empty(n, np.uint64)
    starts = np.empty(n + 1, np.int64)
    starts[0] = 0
    k = 0
    for x in range(top + 1):
        count = table[x]
        if count:
            distinct[k] = x
            starts[k + 1] = starts[k] + count
            table[x] = k
            k += 1
    return distinct, table, starts


@njit(cache=True, nogil=True)
def codes_from_table(ids, table, codes):
    """codes[i] = table[ids[i]] (see rank_table)."""
    for i in range(ids.shape[0]):
        codes[i] = table[ids[i]]


@njit(cache=True, nogil=True)
def group_starts(codes, groups, off):
    """off[g] = the first row of group g when rows are grouped by `codes` (< groups);
    off has groups + 1 entries, the last the row count."""
    off[:] = 0
    for c in codes:
        off[c + 1] += 1
    for g in range(groups):
        off[g + 1] += off[g]


COARSE_BITS = 10  # a first pass spreads rows over at most 2**10 groups of codes


def coarse_shift(groups: int) -> int:
    """The shift that maps codes below `groups` to at most 2**COARSE_BITS coarse groups."""
    return max(int(groups - 1).bit_length() - COARSE_BITS, 0)


@njit(cache=True, nogil=True)
def _coarse_starts(starts, shift):
    """The first row of each coarse group (codes >> shift) and, last, the row count."""
    groups = starts.shape[0] - 1
    coarse = np.empty(((groups - 1) >> shift) + 2 if groups else 1, np.int64)
    for c in range(coarse.shape[0]):
        coarse[c] = starts[min(c << shift, groups)]
    return coarse


@njit(cache=True, nogil=True)
def _regroup(starts, shift, coarse, codes, keys, vals):
    """Rows grouped by coarse group (codes >> shift), each coarse group's rows
    regrouped by code in place, stably, through a scratch copy of one coarse group:
    small enough to stay in the cache. vals may be empty (keys only)."""
    pairs = vals.shape[0] > 0
    widest = 0
    for c in range(coarse.shape[0] - 1):
        widest = max(widest, coarse[c + 1] - coarse[c])
    s_code, s_key = np.empty(widest, codes.dtype), np.empty(widest, keys.dtype)
    s_val = np.empty(widest if pairs else 0, vals.dtype)
    fill = starts[:-1].copy()
    for c in range(coarse.shape[0] - 1):
        lo, n = coarse[c], coarse[c + 1] - coarse[c]
        s_code[:n], s_key[:n] = codes[lo:lo + n], keys[lo:lo + n]
        if pairs:
            s_val[:n] = vals[lo:lo + n]
        for r in range(n):
            pos = fill[s_code[r]]
            fill[s_code[r]] = pos + 1
            keys[pos] = s_key[r]
            if pairs:
                vals[pos] = s_val[r]


@njit(cache=True, nogil=True)
def scatter_by_venue(vcode, t_in, pcode, t_out, t0, pb, starts, shift, tmp_code, keys,
                     durs):
    """Rows grouped by venue code (stably: input order within a venue): keys[pos] =
    (t_in - t0) << pb | person code, durs[pos] = explicit duration (0: no check-out);
    starts: group_starts of the venue codes; tmp_code: scratch as long as the rows.

    Two passes, as a radix sort does: first by coarse group (code >> shift: consecutive
    venues, so each coarse group's rows end in one contiguous range), then each coarse
    group, in the cache, by venue. One pass straight to hundreds of thousands of
    venues missed the cache on every row."""
    pb_shift = np.uint64(pb)
    coarse = _coarse_starts(starts, shift)
    fill = coarse.copy()
    for i in range(vcode.shape[0]):
        c = vcode[i] >> shift
        pos = fill[c]
        fill[c] = pos + 1
        tmp_code[pos] = vcode[i]
        keys[pos] = (np.uint64(t_in[i] - t0) << pb_shift) | np.uint64(pcode[i])
        durs[pos] = np.uint32(t_out[i] - t_in[i]) if t_out[i] > 0 else np.uint32(0)
    _regroup(starts, shift, coarse, tmp_code, keys, durs)


@njit(cache=True, nogil=True)
def _insertion_sort(keys, vals, lo, hi, budget):
    """Sort keys[lo:hi] (with vals, if not empty) by insertion; False, with the rows
    permuted but not sorted, once `budget` moves are spent."""
    pairs = vals.shape[0] > 0
    moves = 0
    for i in range(lo + 1, hi):
        k = keys[i]
        if keys[i - 1] <= k:
            continue
        v = vals[i] if pairs else 0
        j = i
        while j > lo and keys[j - 1] > k:
            keys[j] = keys[j - 1]
            if pairs:
                vals[j] = vals[j - 1]
            j -= 1
        keys[j] = k
        if pairs:
            vals[j] = v
        moves += i - j
        if moves > budget:
            return False
    return True


@njit(cache=True, nogil=True)
def _sort_group(keys, vals, lo, hi):
    """Sort keys[lo:hi] (and vals alike, if not empty), in place."""
    if hi - lo < 2 or _insertion_sort(keys, vals, lo, hi, INSERTION_MOVES * (hi - lo)):
        return
    if vals.shape[0] == 0:
        keys[lo:hi].sort()
        return
    order = np.argsort(keys[lo:hi])
    k, v = keys[lo:hi][order], vals[lo:hi][order]
    keys[lo:hi] = k
    vals[lo:hi] = v


@njit(cache=True, nogil=True)
def _emit_venue(keys, durs, lo, hi, pb, tmask, t0, person, t_in, exp, k):
    """Sort one venue's rows (keys[lo:hi] = (t_in - t0) << pb | person code, with any
    bits above the time's masked off by tmask; durs alike) and write its distinct rows
    from row k on as uint32 person, t_in and exp columns, merging exact duplicates (the
    longest explicit duration wins). Returns the next row. The outputs may be the inputs'
    own memory when k <= lo (each row is written at or before its first)."""
    pmask = (np.uint64(1) << np.uint64(pb)) - np.uint64(1)
    shift = np.uint64(pb)
    _sort_group(keys, durs, lo, hi)
    for r in range(lo, hi):
        if r > lo and keys[r] == keys[r - 1]:
            exp[k - 1] = max(exp[k - 1], durs[r])
            continue
        person[k] = np.uint32(keys[r] & pmask)
        t_in[k] = np.uint32(np.int64((keys[r] >> shift) & tmask) + t0)
        exp[k] = durs[r]
        k += 1
    return k


@njit(cache=True, nogil=True)
def finish_venue_view(starts, keys, durs, pb, t0, venue_off, person, t_in, exp):
    """Sort each venue's rows (starts[v]:starts[v + 1] of keys, durs) and merge exact
    duplicates (the longest explicit duration wins), writing the distinct rows as
    uint32 person, t_in and exp columns; venue_off gets each venue's distinct rows.
    Returns how many rows were written (person, t_in, exp may be longer)."""
    every = np.uint64(0xFFFFFFFFFFFFFFFF)
    k = 0
    venue_off[0] = 0
    for v in range(starts.shape[0] - 1):
        k = _emit_venue(keys, durs, starts[v], starts[v + 1], pb, every, t0, person, t_in,
                        exp, k)
        venue_off[v + 1] = k
    return k


@njit(cache=True, nogil=True)
def scatter_by_person(venue_off, person, t_in, exp, t0, vb, starts, shift, tmp_code, keys):
    """The venue view's rows grouped by person code (starts: group_starts of `person`):
    keys[pos] = (t_in - t0) << (vb + 1) | venue code << 1 | (1 if the visit has an
    explicit check-out). Two passes, as in scatter_by_venue."""
    t_shift = np.uint64(vb + 1)
    coarse = _coarse_starts(starts, shift)
    fill = coarse.copy()
    for v in range(venue_off.shape[0] - 1):
        code = np.uint64(v) << np.uint64(1)
        for r in range(venue_off[v], venue_off[v + 1]):
            c = person[r] >> shift
            pos = fill[c]
            fill[c] = pos + 1
            tmp_code[pos] = person[r]
            keys[pos] = ((np.uint64(t_in[r]) - np.uint64(t0)) << t_shift) | code \
                | np.uint64(exp[r] > 0)
    _regroup(starts, shift, coarse, tmp_code, keys, np.empty(0, np.uint32))


@njit(cache=True, nogil=True)
def finish_person_view(person_off, keys, vb, t0, pv_venue, pv_t_in):
    """Sort each person's keys (scatter_by_person) and unpack them: pv_t_in, and
    pv_venue = venue code with bit 31 set for an explicit check-out."""
    none = np.empty(0, np.uint32)
    vmask = (np.uint64(1) << np.uint64(vb)) - np.uint64(1)
    t_shift = np.uint64(vb + 1)
    for p in range(person_off.shape[0] - 1):
        lo, hi = person_off[p], person_off[p + 1]
        _sort_group(keys, none, lo, hi)
        for r in range(lo, hi):
            key = keys[r]
            pv_t_in[r] = np.uint32(np.int64(key >> t_shift) + t0)
            venue = np.uint32((key >> np.uint64(1)) & vmask)
            pv_venue[r] = venue | EXPLICIT if key & np.uint64(1) else venue


# ---- merging two segments (a base and the rows that came after it) ---------------------

@njit(cache=True, nogil=True)
def union_ids(a, b, a_code, b_code):
    """The sorted union of two sorted distinct id arrays; a_code[i] (b_code[j]) gets the
    position of a[i] (b[j]) in it."""
    out = np.empty(a.shape[0] + b.shape[0], np.uint64)
    i = j = k = 0
    while i < a.shape[0] or j < b.shape[0]:
        if j == b.shape[0] or (i < a.shape[0] and a[i] < b[j]):
            out[k] = a[i]
            a_code[i] = k
            i += 1
        elif i == a.shape[0] or b[j] < a[i]:
            out[k] = b[j]
            b_code[j] = k
            j += 1
        else:
            out[k] = a[i]
            a_code[i], b_code[j] = k, k
            i += 1
            j += 1
        k += 1
    return out[:k].copy()


@njit(cache=True, nogil=True)
def _old_codes(groups, new_code):
    """For each new code below `groups`, the old code that maps to it, or -1 (an empty
    new_code: the codes stay)."""
    if new_code.shape[0] == 0:
        return np.arange(groups)
    old = np.full(groups, -1, np.int64)
    for i in range(new_code.shape[0]):
        old[new_code[i]] = i
    return old


@njit(cache=True, nogil=True)
def merge_venue_views(a_off, a_person, a_t, a_exp, a_vcode, a_pcode, b_off, b_person, b_t,
                      b_exp, b_vcode, b_pcode, off, person, t_in, exp):
    """The venue views of segments a and b as one, in the union's codes (a_vcode maps
    a's venue codes to the union's, and so on; an empty a_pcode or b_pcode means the
    codes stay; off has a union venue count + 1 entries): each venue's two runs merged
    by (t_in, person), a check-in in both once with the longer explicit visit. Returns
    the rows written. Mapping every row's person code missed the cache on each row;
    once a population is settled, the base's codes do not change."""
    a_map, b_map = a_pcode.shape[0] > 0, b_pcode.shape[0] > 0
    a_of = _old_codes(off.shape[0] - 1, a_vcode)
    b_of = _old_codes(off.shape[0] - 1, b_vcode)
    k = 0
    off[0] = 0
    for v in range(off.shape[0] - 1):
        i = ie = j = je = 0
        if a_of[v] >= 0:
            i, ie = a_off[a_of[v]], a_off[a_of[v] + 1]
        if b_of[v] >= 0:
            j, je = b_off[b_of[v]], b_off[b_of[v] + 1]
        while i < ie or j < je:
            ka = kb = np.uint64(0xFFFFFFFFFFFFFFFF)
            if i < ie:
                p = a_pcode[a_person[i]] if a_map else a_person[i]
                ka = (np.uint64(a_t[i]) << np.uint64(32)) | np.uint64(p)
            if j < je:
                p = b_pcode[b_person[j]] if b_map else b_person[j]
                kb = (np.uint64(b_t[j]) << np.uint64(32)) | np.uint64(p)
            if ka <= kb:
                key, e = ka, a_exp[i]
                i += 1
                if ka == kb:
                    e = max(e, b_exp[j])
                    j += 1
            else:
                key, e = kb, b_exp[j]
                j += 1
            t_in[k] = np.uint32(key >> np.uint64(32))
            person[k] = np.uint32(key & np.uint64(0xFFFFFFFF))
            exp[k] = e
            k += 1
        off[v + 1] = k
    return k


@njit(cache=True, nogil=True)
def merge_person_views(a_off, a_venue, a_t, a_vcode, a_pcode, b_off, b_venue, b_t, b_vcode,
                       b_pcode, off, pv_venue, pv_t_in):
    """The person views of segments a and b as one, in the union's codes (as
    merge_venue_views): each person's runs merged by (t_in, venue); a check-in in both
    once, explicit if either has a check-out."""
    a_map, b_map = a_vcode.shape[0] > 0, b_vcode.shape[0] > 0
    a_of = _old_codes(off.shape[0] - 1, a_pcode)
    b_of = _old_codes(off.shape[0] - 1, b_pcode)
    k = 0
    off[0] = 0
    for p in range(off.shape[0] - 1):
        i = ie = j = je = 0
        if a_of[p] >= 0:
            i, ie = a_off[a_of[p]], a_off[a_of[p] + 1]
        if b_of[p] >= 0:
            j, je = b_off[b_of[p]], b_off[b_of[p] + 1]
        while i < ie or j < je:
            ka = kb = np.uint64(0xFFFFFFFFFFFFFFFF)
            if i < ie:
                v = a_venue[i] & ~EXPLICIT
                ka = (np.uint64(a_t[i]) << np.uint64(32)) | np.uint64(a_vcode[v] if a_map else v)
            if j < je:
                v = b_venue[j] & ~EXPLICIT
                kb = (np.uint64(b_t[j]) << np.uint64(32)) | np.uint64(b_vcode[v] if b_map else v)
            if ka <= kb:
                key, flag = ka, a_venue[i] & EXPLICIT
                i += 1
                if ka == kb:
                    flag |= b_venue[j] & EXPLICIT
                    j += 1
            else:
                key, flag = kb, b_venue[j] & EXPLICIT
                j += 1
            pv_t_in[k] = np.uint32(key >> np.uint64(32))
            pv_venue[k] = np.uint32(key & np.uint64(0xFFFFFFFF)) | flag
            k += 1
        off[p + 1] = k
    return k


# ---- the two views at once, each from the raw rows (segments._build_by_keys) -----------
#
# Each view's rows are grouped by their code in two passes as above, but without a
# column of codes: the code's low bits (the ones below the coarse group) ride in the
# key's top bits, above the bits that order the group, and the rows of one coarse group
# sort into their groups by key alone. Each view keeps its keys as two 32-bit words in
# two of its own output columns until they are unpacked in place: no scratch columns but
# the venue and person codes. (Looking venue codes up in the venue table as rows are
# read, instead of a column of codes, cost more than the column: the table of 446k venues
# is larger than the L2 cache, and each row's lookup ran three times, about 15 ns a row
# each.) Both views read the raw rows, so the
# two run in two threads; the venue view's second pass (regroup, sort, unpack) goes by
# coarse groups, which either thread can take: the calling thread from the first, the
# other from the last once its person view is done (finish_venue_coarse).

@njit(cache=True, nogil=True)
def fill_zero(column):
    """column[:] = 0, in order, without the GIL."""
    for i in range(column.shape[0]):
        column[i] = 0


@njit(cache=True, nogil=True)
def coarse_starts(starts, shift):
    """The first row of each coarse group (codes >> shift) and, last, the row count."""
    return _coarse_starts(starts, shift)


@njit(cache=True, nogil=True)
def scatter_venue_words(vcode, t_in, pcode, t_out, t0, pb, tb, coarse, shift, high, low_w,
                        durs):
    """The first pass of the venue view: the raw rows grouped by coarse group (venue code
    >> shift; coarse: coarse_starts), stably, each row's key =
    venue code's low `shift` bits << (tb + pb) | (t_in - t0) << pb | person code
    (tb + pb + shift <= 64) written as its high and low 32-bit words, and durs[pos] =
    the explicit duration (0: no check-out)."""
    pb_shift, low = np.uint64(pb), np.uint64(tb + pb)
    word = np.uint64(32)
    fine = np.uint32((1 << shift) - 1)
    fill = coarse[:-1].copy()
    for i in range(vcode.shape[0]):
        v = vcode[i]
        c = v >> shift
        pos = fill[c]
        fill[c] = pos + 1
        key = (np.uint64(t_in[i] - t0) << pb_shift) | np.uint64(pcode[i])
        if shift:
            key |= np.uint64(v & fine) << low
        high[pos] = np.uint32(key >> word)
        low_w[pos] = np.uint32(key & np.uint64(0xFFFFFFFF))
        durs[pos] = np.uint32(t_out[i] - t_in[i]) if t_out[i] > 0 else np.uint32(0)


@njit(cache=True, nogil=True)
def finish_venue_coarse(c_lo, c_hi, backward, at, coarse, starts, shift, pb, tb, t0, high,
                        low_w, durs, venue_off, maxexp, person, t_in, exp, t_key, t_dur,
                        o_person, o_t, o_exp):
    """The second pass of the venue view for coarse groups c_lo .. c_hi - 1 (after
    scatter_venue_words): each coarse group's rows (words high, low_w and durs) regrouped
    by venue into t_key, t_dur (scratch as long as the widest coarse group), each venue's
    rows sorted and its distinct rows unpacked (_emit_venue) into person, t_in, exp,
    which are the memory of high, low_w, durs: each coarse group is read whole before its
    rows are written. Forward, the groups in order, the rows written from row `at` on
    (at <= coarse[c_lo]); backward, from the last group down, each group's rows written
    just below row `at` (at >= coarse[c_hi]) through o_person, o_t, o_exp (scratch like
    t_key). venue_off[v + 1] gets the end row of venue v, maxexp[v] its longest explicit
    visit (kernels.venue_max_explicit, here while the rows are in the cache). Returns the
    new `at`."""
    groups = starts.shape[0] - 1
    word, low = np.uint64(32), np.uint64(min(tb + pb, 63))
    tmask = (np.uint64(1) << np.uint64(tb)) - np.uint64(1)
    fine = (np.uint64(1) << np.uint64(shift)) - np.uint64(1)
    fill = np.empty(1 << shift, np.int64)
    for step in range(c_hi - c_lo):
        c = c_hi - 1 - step if backward else c_lo + step
        lo, n = coarse[c], coarse[c + 1] - coarse[c]
        v_lo, v_hi = c << shift, min((c + 1) << shift, groups)
        for v in range(v_lo, v_hi):
            fill[v - v_lo] = starts[v] - lo
        for r in range(n):
            key = (np.uint64(high[lo + r]) << word) | np.uint64(low_w[lo + r])
            f = np.int64((key >> low) & fine) if shift else 0
            pos = fill[f]
            fill[f] = pos + 1
            t_key[pos] = key
            t_dur[pos] = durs[lo + r]
        for v in range(v_lo, v_hi):
            longest = np.uint32(0)
            for r in range(starts[v] - lo, starts[v + 1] - lo):
                longest = max(longest, t_dur[r])
            maxexp[v] = longest
        if not backward:
            for v in range(v_lo, v_hi):
                at = _emit_venue(t_key, t_dur, starts[v] - lo, starts[v + 1] - lo, pb, tmask,
                                 t0, person, t_in, exp, at)
                venue_off[v + 1] = at
            continue
        m = 0
        for v in range(v_lo, v_hi):
            m = _emit_venue(t_key, t_dur, starts[v] - lo, starts[v + 1] - lo, pb, tmask, t0,
                            o_person, o_t, o_exp, m)
            venue_off[v + 1] = m
        at -= m
        person[at:at + m] = o_person[:m]
        t_in[at:at + m] = o_t[:m]
        exp[at:at + m] = o_exp[:m]
        for v in range(v_lo, v_hi):
            venue_off[v + 1] += at
    return at


@njit(cache=True, nogil=True)
def close_gap(front, back, n, person, t_in, exp, venue_off, v_back):
    """After finish_venue_coarse from both ends (rows 0 .. front and back .. n written,
    venues v_back and later from the back): move the back rows down to row `front` and
    their venues' ends with them. Returns the row count."""
    gap = back - front
    if gap:
        for r in range(back, n):
            person[r - gap] = person[r]
            t_in[r - gap] = t_in[r]
            exp[r - gap] = exp[r]
        for v in range(v_back, venue_off.shape[0] - 1):
            venue_off[v + 1] -= gap
    return n - gap


# The person view's keys without a scratch column: each 64-bit key is kept as two
# 32-bit words in the view's own two output columns (high word in pv_t_in, low in
# pv_venue) until each person's rows are sorted and unpacked in place.

@njit(cache=True, nogil=True)
def _regroup_words(starts, shift, coarse, high, low_w, low):
    """_regroup_keys for keys split into high and low words."""
    if shift == 0:
        return  # one code per coarse group: already in place
    widest = 0
    for c in range(coarse.shape[0] - 1):
        widest = max(widest, coarse[c + 1] - coarse[c])
    s_key = np.empty(widest, np.uint64)
    fill = starts[:-1].copy()
    low_shift, word = np.uint64(min(low, 63)), np.uint64(32)
    for c in range(coarse.shape[0] - 1):
        lo, n = coarse[c], coarse[c + 1] - coarse[c]
        for r in range(n):
            s_key[r] = (np.uint64(high[lo + r]) << word) | np.uint64(low_w[lo + r])
        base = c << shift
        for r in range(n):
            code = base | np.int64(s_key[r] >> low_shift)
            pos = fill[code]
            fill[code] = pos + 1
            high[pos] = np.uint32(s_key[r] >> word)
            low_w[pos] = np.uint32(s_key[r] & np.uint64(0xFFFFFFFF))


@njit(cache=True, nogil=True)
def scatter_person_words(pcode, t_in, vcode, t_out, t0, vb, tb, starts, shift, high, low_w):
    """The raw rows grouped by person code (starts: group_starts of pcode), each row's
    key = person code's low `shift` bits << (tb + vb + 1) | (t_in - t0) << (vb + 1) |
    venue code << 1 | (1 if t_out > 0) (tb + vb + 1 + shift <= 64) written as its high
    and low 32-bit words."""
    t_shift, low = np.uint64(vb + 1), np.uint64(tb + vb + 1)
    word = np.uint64(32)
    fine = np.uint32((1 << shift) - 1)
    coarse = _coarse_starts(starts, shift)
    fill = coarse.copy()
    for i in range(pcode.shape[0]):
        p = pcode[i]
        c = p >> shift
        pos = fill[c]
        fill[c] = pos + 1
        key = (np.uint64(t_in[i] - t0) << t_shift) | (np.uint64(vcode[i]) << np.uint64(1)) \
            | np.uint64(t_out[i] > 0)
        if shift:
            key |= np.uint64(p & fine) << low
        high[pos] = np.uint32(key >> word)
        low_w[pos] = np.uint32(key & np.uint64(0xFFFFFFFF))
    _regroup_words(starts, shift, coarse, high, low_w, tb + vb + 1)


@njit(cache=True, nogil=True)
def finish_person_words(starts, pv_t_in, pv_venue, vb, tb, t0, person_off):
    """Sort each person's keys (scatter_person_words), merge a check-in's copies
    (explicit if any copy is) and unpack them as finish_person_view does, in place:
    pv_t_in and pv_venue hold the words on entry and the view on return (each person's
    keys are copied out before their rows are written, and row k <= the rows read);
    person_off gets each person's distinct rows. Returns how many rows were written."""
    none = np.empty(0, np.uint32)
    widest = 0
    for p in range(starts.shape[0] - 1):
        widest = max(widest, starts[p + 1] - starts[p])
    buf = np.empty(widest, np.uint64)
    vmask = (np.uint64(1) << np.uint64(vb)) - np.uint64(1)
    tmask = (np.uint64(1) << np.uint64(tb)) - np.uint64(1)
    t_shift, one, word = np.uint64(vb + 1), np.uint64(1), np.uint64(32)
    k = 0
    person_off[0] = 0
    for p in range(starts.shape[0] - 1):
        lo, n = starts[p], starts[p + 1] - starts[p]
        for r in range(n):
            buf[r] = (np.uint64(pv_t_in[lo + r]) << word) | np.uint64(pv_venue[lo + r])
        _sort_group(buf, none, 0, n)
        for r in range(n):
            key = buf[r]
            if r > 0 and (key >> one) == (buf[r - 1] >> one):
                if key & one:  # a copy with a check-out (flag 0 sorts first)
                    pv_venue[k - 1] |= EXPLICIT
                continue
            pv_t_in[k] = np.uint32(np.int64((key >> t_shift) & tmask) + t0)
            venue = np.uint32((key >> one) & vmask)
            pv_venue[k] = venue | EXPLICIT if key & one else venue
            k += 1
        person_off[p + 1] = k
    return k
