"""Exposure tracing over a snapshot of the index: F1, time-respecting F2.., and zones.

A snapshot is two segments: `base` (memory-mapped from disk) and `overlay` (built in
memory from the head). Every person with check-ins in the head is answered from the
overlay only, which holds all of that person's check-ins (base and head, merged), so
visit ends there are exact; the base hides that person's rows with `base_mask`.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from tracing import kernels
from tracing.model import Contact, ContactRule, Evidence, TraceResult, Zone
from tracing.segments import Segment, build_segment, empty_segment

NO_MASK = np.zeros(0, np.uint8)
_new_evidence = partial(tuple.__new__, Evidence)
_new_contact = partial(tuple.__new__, Contact)


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


def presences(snap: Snapshot, persons: np.ndarray, lows: np.ndarray, hi: int,
              rule: ContactRule):
    """Presences of `persons` (uint64 ids): visits clipped to [lows[i], hi), + linger.

    Returns (person, venue, start, end) arrays (uint64, uint64, int64, int64).
    """
    parts = []
    in_overlay = snap.overlay.person_codes(persons)
    for segment, _mask, dwell in snap.sources(rule.default_dwell):
        if segment is snap.overlay:
            codes, pick = in_overlay, in_overlay >= 0
        else:
            codes = segment.person_codes(persons)
            pick = (codes >= 0) & (in_overlay < 0)
        if not pick.any():
            continue
        idx = np.flatnonzero(pick)
        got = kernels.person_presences(segment.venue_off, segment.t_in, segment.person,
                                       segment.exp, segment.person_off, segment.pv_venue,
                                       segment.pv_t_in, dwell, codes[idx], lows[idx], hi,
                                       rule.linger)
        parts.append((persons[idx[got[:, 0]]], segment.venue_ids[got[:, 1]],
                      got[:, 2], got[:, 3]))
    return _concat(parts)


def overlaps(snap: Snapshot, pres, rule: ContactRule):
    """Every visit overlapping one of the presences by >= the rule's minimum.

    Returns (person, venue, start, end) arrays of the overlaps, unsorted.
    """
    parts = []
    for segment, mask, dwell in snap.sources(rule.default_dwell):
        if len(segment) == 0:
            continue
        hits = kernels.scan_presences(segment.venue_off, segment.t_in, segment.person,
                                      segment.exp, segment.venue_maxexp, segment.person_off,
                                      segment.pv_t_in, dwell, mask,
                                      segment.venue_codes(pres[1]), pres[2], pres[3],
                                      rule.effective_min_overlap)
        parts.append((segment.person_ids[hits[:, 0]], segment.venue_ids[hits[:, 1]],
                      hits[:, 2], hits[:, 3]))
    return _concat(parts)


def _concat(parts):
    if not parts:
        return (np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.int64),
                np.empty(0, np.int64))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))


def trace(snap: Snapshot, case: int, window_from: int, window_to: int,
          rule: ContactRule) -> TraceResult:
    """The case's contacts, level by level, and the zones of each level's presence."""
    found = np.array([case], np.uint64)
    pres = presences(snap, found, np.array([window_from], np.int64), window_to, rule)
    contacts: list[Contact] = []
    zones: list[Zone] = []
    for level in range(1, rule.depth + 1):
        hits = overlaps(snap, pres, rule) if len(pres[0]) else _concat([])
        keep = kernels.not_in_sorted(hits[0], np.sort(found))
        person, venue, start, end = _evidence_order(*(h[keep] for h in hits))
        firsts = kernels.run_starts(person)
        zones += _zones(level - 1, pres, venue, start, np.cumsum(
            kernels.mark_starts(person.shape[0], firsts)) - 1)
        if person.shape[0] == 0:
            break
        new_persons, exposed_at = person[firsts], start[firsts]
        contacts += _contacts(level, new_persons, exposed_at, firsts, venue, start, end)
        found = np.concatenate([found, new_persons])
        if level < rule.depth:
            pres = presences(snap, new_persons, exposed_at, window_to, rule)
    return TraceResult(case, window_from, window_to, rule, tuple(contacts), tuple(zones))


def _evidence_order(person, venue, start, end):
    """Overlaps sorted by (person, start, end, venue), repeats removed."""
    order = np.lexsort((venue, end, start, person))
    person, venue, start, end = person[order], venue[order], start[order], end[order]
    if person.shape[0] < 2:
        return person, venue, start, end
    fresh = np.ones(person.shape[0], np.bool_)
    fresh[1:] = ((person[1:] != person[:-1]) | (venue[1:] != venue[:-1])
                 | (start[1:] != start[:-1]) | (end[1:] != end[:-1]))
    return person[fresh], venue[fresh], start[fresh], end[fresh]


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


def _zones(level, pres, venue, start, person_group) -> list[Zone]:
    """Level-`level` zones: merged presences per venue, with distinct exposed persons
    (evidence rows `venue`, `start`, belonging to persons numbered by person_group)."""
    if pres[0].shape[0] == 0:
        return []
    order = np.lexsort((pres[2], pres[1]))
    zv, zs, ze = kernels.merge_zones(pres[1][order], pres[2][order], pres[3][order])
    counts = np.zeros(zv.shape[0], np.int64)
    if venue.shape[0]:
        zone = kernels.zone_of(zv, zs, venue, start)
        pairs = np.unique(zone * (person_group.max() + 1) + person_group)
        counts += np.bincount(pairs // (person_group.max() + 1), minlength=zv.shape[0])
    return list(map(Zone, zv.tolist(), [level] * zv.shape[0], zs.tolist(), ze.tolist(),
                    counts.tolist()))


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
    """All check-ins of the head's persons (base rows and head rows) as one segment, and
    the mask hiding those persons' rows in the base."""
    if not head:
        return empty_segment(), NO_MASK
    cols = [np.concatenate([h[i] for h in head]) for i in range(4)]
    persons = np.unique(cols[0])
    codes = base.person_codes(persons)
    codes = codes[codes >= 0]
    old = base.persons_checkins(codes)
    overlay = build_segment(*(np.concatenate([old[i], cols[i]]) for i in range(4)))
    mask = np.zeros(base.person_ids.shape[0], np.uint8)
    mask[codes] = 1
    return overlay, mask
