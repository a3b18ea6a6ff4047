"""Reports for officials: QR adoption per venue and village, and lockdown comparisons.

    counts = venue_day_counts(index.snapshot(), t_from, t_to)        # tz UTC+7 by default
    report = adoption_report(venues, qr_points, counts, day_from, day_to)
    page = lockdown_comparison(index.snapshot(), venues, index.trace(case, lo, hi))

Over several shards (index folders of Kafka workers, shard servers): the same with
venue_day_counts_over(shards, ...) and lockdown_comparison(..., shards=others), each
check-in held by two shards counted once.

A day is a local calendar day, as a local epoch day: (t + tz_offset_s) // 86400 (day 0 is
1970-01-01 local). Check-ins are counted on the day of their t_in, within [t_from, t_to).
A check-in that the snapshot's overlay repeats from the base is counted once.

The adoption report answers the commune's complaint (QR points that nobody scans). Its
rows are every venue of the table, every venue with check-ins that the table lacks and
every venue with QR points that the table lacks (the last two named "venue <id>", village
""): a QR point is never dropped from the report because its venue was not registered.
Villages are ordered by name; a venue without a village belongs to the village "".

Errors: InvalidQuery (tracing/errors.py) for an empty day range, or a day range that the
counts do not cover (the missing days would read as days without check-ins).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache, partial
from itertools import compress
from typing import NamedTuple

import numpy as np

from tracing import adoption_kernels as ak
from tracing.errors import InvalidQuery
from tracing.exposure import Snapshot, gc_paused
from tracing.model import TraceResult
from tracing.segments import Segment
from tracing.venues import VenueTable

SECONDS_PER_DAY = 86400
VIETNAM_OFFSET_S = 7 * 3600
EPOCH = date(1970, 1, 1)
_TIME_END = 2**32  # segments store t_in as uint32


@lru_cache(maxsize=4096)
def iso_day(day: int) -> str:
    """Local epoch day `day` as an ISO date "YYYY-MM-DD"."""
    return (EPOCH + timedelta(days=int(day))).isoformat()


def day_bounds(day_from: int, day_to: int, tz_offset_s: int = VIETNAM_OFFSET_S
               ) -> tuple[int, int]:
    """The UTC seconds [t_from, t_to) spanning local days day_from..day_to (inclusive)."""
    return day_from * SECONDS_PER_DAY - tz_offset_s, (day_to + 1) * SECONDS_PER_DAY - tz_offset_s


@dataclass(frozen=True, slots=True)
class VenueDays:
    """Check-ins per (venue, local day), sorted by (venue, day); only non-zero groups.

    venue uint64, day int64 (local epoch day), checkins int64; the window [t_from, t_to)
    and tz_offset_s they were counted with.
    """

    venue: np.ndarray
    day: np.ndarray
    checkins: np.ndarray
    t_from: int
    t_to: int
    tz_offset_s: int

    def __len__(self) -> int:
        return int(self.venue.shape[0])


def venue_day_counts(snapshot: Snapshot, t_from: int, t_to: int,
                     tz_offset_s: int = VIETNAM_OFFSET_S) -> VenueDays:
    """Distinct check-ins per venue and local day, for t_in in [t_from, t_to).

    Takes an index snapshot (CheckinIndex.snapshot()); reads each segment's venue view.
    Returns VenueDays. Raises InvalidQuery when t_from >= t_to.
    """
    t_from, t_to, tz = int(t_from), int(t_to), int(tz_offset_s)
    if t_from >= t_to:
        raise InvalidQuery(f"window: t_from ({t_from}) must be before t_to ({t_to})")
    lo, hi = _clip(t_from), _clip(t_to)
    base, overlay = snapshot.base, snapshot.overlay
    # the overlay repeats a base check-in when the head saw it again: count it once
    skip = np.zeros(len(overlay) if len(base) else 0, np.uint8)
    if skip.shape[0]:
        ak.overlay_repeats(base.venue_ids, base.venue_off, base.t_in, base.person,
                           base.person_ids, overlay.venue_ids, overlay.venue_off,
                           overlay.t_in, overlay.person, overlay.person_ids, skip)
    v1, d1, c1 = _segment_counts(base, np.zeros(0, np.uint8), lo, hi, tz)
    v2, d2, c2 = _segment_counts(overlay, skip, lo, hi, tz)
    n = v1.shape[0] + v2.shape[0]
    out_v, out_d, out_c = np.empty(n, np.uint64), np.empty(n, np.int64), np.empty(n, np.int64)
    k = ak.merge_counts(v1, d1, c1, v2, d2, c2, out_v, out_d, out_c)
    return VenueDays(out_v[:k], out_d[:k], out_c[:k], t_from, t_to, tz)


def _clip(t: int) -> int:
    """A time clipped to what a segment can hold: no check-in lies outside [0, 2**32)."""
    return min(max(t, 0), _TIME_END)


def _segment_counts(segment: Segment, skip: np.ndarray, lo: int, hi: int, tz: int):
    """(venue id, day, count) groups of one segment's rows in [lo, hi), skip left out."""
    if len(segment) == 0 or lo >= hi:
        return np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.int64)
    n = ak.venue_day_groups(segment.venue_off, segment.t_in, skip, lo, hi, tz)
    code, day, count = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    ak.venue_day_fill(segment.venue_off, segment.t_in, skip, lo, hi, tz, code, day, count)
    return segment.venue_ids[code], day, count


