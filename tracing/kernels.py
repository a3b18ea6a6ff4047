"""Numba kernels of the co-location index: building segments, scanning them, and taking
appended batches in.

Only @njit(cache=True) functions over contiguous arrays and scalars live here (with a
cache prefetch from decoder/prefetch.py); the callers (tracing/segments.py, tracing/exposure.py,
tracing/checkins.py, tracing/index.py) check dtypes, prepare inputs and wrap results.
Every kernel releases the GIL (nogil): a merge building a segment in the background does
not stop appends, and appenders group their batches in parallel.

A segment's venue view stores each visit's explicit duration `exp` (t_out - t_in, 0 when
there is no check-out). A visit without one ends at min(t_in + dwell(venue), the same
person's next strictly later t_in), and that next t_in is read from the person view when
a query needs it: nothing derived from the next check-in or the dwell is stored, so a
dwell change or a rule's default dwell needs no rebuild. The person view stores each
visit's venue code with bit 31 set when the visit has an explicit check-out.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from decoder.prefetch import prefetch_write

EXPLICIT = np.uint32(1 << 31)
LOW_BITS = np.uint32((1 << 31) - 1)


# ---- validating -------------------------------------------------------------------

@njit(cache=True, nogil=True)
def check_times(t_in, t_out, max_time, max_duration):
    """(first bad row, its problem, whether any t_out is negative). Problems: 1 t_in out
    of range, 2 t_out not after t_in, 3 visit too long; (-1, 0, ...) when all are good."""
    negative = False
    for i in range(t_in.shape[0]):
        if t_in[i] < 0 or t_in[i] >= max_time:
            return i, 1, negative
        if t_out[i] < 0:
            negative = True
        elif t_out[i] > 0 and t_out[i] <= t_in[i]:
            return i, 2, negative
        elif t_out[i] > 0 and t_out[i] - t_in[i] > max_duration:
            return i, 3, negative
    return -1, 0, negative


# ---- building ------------------------------------------------------------------------

# Large outputs are allocated by the caller (tracing/column_files.py: columns mapped
# from their files, scratch in 4 KB pages): on this VM, where fresh memory is costly,
# which kind of page a column gets decides much of a 100M build (benchmarks/RESULTS.md).

@njit(cache=True, nogil=True)
def radix_sort_pairs(keys, values, bits, keys_tmp, values_tmp):
    """Sort keys (uint64 below 2**bits) with their values, LSD radix, 11 bits a pass;
    the *_tmp arrays are scratch of the same sizes. Far faster than an argsort and a
    gather for tens of millions of pairs. One read counts the digits of every pass, and
    a pass whose digit is the same for every key is skipped."""
    n = keys.shape[0]
    passes = (bits + 10) // 11
    count = np.zeros((max(passes, 1), 2049), np.int64)
    for i in range(n):
        k = keys[i]
        for j in range(passes):
            count[j, ((k >> np.uint64(11 * j)) & np.uint64(2047)) + 1] += 1
    src_k, src_v, dst_k, dst_v = keys, values, keys_tmp, values_tmp
    moved = 0
    for j in range(passes):
        if count[j].max() == n:
            continue
        for d in range(2048):
            count[j, d + 1] += count[j, d]
        shift = np.uint64(11 * j)
        for i in range(n):
            d = (src_k[i] >> shift) & np.uint64(2047)
            pos = count[j, d]
            dst_k[pos] = src_k[i]
            dst_v[pos] = src_v[i]
            count[j, d] = pos + 1
        src_k, src_v, dst_k, dst_v = dst_k, dst_v, src_k, src_v
        moved += 1
    if moved % 2:
        keys[:] = src_k
        values[:] = src_v


@njit(cache=True, nogil=True)
def venue_max_explicit(venue_off, exp):
    """Per venue, the longest explicit visit (0 if none): bounds how far back to scan."""
    out = np.zeros(venue_off.shape[0] - 1, np.uint32)
    for v in range(venue_off.shape[0] - 1):
        for r in range(venue_off[v], venue_off[v + 1]):
            out[v] = max(out[v], exp[r])
    return out


# ---- reading one visit -----------------------------------------------------------------

@njit(cache=True, nogil=True, inline="always")
def venue_row(venue_off, t_in, person, v, t, p):
    """The venue-view row of check-in (venue code v, t_in t, person code p), or -1."""
    lo, hi = venue_off[v], venue_off[v + 1]
    r = lo + np.searchsorted(t_in[lo:hi], np.uint32(t))
    while r < hi and np.int64(t_in[r]) == t:
        if np.int64(person[r]) == p:
            return r
        r += 1
    return -1


@njit(cache=True, nogil=True, inline="always")
def next_later(person_off, pv_t_in, p, t):
    """Person p's first t_in strictly after t, or -1."""
    lo, hi = person_off[p], person_off[p + 1]
    j = lo + np.searchsorted(pv_t_in[lo:hi], np.uint32(t), side="right")
    return np.int64(pv_t_in[j]) if j < hi else np.int64(-1)


