"""The head's key tables: a table a finished head gave back starts the next head empty."""

from __future__ import annotations

import numpy as np
import pytest

from tracing import CheckinIndex, checkins
from tracing.checkins import HeadKeys, TablePool


@pytest.fixture
def pool(monkeypatch) -> TablePool:
    """A pool of its own that keeps tables of every size."""
    pool = TablePool(1 << 28)
    monkeypatch.setattr(checkins, "TABLES", pool)
    monkeypatch.setattr(checkins, "MIN_POOLED_SLOTS", 1)
    return pool


def keys(n: int, seed: int):
    rng = np.random.default_rng(seed)
    person = rng.integers(1, 2_000, n).astype(np.uint64)
    venue = rng.integers(1, 300, n).astype(np.uint64)
    t_in = rng.integers(0, 10**6, n)
    cols = np.unique(np.stack([person, venue, t_in.astype(np.uint64)]), axis=1)
    return cols[0], cols[1], cols[2].astype(np.int64), np.zeros(cols.shape[1], np.int64)


def test_a_kept_table_comes_back_empty(pool):
    """Keys of a dead head are not found by the head that takes its table over."""
    person, venue, t_in, t_out = keys(30_000, 1)
    n = person.shape[0]
    first = HeadKeys()
    first.upsert(person, venue, t_in, t_out, np.full(n, -1, np.int64))
    del first  # its tables go to the pool
    assert pool._bytes > 0
    second = HeadKeys()
    stored = np.full(n, -1, np.int64)
    changed, new = second.upsert(person, venue, t_in, t_out, stored)
    assert new == n and changed.all() and (stored == -1).all()
    assert pool._bytes == 0 or len(second) == n


def test_pool_keeps_no_more_than_its_limit(pool):
    pool.limit_bytes = 3 * (1 << 12) * 24
    for _ in range(5):
        pool.give(np.zeros((1 << 12, 3), np.uint64))
    assert pool._bytes == 3 * (1 << 12) * 24
    table, shift = pool.take(100)
    assert table.shape == (1 << 12, 3) and not table.any() and shift == 64 - 12
    assert pool._bytes == 2 * (1 << 12) * 24


def test_duplicates_over_merges_with_reused_tables(tmp_path, pool, monkeypatch):
    """Heads after merges reuse the tables of the heads before them: every repeated
    check-in is still a duplicate, every new one is added, whichever head holds it."""
    monkeypatch.setattr(checkins, "FIRST_ROWS", 16)
    rng = np.random.default_rng(7)
    person, venue, t_in, _ = keys(40_000, 2)
    n = person.shape[0]
    seen: set = set()
    with CheckinIndex.open(tmp_path / "index", head_limit=4_000) as index:
        for _ in range(25):
            rows = rng.integers(0, n, 1_500)
            result = index.append(person[rows], venue[rows], t_in[rows])
            batch = set(zip(person[rows].tolist(), venue[rows].tolist(),
                            t_in[rows].tolist(), strict=True))
            assert result.added == len(batch - seen)
            seen |= batch
        assert len(index) == len(seen)


def test_a_growing_head_takes_a_reserved_table(pool, monkeypatch):
    """A head outgrowing its first table takes a larger kept one (reserved at start)
    instead of making a new one, and its keys are all found in it afterwards."""
    monkeypatch.setattr(checkins, "FIRST_ROWS", 16)
    pool.reserve(1, 1 << 18)
    assert pool._bytes == (1 << 19) * 24
    reserved = pool._free[1 << 19][0]
    reserved[:] = 7  # what a head left in it: take() must clear it
    person, venue, t_in, t_out = keys(20_000, 3)
    n = person.shape[0]
    head = HeadKeys()
    changed, new = head.upsert(person, venue, t_in, t_out, np.full(n, -1, np.int64))
    assert new == n and changed.all()
    assert head._tables[-1][0] is reserved  # grown into it: no new table made
    assert not pool._free[1 << 19]
    stored = np.full(n, -1, np.int64)
    changed, new = head.upsert(person, venue, t_in, t_out, stored)
    assert new == 0 and not changed.any() and (stored == 0).all()


def test_reserve_keeps_within_the_limit_and_exact_sizes_stay_exact(pool):
    pool.limit_bytes = 2 * (1 << 13) * 24
    pool.reserve(5, 1 << 12)
    assert pool._bytes == 2 * (1 << 13) * 24
    pool.reserve(5, 1 << 12)  # full: nothing more, and it returns
    assert pool._bytes == 2 * (1 << 13) * 24
    table, _ = pool.take(100)  # a new head's first table: the size it asks for
    assert table.shape == (1 << 12, 3)
    table, shift = pool.take(100, at_least=True)
    assert table.shape == (1 << 13, 3) and shift == 64 - 13 and not table.any()
