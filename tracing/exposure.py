"""Exposure tracing over a snapshot of the index: F1, time-respecting F2.., and zones.

A snapshot is two segments: `base` (memory-mapped from disk) and `overlay` (the head,
sorted in memory). A visit's end can depend on check-ins in both (the person's next
check-in may be in either), so the kernels in trace_kernels.py read both at once;
`base_mask` marks the base persons who also have check-ins in the overlay, so that only
their visits pay for the second lookup.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from tracing import kernels, trace_kernels
from tracing.model import Contact, ContactRule, Evidence, TraceResult, Zone
from tracing.segments import Segment, build_segment, empty_segment

NO_MASK = np.zeros(0, np.uint8)
_new_evidence = partial(tuple.__new__, Evidence)
_new_contact = partial(tuple.__new__, Contact)
_new_zone = partial(tuple.__new__, Zone)


@dataclass(slots=True)
class Snapshot:
    """What one query reads: immutable once made, so appends never disturb a query."""

    base: Segment
    base_mask: np.ndarray
    overlay: Segment
    dwell_venues: np.ndarray   # sorted uint64 venue ids with a known dwell
    dwell_seconds: np.ndarray  # int64, aligned with dwell_venues
    _dwell_cache: dict = field(default_factory=dict)

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

    def sources(self, default: int):
        """(segment, person mask, dwell per venue code) for each segment to read."""
        return ((self.base, self.base_mask, self.dwell(self.base, default)),
                (self.overlay, NO_MASK, self.dwell(self.overlay, default)))


def segment_args(segment: Segment, dwell: np.ndarray, mask: np.ndarray) -> tuple:
    """A segment's arrays in the order tracing/trace_kernels.py unpacks them."""
    return (segment.venue_ids, segment.venue_off, segment.venue_maxexp, segment.person,
            segment.t_in, segment.exp, segment.person_ids, segment.person_off,
            segment.pv_venue, segment.pv_t_in, dwell, mask)


def trace(snap: Snapshot, case: int, window_from: int, window_to: int,
          rule: ContactRule) -> TraceResult:
    """The case's contacts, level by level, and the zones of each level's presence."""
    (base, mask, base_dwell), (overlay, _, overlay_dwell) = snap.sources(rule.default_dwell)
    base = segment_args(base, base_dwell, mask)
    overlay = segment_args(overlay, overlay_dwell, NO_MASK)
    found = np.array([case], np.uint64)
    pres = trace_kernels.presences(base, overlay, found, np.array([window_from], np.int64),
                                   window_to, rule.linger)
    contacts: list[Contact] = []
    zones: list[Zone] = []
    for level in range(1, rule.depth + 1):
        person, venue, start, end, firsts = trace_kernels.evidence(
            base, overlay, pres[1], pres[2], pres[3], found, rule.effective_min_overlap)
        if pres[0].shape[0]:
            zones += _zones(level - 1, pres, venue, start, firsts)
        if person.shape[0] == 0:
            break
        new_persons, exposed_at = person[firsts], start[firsts]
        contacts += _contacts(level, new_persons, exposed_at, firsts, venue, start, end)
        found = np.sort(np.concatenate([found, new_persons]))
        if level < rule.depth:
            pres = trace_kernels.presences(base, overlay, new_persons, exposed_at, window_to,
                                           rule.linger)
    return TraceResult(case, window_from, window_to, rule, tuple(contacts), tuple(zones))


def _contacts(level, persons, exposed_at, firsts, venue, start, end) -> list[Contact]:
    """Contact objects ordered by (exposed_at, person); evidence rows follow `firsts`."""
    # tuple.__new__ straight from zip: the cheapest way to build many named tuples
    evidence = list(map(_new_evidence, zip(venue.tolist(), start.tolist(), end.tolist(),
                                           strict=True)))
    bounds = [*firsts.tolist(), len(evidence)]
    order = np.lexsort((persons, exposed_at)).tolist()
    persons, exposed_at = persons.tolist(), exposed_at.tolist()
    return [_new_contact((persons[i], level, exposed_at[i],
                          tuple(evidence[bounds[i]:bounds[i + 1]]))) for i in order]


def _zones(level, pres, venue, start, firsts) -> list[Zone]:
    """Level-`level` zones as Zone objects (see trace_kernels.zones)."""
    zv, zs, ze, counts = trace_kernels.zones(pres[1], pres[2], pres[3], venue, start, firsts)
    return list(map(_new_zone, zip(zv.tolist(), [level] * zv.shape[0], zs.tolist(),
                                   ze.tolist(), counts.tolist(), strict=True)))


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = True


@contextmanager
def gc_paused():
    """Hold off Python's cyclic GC while a trace builds its (acyclic) result tuples.

    A trace creates thousands of small tuples; with many results alive, the full
    collections they trigger took up to 250 ms of a 5 ms query. Pausing moves that work
    to after the query, where the next allocation pays it.
    """
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


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
