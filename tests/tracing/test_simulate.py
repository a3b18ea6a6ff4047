"""The simulated town: valid, realistic-looking, deterministic check-ins."""

from __future__ import annotations

import io

import numpy as np

from tracing import csvio, simulate

START = 18962  # 2021-12-01, a Wednesday


def _local_hour(t: np.ndarray) -> np.ndarray:
    return ((t + simulate.LOCAL_OFFSET) % simulate.DAY) // simulate.HOUR


def test_checkins_are_valid_and_deterministic():
    a, town = simulate.generate_checkins(3000, 120, 7, seed=5, start_day=START)
    b, _ = simulate.generate_checkins(3000, 120, 7, seed=5, start_day=START)
    assert len(a) > 3000 * 7  # more than one check-in per person and day
    for x, y in zip((a.person, a.venue, a.t_in, a.t_out), (b.person, b.venue, b.t_in, b.t_out),
                    strict=True):
        assert np.array_equal(x, y)
    assert a.person.dtype == np.uint64 and a.t_in.dtype == np.int64
    assert a.person.min() >= 1 and a.person.max() <= 3000
    assert a.venue.min() >= 1 and a.venue.max() <= 120
    assert np.all((a.t_out == 0) | (a.t_out > a.t_in))
    first = simulate.local_midnight(START)
    assert a.t_in.min() >= first and a.t_in.max() < first + 7 * simulate.DAY
    assert town.people == 3000 and len(town.venues()) == 120


def test_routines_follow_local_time():
    c, town = simulate.generate_checkins(4000, 200, 7, seed=1, start_day=START)
    category = town.venue_category[c.venue.astype(np.int64) - 1]
    hours = _local_hour(c.t_in)
    school = hours[category == simulate.CATEGORIES.index("school")]
    market = hours[category == simulate.CATEGORIES.index("market")]
    shop = hours[category == simulate.CATEGORIES.index("shop")]
    assert school.size and np.all((school >= 6) & (school <= 7))
    assert market.size and np.all((market >= 5) & (market <= 9))
    assert np.mean(shop >= 17) > 0.8
    # No school on the weekend (2021-12-04 and -05).
    days = (c.t_in - simulate.local_midnight(START)) // simulate.DAY
    assert not np.any(np.isin(days[category == simulate.CATEGORIES.index("school")], [3, 4]))
    # Some visits have a check-out, most do not.
    assert 0.1 < np.mean(c.t_out > 0) < 0.6


def test_a_few_uploads_are_duplicated_sometimes_with_a_check_out_on_one_copy():
    c, _ = simulate.generate_checkins(5000, 200, 3, seed=2, start_day=START)
    key = np.stack([c.person, c.venue, c.t_in.astype(np.uint64)], axis=1)
    _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    assert 0.001 < (len(c) - len(first)) / len(c) < 0.02
    dup_keys = key[first[counts > 1]]
    differ = 0
    for p, v, t in dup_keys[:200]:
        rows = (c.person == p) & (c.venue == v) & (c.t_in == np.int64(t))
        differ += len(set(c.t_out[rows].tolist())) > 1
    assert differ > 0


def test_sizing_to_a_count_and_the_csv_round_trip():
    c, town = simulate.checkins_for_count(20_000, seed=3)
    assert len(c) == 20_000
    out = io.BytesIO()
    csvio.write_checkins(out, c.person, c.venue, c.t_in, c.t_out, header=True)
    back = csvio.read_checkins_text(out.getvalue().decode())
    assert back.rejected == [] and back.rows == 20_000
    assert np.array_equal(back.person, c.person) and np.array_equal(back.t_out, c.t_out)
    dwell = [v.dwell_minutes for v in town.venues()]
    assert None in dwell and any(d is not None for d in dwell)


def test_households_go_out_together_on_the_weekend():
    c, town = simulate.generate_checkins(3000, 150, 5, seed=6, start_day=START)
    sizes = np.bincount(town.person_home)
    assert sizes.min() >= 1 and sizes.max() <= 6
    assert np.all(town.person_village == town.home_village[town.person_home])
    saturday = simulate.local_midnight(START + 3)
    day = (c.t_in >= saturday) & (c.t_in < saturday + simulate.DAY)
    home = town.person_home[c.person[day].astype(np.int64) - 1]
    # Rows of the same household at the same venue within two minutes.
    key = home * 1_000_000 + c.venue[day].astype(np.int64)
    order = np.lexsort((c.t_in[day], key))
    same = (np.diff(key[order]) == 0) & (np.diff(c.t_in[day][order]) < 120)
    assert same.sum() > 50