# ---- the adoption report ------------------------------------------------------------

class VenueAdoption(NamedTuple):
    """One venue's row: its QR points and check-ins over the report's days."""

    venue: int
    name: str
    village: str
    category: str
    qr_points: int
    checkins: int
    days_with_checkins: int
    days_without_checkins: int
    first_day: int | None  # local epoch day, None without check-ins
    last_day: int | None

    @property
    def silent(self) -> bool:
        """QR points posted and not one check-in in the report's days."""
        return self.qr_points > 0 and self.checkins == 0

    def to_dict(self) -> dict:
        """The row as a JSON-ready dict, days also as ISO dates (None without check-ins)."""
        dates = (None, None) if self.first_day is None else (iso_day(self.first_day),
                                                             iso_day(self.last_day))
        return {**self._asdict(), "silent": self.silent, "first_date": dates[0],
                "last_date": dates[1]}


_new_row = partial(tuple.__new__, VenueAdoption)


@dataclass(frozen=True, slots=True)
class VillageAdoption:
    """One village's summary; `daily` is check-ins per day of the report, aligned."""

    village: str
    venues: int
    venues_with_qr_points: int
    silent_venues: int  # with QR points and no check-ins
    checkins: int
    checkins_per_venue_day: float
    daily: tuple[int, ...]

    def to_dict(self) -> dict:
        """The summary as a JSON-ready dict."""
        return {"village": self.village, "venues": self.venues,
                "venues_with_qr_points": self.venues_with_qr_points,
                "silent_venues": self.silent_venues, "checkins": self.checkins,
                "checkins_per_venue_day": round(self.checkins_per_venue_day, 3),
                "daily": list(self.daily)}