@njit(cache=True, nogil=True)
def find_keys(venue_off, t_in, person, vcodes, times, pcodes):
    """For each key (venue code, t_in, person code), its venue-view row or -1."""
    out = np.full(vcodes.shape[0], -1, np.int64)
    for i in range(vcodes.shape[0]):
        if vcodes[i] >= 0 and pcodes[i] >= 0:
            out[i] = venue_row(venue_off, t_in, person, vcodes[i], times[i], pcodes[i])
    return out


@njit(cache=True, nogil=True)
def lookup_codes(sorted_ids, ids):
    """The position of each id in sorted_ids, or -1 where it is absent."""
    out = np.empty(ids.shape[0], np.int64)
    for i in range(ids.shape[0]):
        j = np.searchsorted(sorted_ids, ids[i])
        out[i] = j if j < sorted_ids.shape[0] and sorted_ids[j] == ids[i] else -1
    return out


# ---- appending -------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def pack_word(order, c0, lo0, c1, lo1, shift1, c2, lo2, shift2, fields, out):
    """out[i] = the first `fields` (1-3) uint64 columns of row order[i], each less its
    minimum, packed: (c2 - lo2) << shift2 | (c1 - lo1) << shift1 | (c0 - lo0)."""
    for i in range(order.shape[0]):
        r = order[i]
        k = c0[r] - lo0
        if fields > 1:
            k |= (c1[r] - lo1) << shift1
        if fields > 2:
            k |= (c2[r] - lo2) << shift2
        out[i] = k


@njit(cache=True, nogil=True)
def sort_runs(hi, lo_by_row, order, longest):
    """Rows `order` sorted by their high key words `hi` only: sort each run of equal
    `hi` by the low word of its rows (insertion sort, stable), which leaves them sorted
    by both words. Returns False, having changed nothing, if a run is longer than
    `longest` (many rows of one person: the caller sorts by both words instead)."""
    n = hi.shape[0]
    start = 0
    while start < n:  # check first, so that a refusal leaves `order` as it was
        end = start + 1
        while end < n and hi[end] == hi[start]:
            end += 1
        if end - start > longest:
            return False
        start = end
    start = 0
    while start < n:
        end = start + 1
        while end < n and hi[end] == hi[start]:
            end += 1
        for i in range(start + 1, end):
            row = order[i]
            j = i
            while j > start and lo_by_row[order[j - 1]] > lo_by_row[row]:
                order[j] = order[j - 1]
                j -= 1
            order[j] = row
        start = end
    return True


@njit(cache=True, nogil=True)
def squeeze_sorted(order, person, venue, t_in, t_out, out_p, out_v, out_t, out_o, first):
    """The rows taken in `order` (sorted by key) as distinct keys, each with its largest
    t_out; first[i] tells whether position i of `order` starts a key. Returns the count."""
    k = -1
    for i in range(order.shape[0]):
        r = order[i]
        if k >= 0 and person[r] == out_p[k] and venue[r] == out_v[k] and t_in[r] == out_t[k]:
            first[i] = False
            out_o[k] = max(out_o[k], t_out[r])
        else:
            k += 1
            out_p[k], out_v[k], out_t[k], out_o[k] = person[r], venue[r], t_in[r], t_out[r]
            first[i] = True
    return k + 1


@njit(cache=True, inline="always")
def _field(hi, lo, spec):
    """One field out of a key's words: spec = (word: 1 high, 0 low; shift; bits; minimum)."""
    word = hi if spec[0] else lo
    mask = ~np.uint64(0) if spec[2] >= 64 else (np.uint64(1) << spec[2]) - np.uint64(1)
    return ((word >> spec[1]) & mask) + spec[3]


