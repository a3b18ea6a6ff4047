"""Numba kernels of the co-location index: building segments and scanning them.

Only @njit(cache=True) functions over contiguous arrays and scalars live here; the callers
(tracing/segments.py, tracing/exposure.py) check dtypes, prepare inputs and wrap results.

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

EXPLICIT = np.uint32(1 << 31)
LOW_BITS = np.uint32((1 << 31) - 1)


# ---- validating -------------------------------------------------------------------

@njit(cache=True)
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

# Large outputs are allocated by the caller with numpy: numpy asks the kernel for huge
# pages, and at 100M rows the page faults of numba-allocated arrays cost 3-4x the work.

@njit(cache=True)
def dense_rank(ids, top, codes):
    """codes[i] = rank of ids[i] among the distinct ids (all < top); returns the sorted
    distinct ids. Linear: for ids that are small integers, no sort is needed."""
    rank = np.zeros(top + 1, np.int64)
    for x in ids:
        rank[x] = 1
    n = 0
    for x in range(top + 1):
        if rank[x]:
            rank[x] = n
            n += 1
        else:
            rank[x] = -1
    distinct = np.empty(n, np.uint64)
    for x in range(top + 1):
        if rank[x] >= 0:
            distinct[rank[x]] = x
    for i in range(ids.shape[0]):
        codes[i] = rank[ids[i]]
    return distinct


@njit(cache=True)
def pack_keys(hi, mid, lo, mid_sub, mid_shift, hi_shift, out):
    """out[i] = hi[i] << hi_shift | (mid[i] - mid_sub) << mid_shift | lo[i], as uint64."""
    for i in range(hi.shape[0]):
        out[i] = ((np.uint64(hi[i]) << np.uint64(hi_shift))
                  | (np.uint64(np.int64(mid[i]) - mid_sub) << np.uint64(mid_shift))
                  | np.uint64(lo[i]))


@njit(cache=True)
def unpack_keys(keys, mid_shift, hi_shift, mid_add, hi, mid, lo):
    """The three fields of pack_keys' keys into uint32 arrays; mid_add is added to mid.
    An empty `hi` skips that field."""
    mid_mask = (np.uint64(1) << np.uint64(hi_shift - mid_shift)) - np.uint64(1)
    lo_mask = (np.uint64(1) << np.uint64(mid_shift)) - np.uint64(1)
    want_hi = hi.shape[0] > 0
    for i in range(keys.shape[0]):
        k = keys[i]
        if want_hi:
            hi[i] = np.uint32(k >> np.uint64(hi_shift))
        mid[i] = np.uint32(((k >> np.uint64(mid_shift)) & mid_mask) + np.uint64(mid_add))
        lo[i] = np.uint32(k & lo_mask)


@njit(cache=True)
def radix_sort_pairs(keys, values, bits, keys_tmp, values_tmp):
    """Sort keys (uint64 below 2**bits) with their values, LSD radix, 11 bits a pass;
    the *_tmp arrays are scratch of the same sizes. Far faster than an argsort and a
    gather for tens of millions of pairs."""
    n = keys.shape[0]
    src_k, src_v, dst_k, dst_v = keys, values, keys_tmp, values_tmp
    shift = 0
    passes = 0
    while shift < bits:
        count = np.zeros(2049, np.int64)
        for i in range(n):
            count[((src_k[i] >> np.uint64(shift)) & np.uint64(2047)) + 1] += 1
        for d in range(2048):
            count[d + 1] += count[d]
        for i in range(n):
            d = (src_k[i] >> np.uint64(shift)) & np.uint64(2047)
            pos = count[d]
            dst_k[pos] = src_k[i]
            dst_v[pos] = src_v[i]
            count[d] = pos + 1
        src_k, src_v, dst_k, dst_v = dst_k, dst_v, src_k, src_v
        shift += 11
        passes += 1
    if passes % 2:
        keys[:] = src_k
        values[:] = src_v


@njit(cache=True)
def distinct_in_place(keys):
    """Squeeze repeats out of a sorted key array, in place; returns the distinct count."""
    k = 0
    for i in range(keys.shape[0]):
        if i == 0 or keys[i] != keys[k - 1]:
            keys[k] = keys[i]
            k += 1
    return k


@njit(cache=True)
def join_max(keys, sub_keys, sub_values, out):
    """out[i] = the largest sub_value whose sub_key equals keys[i] (sorted, distinct), 0
    where none; `sub_keys` is sorted and may repeat."""
    j = 0
    for i in range(keys.shape[0]):
        best = np.uint32(0)
        while j < sub_keys.shape[0] and sub_keys[j] < keys[i]:
            j += 1
        while j < sub_keys.shape[0] and sub_keys[j] == keys[i]:
            best = max(best, sub_values[j])
            j += 1
        out[i] = best


@njit(cache=True)
def flag_members(keys, members, codes):
    """codes[i] |= EXPLICIT where sorted keys[i] is in sorted `members`, in place."""
    j = 0
    for i in range(keys.shape[0]):
        while j < members.shape[0] and members[j] < keys[i]:
            j += 1
        if j < members.shape[0] and members[j] == keys[i]:
            codes[i] |= EXPLICIT


@njit(cache=True)
def venue_max_explicit(venue_off, exp):
    """Per venue, the longest explicit visit (0 if none): bounds how far back to scan."""
    out = np.zeros(venue_off.shape[0] - 1, np.uint32)
    for v in range(venue_off.shape[0] - 1):
        for r in range(venue_off[v], venue_off[v + 1]):
            out[v] = max(out[v], exp[r])
    return out


# ---- reading one visit -----------------------------------------------------------------

@njit(cache=True)
def venue_row(venue_off, t_in, person, v, t, p):
    """The venue-view row of check-in (venue code v, t_in t, person code p), or -1."""
    lo, hi = venue_off[v], venue_off[v + 1]
    r = lo + np.searchsorted(t_in[lo:hi], np.uint32(t))
    while r < hi and np.int64(t_in[r]) == t:
        if np.int64(person[r]) == p:
            return r
        r += 1
    return -1


@njit(cache=True)
def next_later(person_off, pv_t_in, p, t):
    """Person p's first t_in strictly after t, or -1."""
    lo, hi = person_off[p], person_off[p + 1]
    j = lo + np.searchsorted(pv_t_in[lo:hi], np.uint32(t), side="right")
    return np.int64(pv_t_in[j]) if j < hi else np.int64(-1)


@njit(cache=True)
def find_keys(venue_off, t_in, person, vcodes, times, pcodes):
    """For each key (venue code, t_in, person code), its venue-view row or -1."""
    out = np.full(vcodes.shape[0], -1, np.int64)
    for i in range(vcodes.shape[0]):
        if vcodes[i] >= 0 and pcodes[i] >= 0:
            out[i] = venue_row(venue_off, t_in, person, vcodes[i], times[i], pcodes[i])
    return out


@njit(cache=True)
def lookup_codes(sorted_ids, ids):
    """The position of each id in sorted_ids, or -1 where it is absent."""
    out = np.empty(ids.shape[0], np.int64)
    for i in range(ids.shape[0]):
        j = np.searchsorted(sorted_ids, ids[i])
        out[i] = j if j < sorted_ids.shape[0] and sorted_ids[j] == ids[i] else -1
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