@dataclass(frozen=True, slots=True)
class AdoptionReport:
    """Venue rows (silent venues first, then by check-ins ascending, then id) and village
    summaries (by name) over local days day_from..day_to inclusive."""

    day_from: int
    day_to: int
    venues: tuple[VenueAdoption, ...]
    villages: tuple[VillageAdoption, ...]

    @property
    def days(self) -> list[int]:
        """The report's local epoch days, in order."""
        return list(range(self.day_from, self.day_to + 1))

    def summary(self) -> dict:
        """Totals: venues, venues with QR points, silent venues, QR points, QR points at
        venues with any check-in, check-ins."""
        rows = self.venues
        return {"venues": len(rows), "venues_with_qr_points": sum(r.qr_points > 0 for r in rows),
                "silent_venues": sum(r.silent for r in rows),
                "qr_points": sum(r.qr_points for r in rows),
                "qr_points_at_venues_with_checkins": sum(r.qr_points * (r.checkins > 0)
                                                         for r in rows),
                "checkins": sum(r.checkins for r in rows)}

    def to_dict(self) -> dict:
        """The report as a JSON-ready dict: days as epoch days and ISO dates."""
        with gc_paused():
            return {"day_from": self.day_from, "day_to": self.day_to,
                    "date_from": iso_day(self.day_from), "date_to": iso_day(self.day_to),
                    "days": self.days, "dates": [iso_day(d) for d in self.days],
                    "summary": self.summary(),
                    "venues": [r.to_dict() for r in self.venues],
                    "villages": [v.to_dict() for v in self.villages]}


def adoption_report(venues: VenueTable, qr_points: dict[int, int], counts: VenueDays,
                    day_from: int, day_to: int, villages: set[str] | None = None
                    ) -> AdoptionReport:
    """QR points against check-ins per venue and village over local days day_from..day_to.

    Takes the venue table, QR points per venue id (absent = 0), counts from
    venue_day_counts covering those days, and optionally the villages to keep. Returns an
    AdoptionReport. Raises InvalidQuery for an empty day range or one the counts' window
    does not cover.
    """
    day_from, day_to = int(day_from), int(day_to)
    if day_from > day_to:
        raise InvalidQuery(f"days: day_from ({day_from}) is after day_to ({day_to})")
    t_from, t_to = day_bounds(day_from, day_to, counts.tz_offset_s)
    if _clip(t_from) < _clip(counts.t_from) or _clip(t_to) > _clip(counts.t_to):
        raise InvalidQuery(f"days {iso_day(day_from)}..{iso_day(day_to)} need check-ins in "
                           f"[{t_from}, {t_to}); the counts cover [{counts.t_from}, "
                           f"{counts.t_to})")
    qr_map = {int(k): int(n) for k, n in qr_points.items()}
    if any(n < 0 for n in qr_map.values()):
        raise InvalidQuery("qr_points: a venue's number of QR points cannot be negative")
    with gc_paused():  # a row per venue: 750,000 in Hanoi; the GC's scans cost 40 %
        return _report(venues, qr_map, counts, day_from, day_to, villages)


def _report(venues, qr_map, counts, day_from, day_to, villages) -> AdoptionReport:
    """adoption_report once its input is checked."""
    keep = (counts.day >= day_from) & (counts.day <= day_to)
    v, d, c = counts.venue[keep], counts.day[keep], counts.checkins[keep]
    ids = np.sort(np.concatenate([np.fromiter((x.venue for x in venues), np.uint64, len(venues)),
                                  v[_runs(v)], np.fromiter(qr_map, np.uint64, len(qr_map))]))
    ids = ids[_runs(ids)]
    info = [venues.get(i) for i in ids.tolist()]
    if villages is not None:
        chosen = [(x.village if x is not None else "") in villages for x in info]
        ids, info = ids[np.array(chosen, bool)], list(compress(info, chosen))
    rows, which, names, stats = _venue_rows(ids, info, qr_map, v, d, c, day_to - day_from + 1)
    return AdoptionReport(day_from, day_to, rows,
                          _villages(names, which, ids, *stats, v, d, day_from))


