"""The contact rule, slow and obvious, straight from DESIGN.md ("The contact rule").

Plain Python over a list of check-ins; no sorting tricks, no indexes. The index's answers
are compared against this in tests/tracing/test_index.py.

A check-in is (person, venue, t_in, t_out) with t_out = None (or <= 0) for "no check-out".
`dwell` maps venue -> seconds; venues not in it use rule.default_dwell.
"""

from __future__ import annotations

from tracing.model import Contact, ContactRule, Evidence, TraceResult, Zone


def dedupe(checkins):
    """Rule 1: one check-in per (person, venue, t_in); the largest explicit t_out wins."""
    merged: dict[tuple[int, int, int], int | None] = {}  # key -> t_out
    for person, venue, t_in, t_out in checkins:
        t_out = t_out if t_out is not None and t_out > 0 else None
        key = (person, venue, t_in)
        old = merged.get(key)
        if key not in merged or (t_out is not None and (old is None or t_out > old)):
            merged[key] = t_out
    return merged


def visits(checkins, dwell, rule):
    """Rule 2: every deduplicated check-in as a visit (person, venue, start, end)."""
    merged = dedupe(checkins)
    result = []
    for (person, venue, t_in), t_out in merged.items():
        if t_out is not None:
            end = t_out
        else:
            end = t_in + dwell.get(venue, rule.default_dwell)
            later = [t for (p, _v, t) in merged if p == person and t > t_in]
            if later:
                end = min(end, min(later))
        result.append((person, venue, t_in, end))
    return result


def presences_of(person, all_visits, lo, hi, linger):
    """Rules 4 and 6: the person's visits clipped to [lo, hi), then extended by linger."""
    out = []
    for p, venue, start, end in all_visits:
        if p != person:
            continue
        s, e = max(start, lo), min(end, hi)
        if s < e:
            out.append((venue, s, e + linger))
    return out


def trace(checkins, case, window_from, window_to, rule=None, dwell=None):
    rule = rule or ContactRule()
    """The case's contacts and zones by the contact rule, as a TraceResult."""
    dwell = dwell or {}
    all_visits = visits(checkins, dwell, rule)
    need = rule.effective_min_overlap
    level_of = {case: 0}
    exposed_at = {case: window_from}
    evidence: dict[int, list[Evidence]] = {}
    presences = {0: [(case, pr) for pr in presences_of(case, all_visits, window_from,
                                                        window_to, rule.linger)]}
    for level in range(1, rule.depth + 1):
        found: dict[int, list[Evidence]] = {}
        for _source, (venue, ps, pe) in presences[level - 1]:
            for person, v, start, end in all_visits:
                if v != venue or person in level_of:
                    continue
                s, e = max(ps, start), min(pe, end)
                if e - s >= need:
                    found.setdefault(person, []).append(Evidence(venue, s, e))
        presences[level] = []
        for person, ev in found.items():
            level_of[person] = level
            exposed_at[person] = min(e.start for e in ev)
            evidence[person] = sorted(set(ev), key=lambda e: (e.start, e.end, e.venue))
            presences[level] += [(person, pr) for pr in presences_of(
                person, all_visits, exposed_at[person], window_to, rule.linger)]
    contacts = sorted(
        (Contact(p, lvl, exposed_at[p], tuple(evidence[p]))
         for p, lvl in level_of.items() if lvl > 0),
        key=lambda c: (c.level, c.exposed_at, c.person))
    zones = []
    for level in range(rule.depth):
        zones += zones_of(level, presences[level], contacts)
    return TraceResult(case, window_from, window_to, rule, tuple(contacts),
                       tuple(sorted(zones, key=lambda z: (z.level, z.venue, z.start))))


def zones_of(level, presences, contacts):
    """Rule 7: per venue, merge overlapping or touching presences; count the exposed."""
    by_venue: dict[int, list[tuple[int, int]]] = {}
    for _person, (venue, s, e) in presences:
        by_venue.setdefault(venue, []).append((s, e))
    zones = []
    for venue, intervals in by_venue.items():
        merged: list[list[int]] = []
        for s, e in sorted(intervals):
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        for s, e in merged:
            exposed = {c.person for c in contacts if c.level == level + 1
                       and any(ev.venue == venue and s <= ev.start and ev.end <= e
                               for ev in c.evidence)}
            zones.append(Zone(venue, level, s, e, len(exposed)))
    return zones
