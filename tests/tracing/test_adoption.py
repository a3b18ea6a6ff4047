"""Check-ins per venue and day, the adoption report and the lockdown comparison."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tracing import CheckinIndex, ContactRule, InvalidQuery
from tracing.adoption import (
    adoption_report,
    day_bounds,
    iso_day,
    lockdown_comparison,
    venue_day_counts,
)
from tracing.venues import Venue, VenueTable

H = 3600
TZ = 7 * H
DAY = 19000                      # 2022-01-08, a local day in UTC+7
MIDNIGHT = DAY * 86400 - TZ      # local 00:00 of DAY, in UTC seconds


def cols(rows):
    """Rows of (person, venue, t_in[, t_out]) as the index's columns."""
    rows = [(*r, 0) if len(r) == 3 else r for r in rows]
    p, v, t, o = zip(*rows, strict=True)
    return (np.array(p, np.uint64), np.array(v, np.uint64), np.array(t, np.int64),
            np.array(o, np.int64))


def as_dict(counts):
    return {(int(v), int(d)): int(c)
            for v, d, c in zip(counts.venue, counts.day, counts.checkins, strict=True)}


@pytest.fixture
def index(tmp_path):
    with CheckinIndex.open(tmp_path / "index") as index:
        yield index


# ---- venue_day_counts ---------------------------------------------------------------------

def test_late_evening_and_after_midnight_are_different_local_days(index):
    # 23:30 and 00:30 local: the same UTC day (16:30 and 17:30 UTC), two local days
    index.append(*cols([(1, 10, MIDNIGHT + 23 * H + 1800), (2, 10, MIDNIGHT + 24 * H + 1800)]))
    counts = venue_day_counts(index.snapshot(), MIDNIGHT - 86400, MIDNIGHT + 3 * 86400)
    assert as_dict(counts) == {(10, DAY): 1, (10, DAY + 1): 1}
    utc = venue_day_counts(index.snapshot(), MIDNIGHT - 86400, MIDNIGHT + 3 * 86400,
                           tz_offset_s=0)
    assert len(utc) == 1 and int(utc.checkins[0]) == 2


def test_a_checkin_repeated_in_base_and_head_counts_once(index):
    index.append(*cols([(1, 10, MIDNIGHT + 9 * H), (2, 10, MIDNIGHT + 9 * H)]))
    index.compact()
    # the same two again (one with a check-out now), and a new one, into the head
    index.append(*cols([(1, 10, MIDNIGHT + 9 * H, MIDNIGHT + 10 * H),
                        (2, 10, MIDNIGHT + 9 * H), (3, 10, MIDNIGHT + 9 * H)]))
    snap = index.snapshot()
    assert len(snap.base) == 2 and len(snap.overlay) >= 1
    counts = venue_day_counts(snap, MIDNIGHT, MIDNIGHT + 86400)
    assert as_dict(counts) == {(10, DAY): 3}


def test_window_is_half_open_on_t_in(index):
    index.append(*cols([(1, 10, MIDNIGHT), (2, 10, MIDNIGHT + 86400 - 1),
                        (3, 10, MIDNIGHT + 86400)]))
    assert as_dict(venue_day_counts(index.snapshot(), *day_bounds(DAY, DAY))) == {(10, DAY): 2}
    with pytest.raises(InvalidQuery, match="t_from"):
        venue_day_counts(index.snapshot(), MIDNIGHT, MIDNIGHT)


def test_empty_index_has_no_counts(index):
    counts = venue_day_counts(index.snapshot(), 0, 2**32)
    assert len(counts) == 0 and counts.venue.dtype == np.uint64