def _venue_rows(ids, info, qr_map, v, d, c, n_days):
    """The report's rows in order, each venue's village (an index into the sorted village
    names), the names, and (QR points, check-ins, counts' check-ins, days) per venue."""
    total, with_days, first, last = _per_venue(ids, v, d, c)
    id_list, seen = ids.tolist(), with_days.tolist()
    qr = np.array([qr_map.get(i, 0) for i in id_list], np.int64)
    village = [x.village if x is not None else "" for x in info]
    columns = [id_list, [x.name if x is not None else f"venue {i}"
                         for x, i in zip(info, id_list, strict=True)],
               village, [x.category if x is not None else "" for x in info], qr.tolist(),
               total.tolist(), seen, (n_days - with_days).tolist(),
               [f if n else None for f, n in zip(first.tolist(), seen, strict=True)],
               [f if n else None for f, n in zip(last.tolist(), seen, strict=True)]]
    rows = list(map(_new_row, zip(*columns, strict=True)))
    silent = (qr > 0) & (total == 0)
    rows = tuple(rows[i] for i in np.lexsort((ids, total, ~silent)).tolist())
    names = sorted(set(village))
    index = {name: i for i, name in enumerate(names)}
    which = np.array([index[x] for x in village], np.int64)
    return rows, which, names, (qr, total, c, n_days)


def _runs(a: np.ndarray) -> np.ndarray:
    """A mask of the first element of each run of equal values in `a`."""
    return np.r_[True, a[1:] != a[:-1]] if a.shape[0] else np.zeros(0, bool)


def _per_venue(ids, v, d, c):
    """Per venue of `ids` (sorted): check-ins, days with check-ins, first and last day
    (0 without check-ins), from counts sorted by (venue, day)."""
    out = [np.zeros(ids.shape[0], np.int64) for _ in range(4)]
    if v.shape[0] == 0:
        return out
    starts = np.flatnonzero(_runs(v))
    ends = np.r_[starts[1:], v.shape[0]]
    pos = np.searchsorted(v[starts], ids)
    hit = pos < starts.shape[0]
    hit[hit] = v[starts][pos[hit]] == ids[hit]
    for col, values in zip(out, (np.add.reduceat(c, starts), ends - starts, d[starts],
                                 d[ends - 1]), strict=True):
        col[hit] = values[pos[hit]]
    return out


def _villages(names, which, ids, qr, total, c, n_days, v, d, day_from
              ) -> tuple[VillageAdoption, ...]:
    """Village summaries: `which` is the village (index into names) of each venue of
    `ids`; (v, d, c) are the in-range counts for the daily chart."""
    size = len(names)
    venues = np.bincount(which, minlength=size)
    with_qr = np.bincount(which, weights=qr > 0, minlength=size).astype(np.int64)
    silent = np.bincount(which, weights=(qr > 0) & (total == 0), minlength=size)
    checkins = np.bincount(which, weights=total, minlength=size).astype(np.int64)
    listed = np.isin(v, ids)  # the village filter may have left venues out
    flat = which[np.searchsorted(ids, v[listed])] * n_days + (d[listed] - day_from)
    daily = np.bincount(flat, weights=c[listed], minlength=size * n_days)
    daily = daily.astype(np.int64).reshape(size, n_days).tolist()
    return tuple(VillageAdoption(
        name, int(venues[i]), int(with_qr[i]), int(silent[i]), int(checkins[i]),
        float(checkins[i]) / (int(venues[i]) * n_days), tuple(daily[i]))
        for i, name in enumerate(names))


# ---- whole-village lockdown against narrow zones --------------------------------------

