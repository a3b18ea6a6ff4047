"""Every tracing kernel a long-running process calls, called once before it serves.

numba compiles a kernel on its first call (a fresh install: about a minute for them
all) and, even with its on-disk cache, still loads and links the machine code then,
holding the GIL: 5-100 ms a kernel. A server that left this to its requests stalled
them: at 10M check-ins, the first scans after start and the first exposure pages made
while scans flowed waited 230-800 ms for the index's append and overlay kernels
(benchmarks/RESULTS.md, the HTTP API, eighteenth session).

`warm_up()` runs the index's paths on a few check-ins in a scratch folder, with the
argument types the real index gives them (the same code opens, appends, merges and maps
it): appends to the head and in bulk, snapshots with an overlay, traces (one index and
shards), the adoption counts and the lockdown comparison, a check-out's lookup, a
merge, a retention purge, and a follower's catch-up.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tracing.adoption import (
    lockdown_comparison,
    venue_checkins,
    venue_day_counts,
    window_person_ids,
)
from tracing.follower import IndexFollower
from tracing.index import CheckinIndex
from tracing.model import ContactRule
from tracing.shards import trace_shards
from tracing.venues import Venue, VenueTable

DAY = 86_400
# a few hundred check-ins: 30 persons at 6 venues over 3 days, visits 15-90 minutes
PERSONS, VENUES, DAYS = 30, 6, 3


def _checkins(start: int, seed: int, wide: bool = False) -> tuple[np.ndarray, ...]:
    """Check-ins of persons 1..PERSONS, or with `wide`, of ids spread over 2**63 as
    tokens' ids are (segments code small ids by a table and large ones by a sort)."""
    rng = np.random.default_rng(seed)
    n = PERSONS * DAYS * 3
    person = rng.integers(1, PERSONS + 1, n).astype(np.uint64)
    if wide:
        person = person * np.uint64(2**58 + 1)
    venue = rng.integers(1, VENUES + 1, n).astype(np.uint64)
    t_in = start + rng.integers(0, DAYS * DAY, n).astype(np.int64)
    t_out = np.where(rng.random(n) < 0.5, t_in + rng.integers(900, 5400, n), 0)
    return person, venue, t_in, t_out.astype(np.int64)


def warm_up() -> None:
    """Call every kernel of the index's serving paths once (see the module docstring).
    Writes only in a temporary folder, removed after."""
    venues = VenueTable(Venue(v, village=f"village {v % 2}", dwell_minutes=30 + v)
                        for v in range(1, VENUES + 1))
    with tempfile.TemporaryDirectory(prefix="qrtrace-warm-up-") as scratch:
        folder = Path(scratch) / "index"
        start = 1_700_000_000 - 1_700_000_000 % DAY
        rule = ContactRule(min_overlap=300, depth=2)
        with CheckinIndex.open(folder, retention_days=7, head_limit=64) as index:
            index.set_venue_dwell(*venues.resolved_dwell())
            index.append(*_checkins(start, 1, wide=True), rows=True)  # a base, in bulk
            for seed in (2, 3):  # head batches
                index.append(*(c[:40] for c in _checkins(start, seed)), rows=True)
            # and two that repeat rows: of the base, and of the head
            index.append(*(c[:40] for c in _checkins(start, 1, wide=True)))
            index.append(*(c[:40] for c in _checkins(start, 3)))
            snapshot = index.snapshot()  # the head as an overlay
            t_from, t_to = start, start + DAYS * DAY
            for person in range(1, 4):
                result = index.trace(person, t_from, t_to, rule)
                lockdown_comparison(snapshot, venues, result)
                result.contacts_slice(0, 10)
            trace_shards([snapshot, snapshot], 1, t_from, t_to, rule)
            venue_day_counts(snapshot, t_from, t_to)
            ids = np.arange(1, VENUES + 1, dtype=np.uint64)
            window_person_ids(snapshot, ids, t_from, t_to)
            venue_checkins(snapshot, ids, t_from, t_to)
            index.last_checkin(1, 1, t_to)
            index.checkins()
            with IndexFollower.open(folder, poll_s=None) as follower:
                index.append(*(c[:20] for c in _checkins(start, 4)))
                follower.refresh()
                follower.snapshot()
                follower.trace(1, t_from, t_to, rule)
            index.compact()
            index.trace(1, t_from, t_to, rule)
            index.purge(start + (DAYS + 6) * DAY)  # the first day has expired