@njit(cache=True, nogil=True)
def squeeze_words(hi, lo_by_row, order, t_out, explicit, t_spec, v_spec, p_spec, out_p,
                  out_v, out_t, out_o, first):
    """As squeeze_sorted, for keys of one or two words (pack_word): `hi` is sorted (the
    high word, or the only one), `lo_by_row` the low word by input row (empty if one).
    The fields come out of the words, so no id column is read through `order`, and
    t_out only if any row has one (`explicit`). Specs: see _field (uint64 tuples)."""
    two = lo_by_row.shape[0] > 0
    k = -1
    prev_lo = np.uint64(0)
    for i in range(hi.shape[0]):
        lo = lo_by_row[order[i]] if two else np.uint64(0)
        if k >= 0 and hi[i] == hi[i - 1] and lo == prev_lo:
            first[i] = False
            if explicit:
                out_o[k] = max(out_o[k], t_out[order[i]])
        else:
            k += 1
            out_p[k] = _field(hi[i], lo, p_spec)
            out_v[k] = _field(hi[i], lo, v_spec)
            out_t[k] = np.int64(_field(hi[i], lo, t_spec))
            out_o[k] = t_out[order[i]] if explicit else 0
            first[i] = True
        prev_lo = lo
    return k + 1


@njit(cache=True, nogil=True)
def base_exp(venue_ids, venue_off, v_t_in, v_person, v_exp, person_ids, t_max,
             person, venue, t_in, stored):
    """stored[i] = the segment's explicit duration of key i (0: none), -1 where the
    segment lacks it. Most new check-ins are later than anything stored: those cost a
    comparison, and the person dictionary is searched only when the venue's time range
    holds t_in[i]."""
    for i in range(person.shape[0]):
        stored[i] = -1
        t = t_in[i]
        if t > t_max:
            continue
        v = np.searchsorted(venue_ids, venue[i])
        if v == venue_ids.shape[0] or venue_ids[v] != venue[i]:
            continue
        lo, hi = venue_off[v], venue_off[v + 1]
        if t < np.int64(v_t_in[lo]) or t > np.int64(v_t_in[hi - 1]):
            continue
        p = np.searchsorted(person_ids, person[i])
        if p == person_ids.shape[0] or person_ids[p] != person[i]:
            continue
        r = venue_row(venue_off, v_t_in, v_person, v, t, p)
        if r >= 0:
            stored[i] = v_exp[r]


# The head's keys: open addressing with linear probing over rows of three uint64 words,
# (person, venue, t_in << 32 | explicit duration + 1): one cache line or two per probe,
# where a numba dict of tuples took several. The third word is never 0 in a used slot, so
# a table of zeros is empty and costs no page until a key lands on it.
_LOW = np.uint64(0xFFFFFFFF)
_MIX1 = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xC2B2AE3D27D4EB4F)
_MIX3 = np.uint64(0x165667B19E3779F9)


PREFETCH_AHEAD = 16  # keys whose slots are on their way while one is probed


@njit(cache=True, inline="always")
def _slot(person, venue, t, shift):
    h = person * _MIX1 ^ venue * _MIX2 ^ np.uint64(t) * _MIX3
    h ^= h >> np.uint64(29)
    return np.int64((h * _MIX1) >> shift)


@njit(cache=True, nogil=True)
def head_upsert(table, shift, person, venue, t_in, t_out, stored, changed, write):
    """Look distinct keys up in a table of head keys and, if `write`, record those that
    change the store. On entry stored[i] is key i's explicit duration as stored elsewhere
    (-1: nowhere); on return the larger of that and the table's. changed[i]: the key is
    new, or t_out[i] is a longer explicit visit than stored. Returns (keys added to the
    table, keys new to the index). Each key costs a cache miss: the slots of the next
    keys are prefetched meanwhile, which halves the time of a batch."""
    mask = table.shape[0] - 1
    added = new = 0
    n = person.shape[0]
    for i in range(min(PREFETCH_AHEAD, n)):
        prefetch_write(table, _slot(person[i], venue[i], np.uint64(t_in[i]), shift))
    for i in range(n):
        if i + PREFETCH_AHEAD < n:
            k = i + PREFETCH_AHEAD
            prefetch_write(table, _slot(person[k], venue[k], np.uint64(t_in[k]), shift))
        p, v, t = person[i], venue[i], np.uint64(t_in[i])
        s = _slot(p, v, t, shift)
        while table[s, 2] != 0 and not (table[s, 0] == p and table[s, 1] == v
                                        and table[s, 2] >> np.uint64(32) == t):
            s = (s + 1) & mask
        found = table[s, 2] != 0
        elsewhere = stored[i] >= 0
        if found:
            stored[i] = max(stored[i], np.int64(table[s, 2] & _LOW) - 1)
        exp = t_out[i] - t_in[i] if t_out[i] > 0 else 0
        changed[i] = stored[i] < 0 or exp > stored[i]
        if write and changed[i]:
            if not found:
                table[s, 0], table[s, 1] = p, v
                added += 1
                if not elsewhere:
                    new += 1
            table[s, 2] = (t << np.uint64(32)) | np.uint64(exp + 1)
    return added, new