def lockdown_comparison(snapshot: Snapshot, venues: VenueTable, result: TraceResult,
                        shards: Sequence = ()) -> dict:
    """The narrow response to a trace against locking down the villages of its zones.

    Takes the snapshot the trace read (or a later one), the venue table, the trace, and
    the other shards the trace covered (see venue_day_counts_over). Returns {"narrow":
    {quarantine (F1), test (F2 and, with a deeper rule, F3...), venues (distinct zone
    venues, every level), zones,
    zone_hours (level-0 zones)}, "village": {villages (sorted names; a zone venue
    without a village is its own, "venue <id>"), persons (distinct persons with a
    check-in, t_in in the trace's window, at any venue of those villages), venues}}.
    Raises ShardUnavailable when a shard cannot answer.
    """
    zone_venues = sorted({z.venue for z in result.zones})
    levels = result.contact_levels
    narrow = {"quarantine": int(np.count_nonzero(levels == 1)),
              "test": int(np.count_nonzero(levels >= 2)),
              "venues": len(zone_venues), "zones": len(result.zones),
              "zone_hours": round(sum(z.end - z.start for z in result.zones
                                      if z.level == 0) / 3600, 2)}
    village_of = {vid: getattr(venues.get(vid), "village", "") for vid in zone_venues}
    named = {name for name in village_of.values() if name}
    own = [vid for vid, name in village_of.items() if not name]
    locked = np.array(sorted(set(venues.in_villages(named)) | set(own)), np.uint64)
    lo, hi = result.window_from, result.window_to
    if shards:
        persons = _distinct(np.concatenate(
            [_on(s, window_person_ids, locked, lo, hi) for s in (snapshot, *shards)])).shape[0]
    else:
        persons = _count_persons(snapshot, *_window_person_codes(snapshot, locked, lo, hi))
    village = {"villages": sorted(named) + [f"venue {vid}" for vid in own],
               "persons": int(persons), "venues": int(locked.shape[0])}
    return {"narrow": narrow, "village": village}


def _window_person_codes(snapshot: Snapshot, venue_ids: np.ndarray, t_from: int, t_to: int
                         ) -> list[np.ndarray]:
    """Person codes, in the base and in the overlay, of the check-ins at `venue_ids` with
    t_in in [t_from, t_to) (repeats included)."""
    found = []
    for segment in (snapshot.base, snapshot.overlay):
        codes = segment.venue_codes(venue_ids)
        rows, _ = ak.window_rows(segment.venue_off, segment.t_in, codes[codes >= 0],
                                 _clip(t_from), _clip(t_to))
        found.append(segment.person[rows])
    return found


