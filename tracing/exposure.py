"""Exposure tracing over a snapshot of the index: F1, time-respecting F2.., and zones.

A snapshot is two segments: `base` (memory-mapped from disk) and `overlay` (the head,
sorted in memory). A visit's end can depend on check-ins in both (the person's next
check-in may be in either), so the kernels in trace_kernels.py read both at once;
`base_mask` marks the base persons who also have check-ins in the overlay, so that only
their visits pay for the second lookup.

A trace is one kernel call (trace_kernels.trace) over the snapshot's table of array
addresses (Snapshot.table); its answer stays in numpy columns, and the Contact, Evidence
and Zone tuples are built when a caller first reads them (model.TraceResult).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tracing import kernels, trace_kernels
from tracing.gc_pause import gc_paused
from tracing.model import ContactRule, TraceResult
from tracing.segments import Segment, build_segment, empty_segment

NO_MASK = np.zeros(0, np.uint8)
__all__ = ["NO_MASK", "Snapshot", "build_overlay", "gc_paused", "segment_args", "trace"]


@dataclass(slots=True)
class Snapshot:
    """What one query reads: immutable once made, so appends never disturb a query."""

    base: Segment
    base_mask: np.ndarray
    overlay: Segment
    dwell_venues: np.ndarray   # sorted uint64 venue ids with a known dwell
    dwell_seconds: np.ndarray  # int64, aligned with dwell_venues
    _dwell_cache: dict = field(default_factory=dict)
    _tables: dict = field(default_factory=dict)

    def dwell(self, segment: Segment, default: int) -> np.ndarray:
        """int64 dwell per venue code of `segment`, unknown venues at `default`."""
        key = (id(segment), default)
        if key not in self._dwell_cache:
            out = np.full(segment.venue_ids.shape[0], default, np.int64)
            codes = segment.venue_codes(self.dwell_venues)
            known = codes >= 0
            out[codes[known]] = self.dwell_seconds[known]
            self._dwell_cache[key] = out
        return self._dwell_cache[key]

    def table(self, default: int) -> np.ndarray:
        """int64 [2, 12, 2]: the address and length of each array of the base and the
        overlay (segment_args' order), for trace_kernels.trace.

        The addresses are only valid while the arrays live: this snapshot keeps every
        array it names (its segments, the mask, the dwell arrays in _dwell_cache, the
        arrays in _tables beside the table), and a caller must hold the snapshot for as
        long as a kernel reads the table. A memory-mapped column keeps its mmap open
        (numpy holds the buffer), so the mapping cannot be closed under a query."""
        found = self._tables.get(default)
        if found is None:
            arrays = (*segment_args(self.base, self.dwell(self.base, default), self.base_mask),
                      *segment_args(self.overlay, self.dwell(self.overlay, default), NO_MASK))
            table = np.zeros((2, 12, 2), np.int64)
            for i, array in enumerate(arrays):
                dtype = trace_kernels.SEGMENT_DTYPES[i % 12]
                if array.dtype != dtype or array.ndim != 1 or not array.flags.c_contiguous:
                    raise TypeError(f"segment array {i % 12} is {array.dtype}"
                                    f"{array.shape}, expected a contiguous {dtype.__name__}")
                table[i // 12, i % 12] = array.ctypes.data, array.shape[0]
            found = self._tables.setdefault(default, (table, arrays))
        return found[0]


def segment_args(segment: Segment, dwell: np.ndarray, mask: np.ndarray) -> tuple:
    """A segment's arrays in the order tracing/trace_kernels.py unpacks them."""
    return (segment.venue_ids, segment.venue_off, segment.venue_maxexp, segment.person,
            segment.t_in, segment.exp, segment.person_ids, segment.person_off,
            segment.pv_venue, segment.pv_t_in, dwell, mask)


def trace(snap: Snapshot, case: int, window_from: int, window_to: int,
          rule: ContactRule) -> TraceResult:
    """The case's contacts, level by level, and the zones of each level's presence, as a
    TraceResult holding the kernel's answer (its columns and tuples are made when
    first read)."""
    answer = trace_kernels.trace(
        snap.table(rule.default_dwell), np.uint64(case), window_from, window_to,
        rule.effective_min_overlap, rule.linger, rule.depth)
    return TraceResult.from_answer(case, window_from, window_to, rule, answer)


def build_overlay(base: Segment, head) -> tuple[Segment, np.ndarray]:
    """The head's check-ins as a segment (each carrying the largest t_out of its key,
    base included), and a mask over base person codes marking the head's persons."""
    if not head:
        return empty_segment(), NO_MASK
    person, venue, t_in, t_out = (np.concatenate([h[i] for h in head]) for i in range(4))
    codes = base.person_codes(person)
    if len(base):
        row = kernels.find_keys(base.venue_off, base.t_in, base.person,
                                base.venue_codes(venue), t_in, codes)
        hit = row >= 0
        t_out = t_out.copy()
        t_out[hit] = np.maximum(t_out[hit], base.decode(row[hit])[3])
    mask = np.zeros(base.person_ids.shape[0], np.uint8)
    mask[codes[codes >= 0]] = 1
    return build_segment(person, venue, t_in, t_out), mask