@njit(cache=True, nogil=True)
def merge_runs(a_p, a_v, a_t, a_o, b_p, b_v, b_t, b_o, out_p, out_v, out_t, out_o):
    """Two runs of distinct keys sorted by (person, venue, t_in) as one (a key in both
    keeps the larger t_out); returns its length."""
    i = j = k = 0
    while i < a_p.shape[0] or j < b_p.shape[0]:
        if j == b_p.shape[0]:
            take = -1
        elif i == a_p.shape[0]:
            take = 1
        elif a_p[i] != b_p[j]:
            take = -1 if a_p[i] < b_p[j] else 1
        elif a_v[i] != b_v[j]:
            take = -1 if a_v[i] < b_v[j] else 1
        elif a_t[i] != b_t[j]:
            take = -1 if a_t[i] < b_t[j] else 1
        else:
            take = 0
        if take <= 0:
            out_p[k], out_v[k], out_t[k], out_o[k] = a_p[i], a_v[i], a_t[i], a_o[i]
            if take == 0:
                out_o[k] = max(a_o[i], b_o[j])
                j += 1
            i += 1
        else:
            out_p[k], out_v[k], out_t[k], out_o[k] = b_p[j], b_v[j], b_t[j], b_o[j]
            j += 1
        k += 1
    return k


# ---- a person's last check-in at a venue ---------------------------------------------------

@njit(cache=True, nogil=True)
def last_in_person_view(person_off, pv_venue, pv_t_in, venue_off, t_in, person, exp, p, v,
                        at):
    """(t_in, explicit duration) of person code p's latest check-in at venue code v with
    t_in <= at; (-1, 0) if none."""
    lo, hi = person_off[p], person_off[p + 1]
    j = lo + np.searchsorted(pv_t_in[lo:hi], np.uint32(at), side="right")
    while j > lo:
        j -= 1
        if pv_venue[j] & LOW_BITS == v:
            t = np.int64(pv_t_in[j])
            if pv_venue[j] & EXPLICIT:
                return t, np.int64(exp[venue_row(venue_off, t_in, person, v, t, p)])
            return t, np.int64(0)
    return np.int64(-1), np.int64(0)


@njit(cache=True, nogil=True)
def last_in_batch(person, venue, t_in, p, v, at):
    """In columns sorted by (person, venue, t_in): the row of the last key at or before
    (p, v, at) if it is p's at v, else -1."""
    lo, hi = 0, person.shape[0]
    while lo < hi:  # the first row after (p, v, at)
        mid = (lo + hi) // 2
        if person[mid] < p or (person[mid] == p and (
                venue[mid] < v or (venue[mid] == v and t_in[mid] <= at))):
            lo = mid + 1
        else:
            hi = mid
    if lo > 0 and person[lo - 1] == p and venue[lo - 1] == v:
        return lo - 1
    return -1


@njit(cache=True, nogil=True)
def head_rehash(old, new, shift):
    """Every key of the head table `old` into the empty, larger table `new`."""
    mask = new.shape[0] - 1
    for r in range(old.shape[0]):
        if old[r, 2] == 0:
            continue
        s = _slot(old[r, 0], old[r, 1], old[r, 2] >> np.uint64(32), shift)
        while new[s, 2] != 0:
            s = (s + 1) & mask
        new[s, 0], new[s, 1], new[s, 2] = old[r, 0], old[r, 1], old[r, 2]


@njit(cache=True, nogil=True)
def touch_pages(data, step):
    """Read one byte in every `step` of `data` (uint8) so that its pages are mapped;
    returns their sum, so that the reads are kept."""
    total = 0
    for i in range(0, data.shape[0], step):
        total += data[i]
    return total