@pytest.mark.parametrize("seed", range(6))
def test_counts_match_a_naive_count_of_the_checkins(index, seed):
    rng = np.random.default_rng(seed)
    n = 600
    person = rng.integers(0, 40, n).astype(np.uint64)
    venue = rng.choice(np.array([3, 7, 2**40, 2**64 - 2], np.uint64), n)
    t_in = MIDNIGHT + rng.integers(-2 * 86400, 4 * 86400, n) // 600 * 600
    t_out = np.where(rng.random(n) < 0.3, t_in + 1200, 0)
    cut1, cut2 = sorted(rng.integers(0, n, 2))
    index.append(person[:cut2], venue[:cut2], t_in[:cut2], t_out[:cut2])
    index.compact()
    # the head repeats part of the base (cut1..cut2) and adds the rest
    index.append(person[cut1:], venue[cut1:], t_in[cut1:], t_out[cut1:])
    _, v, t, _ = index.checkins()
    for tz in (TZ, 0, -5 * H):
        for lo, hi in ((0, 2**32), (MIDNIGHT - 86400 + 1234, MIDNIGHT + 2 * 86400 - 600)):
            want = Counter((int(a), (int(b) + tz) // 86400)
                           for a, b in zip(v, t, strict=True) if lo <= b < hi)
            counts = venue_day_counts(index.snapshot(), lo, hi, tz)
            assert as_dict(counts) == dict(want)
            keys = list(zip(counts.venue.tolist(), counts.day.tolist(), strict=True))
            assert keys == sorted(keys)


# ---- adoption_report ----------------------------------------------------------------------

TABLE = VenueTable([
    Venue(10, "Chợ Đồng Xuân", "A", "market"),
    Venue(11, "Trường tiểu học", "A", "school"),
    Venue(12, "UBND xã", "B", "commune_office"),
    Venue(13, "Nhà thuốc", "B", "shop"),
])


def report_index(index):
    """Venue 10: 3 check-ins on two days; 11: one; 12: QR points, none; 13: none, no QR
    points; 99 is not in the table. Half the rows in the base, half in the head."""
    rows = [(1, 10, MIDNIGHT + 8 * H), (2, 10, MIDNIGHT + 9 * H),
            (3, 10, MIDNIGHT + 86400 + 8 * H), (1, 11, MIDNIGHT + 2 * 86400 + 7 * H),
            (4, 99, MIDNIGHT + 10 * H), (4, 99, MIDNIGHT + 86400 * 5)]  # the last: outside
    index.append(*cols(rows[:3]))
    index.compact()
    index.append(*cols(rows[2:]))  # row 2 again: in the base and the head
    return venue_day_counts(index.snapshot(), *day_bounds(DAY - 1, DAY + 3))


def test_adoption_rows_put_silent_qr_points_first(index):
    counts = report_index(index)
    report = adoption_report(TABLE, {12: 2, 10: 1, 11: 3}, counts, DAY, DAY + 2)
    assert [r.venue for r in report.venues] == [12, 13, 11, 99, 10]
    silent = report.venues[0]
    assert (silent.name, silent.village, silent.qr_points, silent.checkins) == (
        "UBND xã", "B", 2, 0)
    assert silent.silent and silent.days_without_checkins == 3 and silent.first_day is None
    market = report.venues[-1]
    assert (market.checkins, market.days_with_checkins, market.days_without_checkins,
            market.first_day, market.last_day) == (3, 2, 1, DAY, DAY + 1)
    stranger = report.venues[3]
    assert (stranger.name, stranger.village, stranger.checkins) == ("venue 99", "", 1)


def test_adoption_villages_sum_their_venues_per_day(index):
    report = adoption_report(TABLE, {12: 2, 10: 1}, report_index(index), DAY, DAY + 2)
    by_name = {v.village: v for v in report.villages}
    assert [v.village for v in report.villages] == ["", "A", "B"]
    a, b = by_name["A"], by_name["B"]
    assert (a.venues, a.venues_with_qr_points, a.silent_venues, a.checkins) == (2, 1, 0, 4)
    assert a.daily == (2, 1, 1)
    assert a.checkins_per_venue_day == pytest.approx(4 / 6)
    assert (b.venues, b.venues_with_qr_points, b.silent_venues, b.checkins) == (2, 1, 1, 0)
    assert b.daily == (0, 0, 0)


def test_adoption_report_as_json(index):
    report = adoption_report(TABLE, {12: 2}, report_index(index), DAY, DAY + 2,
                             villages={"A", "B"})
    doc = report.to_dict()
    assert doc["dates"] == ["2022-01-08", "2022-01-09", "2022-01-10"] == [
        iso_day(d) for d in report.days]
    assert doc["date_from"] == "2022-01-08" and doc["date_to"] == "2022-01-10"
    assert [r["venue"] for r in doc["venues"]] == [12, 13, 11, 10]  # 99 has no village
    assert doc["venues"][-1]["first_date"] == "2022-01-08"
    assert doc["venues"][0]["first_date"] is None and doc["venues"][0]["silent"] is True
    assert doc["summary"] == {"venues": 4, "venues_with_qr_points": 1, "silent_venues": 1,
                              "qr_points": 2, "qr_points_at_venues_with_checkins": 0,
                              "checkins": 4}
    assert [v["village"] for v in doc["villages"]] == ["A", "B"]


def test_qr_points_of_an_unlisted_venue_are_reported(index):
    report = adoption_report(TABLE, {500: 4}, report_index(index), DAY, DAY)
    assert report.venues[0][:6] == (500, "venue 500", "", "", 4, 0)


def test_report_refuses_days_the_counts_do_not_cover(index):
    counts = report_index(index)
    with pytest.raises(InvalidQuery, match="counts cover"):
        adoption_report(TABLE, {}, counts, DAY, DAY + 10)
    with pytest.raises(InvalidQuery, match="day_from"):
        adoption_report(TABLE, {}, counts, DAY + 1, DAY)


# ---- lockdown_comparison ------------------------------------------------------------------

VILLAGES = VenueTable([Venue(10, "chợ", "A"), Venue(11, "trường", "A"), Venue(12, "quán", "A"),
                       Venue(20, "xưởng", "B"), Venue(21, "nhà văn hoá", "B")])


def visit(person, venue, hour_in, hour_out):
    return (person, venue, hour_in * H, hour_out * H)


def test_village_lockdown_against_narrow_zones(index):
    rows = [visit(1, 10, 1, 2),                       # the case, at the market
            visit(2, 10, 1, 2), visit(3, 10, 1, 2),   # two F1
            visit(2, 11, 3, 4), visit(4, 11, 3, 4),   # an F2, at the school
            *(visit(p, 12, 6, 7) for p in range(5, 10)),  # five more in village A
            visit(10, 11, 8, 9),                      # one more, after the F1 left
            visit(11, 12, 11, 12),                    # village A, after the window
            visit(12, 20, 1, 2), visit(13, 21, 3, 4)]  # village B
    index.append(*cols(rows[:7]))
    index.compact()
    index.append(*cols(rows[5:]))
    result = index.trace(1, 0, 10 * H, ContactRule(depth=2))
    page = lockdown_comparison(index.snapshot(), VILLAGES, result)
    assert page["narrow"] == {"quarantine": 2, "test": 1, "venues": 2, "zones": 3,
                              "zone_hours": 1.0}
    assert page["village"] == {"villages": ["A"], "persons": 10, "venues": 3}


def test_a_zone_venue_without_a_village_is_its_own(index):
    index.append(*cols([visit(1, 30, 1, 2), visit(2, 30, 1, 2), visit(3, 10, 1, 2)]))
    result = index.trace(1, 0, 10 * H, ContactRule(depth=1))
    page = lockdown_comparison(index.snapshot(), VILLAGES, result)
    assert page["narrow"]["quarantine"] == 1 and page["narrow"]["test"] == 0
    assert page["village"] == {"villages": ["venue 30"], "persons": 2, "venues": 1}


def test_no_zones_locks_nothing(index):
    index.append(*cols([visit(2, 10, 1, 2)]))
    page = lockdown_comparison(index.snapshot(), VILLAGES, index.trace(1, 0, 10 * H))
    assert page["village"] == {"villages": [], "persons": 0, "venues": 0}
    assert page["narrow"]["zone_hours"] == 0
