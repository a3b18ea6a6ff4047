"""A synthetic commune or city and its QR check-ins, for tests, demos and benchmarks.

The town: villages (or wards), each with homes (people live in households of 1-6; homes
have no QR point, they group people), and venues of the categories in `tracing.venues`:
markets, schools, offices, enterprises, shops, cafes, clinics and commune offices. A
person is a child (goes to a school in their village), a worker (an office or
enterprise, in their village seven times in ten) or an elder.

A day, in Vietnam local time (UTC+7), stored as epoch seconds:
- weekdays: children check in at school around 6:45 (half scan out around 16:30);
  workers at work around 7:30 (enterprises on Saturdays too; some scan out after about
  8.5 hours), a lunch at a cafe for some;
- market mornings (5:30-9:00), mostly adults and elders;
- shops in the evening (17:00-21:00), one or two;
- now and then a clinic (7:00-16:00) or the commune office (weekday office hours);
- households going out together: a quarter of them to a market on weekend mornings,
  a few to a shop on an evening; the members scan in within two minutes.
Some visits carry an explicit check-out, and about 0.5 % of rows are uploaded twice
(same person, venue and check-in; sometimes only one copy has the check-out).

Generation is per day and per block of people, vectorised with numpy, so memory stays
bounded whatever the totals; `iter_checkins` yields those chunks, `generate_checkins`
concatenates them (benchmarks), `checkins_for_count` sizes a town to a target count.
Everything is determined by the seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tracing.venues import CATEGORY_DWELL_MINUTES, Venue

LOCAL_OFFSET = 7 * 3600  # Vietnam, UTC+7, no daylight saving
DAY = 86400
MINUTE = 60
HOUR = 3600

# Share of venues per category (markets and commune offices are few but busy).
CATEGORY_SHARE = {
    "shop": 0.44, "cafe": 0.15, "office": 0.12, "enterprise": 0.06, "school": 0.07,
    "market": 0.05, "clinic": 0.05, "commune_office": 0.06,
}
CATEGORIES = tuple(CATEGORY_SHARE)
CHILD, WORKER, ELDER = 0, 1, 2
ROLE_SHARE = (0.22, 0.58, 0.20)
DUPLICATE_SHARE = 0.005
# Mean check-ins per person and day over a week (measured on this generator; used to size).
CHECKINS_PER_PERSON_DAY = 1.4

_VILLAGE_NAMES = ("Thôn Đông", "Thôn Tây", "Thôn Nam", "Thôn Bắc", "Thôn Trung", "Xóm Chợ",
                  "Xóm Đình", "Xóm Mới", "Thôn Hạ", "Thôn Thượng")
_CATEGORY_NAMES = {
    "shop": "Tạp hóa", "cafe": "Quán cà phê", "office": "Văn phòng", "enterprise": "Công ty",
    "school": "Trường", "market": "Chợ", "clinic": "Trạm y tế", "commune_office": "UBND",
}


@dataclass(frozen=True, slots=True)
class Town:
    """People and venues of a synthetic town; ids are 1-based indices.

    venue_category/venue_village: per venue (index = id - 1). person_village,
    person_role, person_place (school or workplace venue id, 0 for elders), person_home
    (household number): per person. home_village: per household.
    """

    villages: int
    venue_category: np.ndarray
    venue_village: np.ndarray
    person_village: np.ndarray
    person_role: np.ndarray
    person_place: np.ndarray
    person_home: np.ndarray
    home_village: np.ndarray
    seed: int

    @property
    def people(self) -> int:
        """How many persons live in the town."""
        return len(self.person_village)

    def venues(self) -> list[Venue]:
        """The venue table rows; one venue in five leaves its dwell to the category."""
        rng = np.random.default_rng([self.seed, 7])
        own = rng.random(len(self.venue_category)) < 0.8
        jitter = rng.integers(-5, 6, len(self.venue_category))
        rows = []
        for i, (cat, village) in enumerate(zip(self.venue_category.tolist(),
                                               self.venue_village.tolist(), strict=True)):
            category = CATEGORIES[cat]
            dwell = None
            if own[i]:
                dwell = max(5, CATEGORY_DWELL_MINUTES[category] + int(jitter[i]))
            rows.append(Venue(venue=i + 1, name=f"{_CATEGORY_NAMES[category]} {i + 1}",
                              village=village_name(village), category=category,
                              dwell_minutes=dwell))
        return rows


@dataclass(frozen=True, slots=True)
class Checkins:
    """Columns of check-ins: person, venue (uint64), t_in, t_out (int64; 0 = none)."""

    person: np.ndarray
    venue: np.ndarray
    t_in: np.ndarray
    t_out: np.ndarray

    def __len__(self) -> int:
        return len(self.person)


def village_name(village: int) -> str:
    """A readable name for village number `village`."""
    base = _VILLAGE_NAMES[village % len(_VILLAGE_NAMES)]
    return base if village < len(_VILLAGE_NAMES) else f"{base} {village // len(_VILLAGE_NAMES) + 1}"


def build_town(people: int, venues: int, seed: int = 0) -> Town:
    """A town of `people` persons and `venues` venues (both at least 1).

    Raises ValueError for non-positive sizes.
    """
    if people < 1 or venues < 1:
        raise ValueError(f"a town needs people and venues, got {people} and {venues}")
    rng = np.random.default_rng([seed, 1])
    villages = max(1, min(venues // 12, math.ceil(people / 1500)))
    shares = np.array(list(CATEGORY_SHARE.values()))
    counts = np.floor(shares * venues).astype(np.int64)
    # Every category present when there is room; the rest goes to shops.
    if venues >= len(CATEGORIES):
        counts = np.maximum(counts, 1)
    while counts.sum() > venues:
        counts[np.argmax(counts)] -= 1
    counts[0] += venues - counts.sum()
    category = rng.permutation(np.repeat(np.arange(len(CATEGORIES), dtype=np.int8), counts))
    village = rng.integers(0, villages, venues).astype(np.int32)
    # Households of 1 to 6 people (mean about 3.5), each in one village.
    sizes = rng.integers(1, 7, people // 3 + 1)
    person_home = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)[:people]
    home_village = rng.integers(0, villages, int(person_home[-1]) + 1).astype(np.int32)
    person_village = home_village[person_home]
    role = rng.choice(3, size=people, p=ROLE_SHARE).astype(np.int8)
    picker = _VenuePicker(category, village)
    place = np.zeros(people, dtype=np.int64)
    kids = role == CHILD
    place[kids] = picker.pick(rng, CATEGORIES.index("school"), person_village[kids], 1.0)
    workers = np.flatnonzero(role == WORKER)
    at_enterprise = rng.random(len(workers)) < 0.35
    for is_enterprise, cat in ((True, "enterprise"), (False, "office")):
        who = workers[at_enterprise == is_enterprise]
        place[who] = picker.pick(rng, CATEGORIES.index(cat), person_village[who], 0.7)
    return Town(villages, category, village, person_village, role, place, person_home,
                home_village, seed)


class _VenuePicker:
    """Draws venues of a category, in a given village where it has one."""

    def __init__(self, category: np.ndarray, village: np.ndarray) -> None:
        order = np.lexsort((village, category))
        self.ids = order.astype(np.int64) + 1
        self.villages = int(village.max()) + 1 if len(village) else 1
        key = category[order].astype(np.int64) * self.villages + village[order]
        bins = len(CATEGORIES) * self.villages
        self.count = np.bincount(key, minlength=bins)
        self.start = np.concatenate(([0], np.cumsum(self.count)[:-1]))
        per_cat = self.count.reshape(len(CATEGORIES), self.villages).sum(axis=1)
        self.cat_count = per_cat
        self.cat_start = np.concatenate(([0], np.cumsum(per_cat)[:-1]))

    def pick(self, rng: np.random.Generator, cat: int, villages: np.ndarray,
             local_share: float) -> np.ndarray:
        """Venue ids of category `cat`, local with probability `local_share` (0 = none)."""
        n = len(villages)
        if self.cat_count[cat] == 0:
            return np.zeros(n, dtype=np.int64)
        key = cat * self.villages + villages
        count = self.count[key]
        local = (count > 0) & (rng.random(n) < local_share)
        u = rng.random(n)
        anywhere = self.cat_start[cat] + (u * self.cat_count[cat]).astype(np.int64)
        nearby = self.start[key] + (u * np.maximum(count, 1)).astype(np.int64)
        return self.ids[np.where(local, nearby, anywhere)]


@dataclass(frozen=True, slots=True)
class _Outings:
    """Household outings of one day: per household, a venue (0 = none) and a time."""

    venue: np.ndarray
    t_in: np.ndarray


def _household_outings(town: Town, picker: _VenuePicker, rng: np.random.Generator,
                       midnight: int, weekday: int) -> _Outings:
    """Households that go out together: weekend mornings to a market, some evenings
    to a shop; the members scan in one after another."""
    homes = len(town.home_village)
    weekend = weekday >= 5
    going = rng.random(homes) < (0.25 if weekend else 0.04)
    market = rng.random(homes) < (0.7 if weekend else 0.0)
    venue = np.zeros(homes, dtype=np.int64)
    for to_market in (True, False):
        sel = going & (market == to_market)
        cat = CATEGORIES.index("market" if to_market else "shop")
        venue[sel] = picker.pick(rng, cat, town.home_village[sel], 0.9)
    start = np.where(market, 7.0 * HOUR, 18.0 * HOUR).astype(np.int64)
    t_in = midnight + start + (rng.random(homes) * 2.5 * HOUR).astype(np.int64)
    return _Outings(venue, t_in)


def _day_visits(town: Town, picker: _VenuePicker, rng: np.random.Generator, lo: int, hi: int,
                midnight: int, weekday: int, outings: _Outings) -> Checkins:
    """Check-ins of persons lo..hi-1 (0-based) on the local day starting at `midnight`."""
    n = hi - lo
    village = town.person_village[lo:hi]
    role = town.person_role[lo:hi]
    persons = np.arange(lo + 1, hi + 1, dtype=np.uint64)
    parts: list[tuple[np.ndarray, ...]] = []

    def add(who: np.ndarray, venue: np.ndarray, start_h: float, spread_h: float,
            out_share: float, stay_min: tuple[float, float]) -> None:
        who = who[venue > 0] if len(venue) else who
        venue = venue[venue > 0]
        k = len(who)
        if k == 0:
            return
        t_in = midnight + int(start_h * HOUR) + (rng.random(k) * spread_h * HOUR).astype(np.int64)
        stay = rng.uniform(stay_min[0] * MINUTE, stay_min[1] * MINUTE, k).astype(np.int64)
        t_out = np.where(rng.random(k) < out_share, t_in + np.maximum(stay, 60), 0)
        parts.append((persons[who], venue.astype(np.uint64), t_in, t_out))

    cat = CATEGORIES.index
    if weekday < 5:
        kids = np.flatnonzero((role == CHILD) & (rng.random(n) < 0.95))
        add(kids, town.person_place[lo:hi][kids], 6.4, 0.6, 0.5, (560, 600))
    workdays = 6 if weekday < 6 else 0
    workers = np.flatnonzero((role == WORKER) & (rng.random(n) < 0.9))
    place = town.person_place[lo:hi][workers]
    is_enterprise = town.venue_category[np.maximum(place, 1) - 1] == cat("enterprise")
    working = workers[(weekday < 5) | ((weekday < workdays) & is_enterprise)]
    add(working, town.person_place[lo:hi][working], 7.0, 1.2, 0.4, (480, 560))
    lunch = working[rng.random(len(working)) < 0.2]
    add(lunch, picker.pick(rng, cat("cafe"), village[lunch], 0.8), 11.4, 1.0, 0.2, (25, 60))
    grown = role != CHILD
    market = np.flatnonzero(grown & (rng.random(n) < np.where(role == ELDER, 0.5, 0.3)))
    add(market, picker.pick(rng, cat("market"), village[market], 0.9), 5.5, 3.5, 0.1, (20, 70))
    for share in (0.45, 0.15):
        shop = np.flatnonzero(rng.random(n) < share * np.where(grown, 1.0, 0.4))
        add(shop, picker.pick(rng, cat("shop"), village[shop], 0.85), 17.0, 4.0, 0.15, (5, 30))
    clinic = np.flatnonzero(rng.random(n) < 0.008)
    add(clinic, picker.pick(rng, cat("clinic"), village[clinic], 0.7), 7.0, 9.0, 0.5, (20, 90))
    if weekday < 5:
        errand = np.flatnonzero(grown & (rng.random(n) < 0.01))
        add(errand, picker.pick(rng, cat("commune_office"), village[errand], 1.0),
            7.5, 8.0, 0.3, (10, 40))
    home = town.person_home[lo:hi]
    family = np.flatnonzero(outings.venue[home] > 0)
    if len(family):
        t_in = outings.t_in[home[family]] + rng.integers(0, 120, len(family))
        parts.append((persons[family], outings.venue[home[family]].astype(np.uint64), t_in,
                      np.zeros(len(family), dtype=np.int64)))
    if not parts:
        return _empty()
    person, venue, t_in, t_out = (np.concatenate(c) for c in zip(*parts, strict=True))
    return _with_duplicates(rng, Checkins(person, venue, t_in, t_out))


def _with_duplicates(rng: np.random.Generator, c: Checkins) -> Checkins:
    """Add re-uploaded copies of ~0.5 % of rows and sort by check-in time."""
    dup = np.flatnonzero(rng.random(len(c)) < DUPLICATE_SHARE)
    t_out_copy = c.t_out[dup].copy()
    flip = rng.random(len(dup)) < 0.5
    had = t_out_copy > 0
    # Half of the copies differ in check-out: one copy has it, the other has not.
    t_out_copy[flip & had] = 0
    add_out = flip & ~had
    t_out_copy[add_out] = c.t_in[dup][add_out] + rng.integers(600, 3600, int(add_out.sum()))
    person = np.concatenate((c.person, c.person[dup]))
    venue = np.concatenate((c.venue, c.venue[dup]))
    t_in = np.concatenate((c.t_in, c.t_in[dup]))
    t_out = np.concatenate((c.t_out, t_out_copy))
    order = np.argsort(t_in, kind="stable")
    return Checkins(person[order], venue[order], t_in[order], t_out[order])


def _empty() -> Checkins:
    return Checkins(np.empty(0, np.uint64), np.empty(0, np.uint64),
                    np.empty(0, np.int64), np.empty(0, np.int64))


def local_midnight(date_epoch_day: int) -> int:
    """Epoch seconds of 00:00 UTC+7 on the day `date_epoch_day` (days since 1970-01-01)."""
    return date_epoch_day * DAY - LOCAL_OFFSET


def iter_checkins(town: Town, days: int, start_day: int,
                  block: int = 1 << 20) -> Iterator[Checkins]:
    """Yield the check-ins of `days` local days from `start_day` (days since the epoch).

    Chunks are per day and per block of `block` persons, each sorted by check-in time.
    """
    picker = _VenuePicker(town.venue_category, town.venue_village)
    for d in range(days):
        day = start_day + d
        weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        outings = _household_outings(town, picker, np.random.default_rng([town.seed, 4, d]),
                                     local_midnight(day), weekday)
        for lo in range(0, town.people, block):
            rng = np.random.default_rng([town.seed, 2, d, lo])
            chunk = _day_visits(town, picker, rng, lo, min(town.people, lo + block),
                                local_midnight(day), weekday, outings)
            if len(chunk):
                yield chunk


def generate_checkins(people: int, venues: int, days: int, seed: int = 0,
                      start_day: int = 18962) -> tuple[Checkins, Town]:
    """All check-ins of a simulated town as columns (no CSV), and the town.

    `start_day` defaults to 2021-12-01. Raises ValueError for non-positive sizes.
    """
    town = build_town(people, venues, seed)
    chunks = list(iter_checkins(town, days, start_day))
    if not chunks:
        return _empty(), town
    return Checkins(*(np.concatenate(col) for col in zip(*(
        (c.person, c.venue, c.t_in, c.t_out) for c in chunks), strict=True))), town


def checkins_for_count(n: int, seed: int = 0, days: int = 14,
                       start_day: int = 18962) -> tuple[Checkins, Town]:
    """About-exactly `n` check-ins over `days` days: sizes the town, then trims.

    People are sized from CHECKINS_PER_PERSON_DAY (with a margin, grown if short), venues
    at one per 12 people (Hanoi posted 750,120 QR points for about 8 million people);
    the extra rows are dropped at random.
    """
    people = max(10, math.ceil(n / (days * CHECKINS_PER_PERSON_DAY) * 1.05))
    for _ in range(3):
        c, town = generate_checkins(people, max(8, people // 12), days, seed, start_day)
        if len(c) >= n:
            break
        people = math.ceil(people * 1.1 * n / max(len(c), 1))
    if len(c) > n:
        keep = np.sort(np.random.default_rng([seed, 3]).choice(len(c), n, replace=False))
        c = Checkins(c.person[keep], c.venue[keep], c.t_in[keep], c.t_out[keep])
    return c, town