def _count_persons(snapshot: Snapshot, base_codes: np.ndarray, overlay_codes: np.ndarray
                   ) -> int:
    """Distinct persons among person codes of the base and of the overlay segment.
    A village's window holds up to a million check-ins: marking a flag per base person
    code costs a few ms where sorting them cost ~20."""
    base = snapshot.base
    seen = np.zeros(base.person_ids.shape[0], np.bool_)
    seen[base_codes] = True
    ids = snapshot.overlay.person_ids[_distinct(overlay_codes)]
    in_base = base.person_codes(ids) if len(base) else np.full(ids.shape[0], -1, np.int64)
    seen[in_base[in_base >= 0]] = True
    return int(np.count_nonzero(seen)) + int(np.count_nonzero(in_base < 0))


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted. np.unique's hash path (numpy 2.3+) took ~30 ms on
    50,000 person codes here; a sort and a comparison take well under one."""
    return _sorted_distinct(np.sort(values))


def _sorted_distinct(ordered: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array."""
    keep = np.empty(ordered.shape[0], np.bool_)
    keep[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


# ---- over several shards ---------------------------------------------------------------
# With Kafka, each worker indexes a shard of the venues into its own folder
# (tracing/shards.py). A shard is a Snapshot or a shard server's client
# (api/shard_client.RemoteShard), which answers the three questions below by name.

def window_person_ids(snapshot: Snapshot, venue_ids: np.ndarray, t_from: int, t_to: int
                      ) -> np.ndarray:
    """The distinct person ids (sorted uint64) with a check-in at `venue_ids`, t_in in
    [t_from, t_to)."""
    base_codes, overlay_codes = _window_person_codes(snapshot, venue_ids, t_from, t_to)
    return _distinct(np.concatenate((snapshot.base.person_ids[_distinct(base_codes)],
                                     snapshot.overlay.person_ids[_distinct(overlay_codes)])))


def venue_checkins(snapshot: Snapshot, venue_ids: np.ndarray, t_from: int, t_to: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(venue uint64, person uint64, t_in int64): the check-ins at `venue_ids` with t_in
    in [t_from, t_to), a check-in the overlay repeats from the base given twice."""
    out = []
    for segment in (snapshot.base, snapshot.overlay):
        codes = segment.venue_codes(np.asarray(venue_ids, np.uint64))
        codes = codes[codes >= 0]
        rows, which = ak.window_rows(segment.venue_off, segment.t_in, codes,
                                     _clip(t_from), _clip(t_to))
        out.append((segment.venue_ids[codes[which]], segment.person_ids[segment.person[rows]],
                    segment.t_in[rows].astype(np.int64)))
    return tuple(np.concatenate(columns) for columns in zip(*out, strict=True))


def venue_day_counts_over(shards: Sequence, t_from: int, t_to: int,
                          tz_offset_s: int = VIETNAM_OFFSET_S) -> VenueDays:
    """venue_day_counts over the check-ins of every shard together.

    Each shard counts its own. A venue counted by two shards (its partition moved from
    one worker to another) may have check-ins that both hold (a batch indexed twice:
    ingest/kafka_log.py), so its counts come from those shards' rows instead, each
    distinct (venue, person, t_in) once. Raises InvalidQuery as venue_day_counts does,
    ShardUnavailable when a shard cannot answer."""
    t_from, t_to, tz = int(t_from), int(t_to), int(tz_offset_s)
    if t_from >= t_to:
        raise InvalidQuery(f"window: t_from ({t_from}) must be before t_to ({t_to})")
    if not shards:
        raise InvalidQuery("counts over shards need at least one shard")
    parts = [_on(s, venue_day_counts, t_from, t_to, tz) for s in shards]
    if len(parts) == 1:
        return parts[0]
    held, times = np.unique(np.concatenate([_sorted_distinct(p.venue) for p in parts]),
                            return_counts=True)
    shared = held[times > 1]
    kept, asked = [], []
    for shard, part in zip(shards, parts, strict=True):
        if shared.shape[0] == 0:
            kept.append((part.venue, part.day, part.checkins))
            continue
        theirs = np.isin(part.venue, shared)
        kept.append((part.venue[~theirs], part.day[~theirs], part.checkins[~theirs]))
        if theirs.any():
            asked.append(_on(shard, venue_checkins, shared, t_from, t_to))
    if asked:
        venue, person, t_in = (np.concatenate(cs) for cs in zip(*asked, strict=True))
        first = _distinct_rows(venue, person, t_in)  # each check-in once
        kept.append(_group_counts(venue[first], (t_in[first] + tz) // SECONDS_PER_DAY))
    venue, day, count = (np.concatenate(cs) for cs in zip(*kept, strict=True))
    # each part is sorted by (venue, day) and no venue is in two: a stable sort by venue
    # merges them (a few sorted runs: timsort's linear case)
    order = np.argsort(venue, kind="stable")
    return VenueDays(venue[order], day[order], count[order], t_from, t_to, tz)


def _distinct_rows(*columns: np.ndarray) -> np.ndarray:
    """Indices of one row per distinct row of the columns (sorted by them, the first
    column first)."""
    order = np.lexsort(columns[::-1])
    new = np.zeros(order.shape[0], np.bool_)
    new[:1] = True
    for column in columns:
        ordered = column[order]
        new[1:] |= ordered[1:] != ordered[:-1]
    return order[new]


def _group_counts(venue: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, ...]:
    """(venue, day, rows) per distinct (venue, day) of the rows, sorted."""
    order = np.lexsort((day, venue))
    venue, day = venue[order], day[order]
    starts = np.flatnonzero(np.concatenate(
        ([True], (venue[1:] != venue[:-1]) | (day[1:] != day[:-1])))[:venue.shape[0]])
    return venue[starts], day[starts], np.diff(np.append(starts, venue.shape[0]))


def _on(shard, local, *args):
    """`local(shard, *args)` for a snapshot; the same question by name otherwise."""
    if isinstance(shard, Snapshot):
        return local(shard, *args)
    return getattr(shard, local.__name__)(*args)
