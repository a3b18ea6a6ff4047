"""Traces over several shards answer as one index holding every check-in does."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tracing import naive
from tests.tracing.test_index import PERSONS, VENUES, checkin, columns, dwells, queries, rules
from tracing import CheckinIndex, ContactRule, InvalidQuery
from tracing.adoption import venue_day_counts_over, window_person_ids
from tracing.errors import StorageError
from tracing.shards import ShardedIndex, trace_shards

H = 3600


def _shards(folder: Path, rows, owner, dwell, head_from: int):
    """One index per shard: rows[i] goes to shard owner(i); in each shard the rows from
    `head_from` on stay in the head (appended after a compaction), the rest in the base."""
    names = sorted({owner(i, r) for i, r in enumerate(rows)} | {0})
    indexes = []
    for name in names:
        index = CheckinIndex.open(folder / f"shard-{name}")
        if dwell:
            index.set_venue_dwell(np.array(list(dwell), np.uint64),
                                  np.array(list(dwell.values())))
        mine = [i for i, r in enumerate(rows) if owner(i, r) == name]
        index.append(*columns([rows[i] for i in mine if i < head_from]))
        index.compact()
        index.append(*columns([rows[i] for i in mine if i >= head_from]))
        indexes.append(index)
    return indexes


def _check(indexes, rows, dwell, rule, cases):
    snaps = [ix.snapshot() for ix in indexes]
    for case, lo, length in cases:
        got = trace_shards(snaps, case, lo, lo + length, rule)
        want = naive.trace(rows, case, lo, lo + length, rule, dwell)
        assert got.to_dict() == want.to_dict()
        assert got == want


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(checkin(), max_size=40), split=st.integers(0, 40),
       shards=st.integers(1, 3), dwell=dwells, rule=rules, cases=queries)
def test_venue_shards_answer_as_one_index(rows, split, shards, dwell, rule, cases):
    """Shards by venue, as Kafka's partitions keyed by venue make them; each shard with a
    base and a head: a visit's end often comes from a check-in in another shard."""
    with tempfile.TemporaryDirectory() as folder:
        indexes = _shards(Path(folder), rows, lambda _i, r: VENUES.index(r[1]) % shards,
                          dwell, split)
        try:
            _check(indexes, rows, dwell, rule, cases)
        finally:
            for index in indexes:
                index.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(checkin(), max_size=30), owners=st.lists(st.integers(0, 2), max_size=30),
       copies=st.lists(st.integers(0, 29), max_size=4), dwell=dwells, rule=rules,
       cases=queries)
def test_any_split_and_copies_in_two_shards_answer_as_one_index(rows, owners, copies, dwell,
                                                                rule, cases):
    """Rows spread at random (a venue in several shards), and some rows stored in two
    shards, as a batch indexed twice would be: each check-in still counts once."""
    with tempfile.TemporaryDirectory() as folder:
        indexes = _shards(Path(folder), rows,
                          lambda i, _r: owners[i] if i < len(owners) else 0, dwell, len(rows))
        twice = [rows[i] for i in copies if i < len(rows)]
        indexes[0].append(*columns(twice))
        if len(indexes) > 1:
            indexes[1].append(*columns(twice))
        try:
            _check(indexes, rows, dwell, rule, cases)
        finally:
            for index in indexes:
                index.close()


def test_next_check_in_in_another_shard_ends_the_visit(tmp_path):
    """The case's visit at venue 10 (shard a) ends when it checks in at venue 11 (shard
    b) 20 minutes later: a person who came 30 minutes after the case is no contact."""
    rows_a = [(1, 10, 0, None), (2, 10, 1800, None), (3, 10, 600, None)]
    rows_b = [(1, 11, 1200, None)]
    with CheckinIndex.open(tmp_path / "a") as a, CheckinIndex.open(tmp_path / "b") as b:
        a.append(*columns(rows_a))
        b.append(*columns(rows_b))
        rule = ContactRule(min_overlap=300, depth=1)
        alone = a.trace(1, 0, 4 * H, rule)
        both = trace_shards([a.snapshot(), b.snapshot()], 1, 0, 4 * H, rule)
    assert {c.person for c in alone.contacts} == {2, 3}  # shard a alone gets it wrong
    assert [(c.person, c.exposed_at) for c in both.contacts] == [(3, 600)]
    assert both == naive.trace(rows_a + rows_b, 1, 0, 4 * H, rule)


def test_a_check_out_in_one_shard_ends_the_copy_in_another(tmp_path):
    """One check-in stored in two shards, with its check-out in one only: the check-out
    wins, as a duplicate's does in one index, even where that copy ends before the
    window and its shard leaves it out."""
    rows_a = [(1, 10, 0, 300)]
    rows_b = [(1, 10, 0, None), (2, 10, 900, None)]
    with CheckinIndex.open(tmp_path / "a") as a, CheckinIndex.open(tmp_path / "b") as b:
        a.append(*columns(rows_a))
        b.append(*columns(rows_b))
        rule = ContactRule(depth=1)
        got = trace_shards([a.snapshot(), b.snapshot()], 1, 600, 4 * H, rule)
        assert b.trace(1, 600, 4 * H, rule).contacts  # shard b alone sees a contact
    assert got.contacts == () and got.zones == ()
    assert got == naive.trace(rows_a + rows_b, 1, 600, 4 * H, rule)


def test_copies_with_two_check_outs_count_once_with_the_later(tmp_path):
    rows_a = [(1, 10, 0, None), (2, 10, 600, 1800)]
    rows_b = [(2, 10, 600, 3000)]
    with CheckinIndex.open(tmp_path / "a") as a, CheckinIndex.open(tmp_path / "b") as b:
        a.append(*columns(rows_a))
        b.append(*columns(rows_b))
        got = trace_shards([a.snapshot(), b.snapshot()], 1, 0, 4 * H, ContactRule(depth=1))
    [contact] = got.contacts
    assert [(e.start, e.end) for e in contact.evidence] == [(600, 3000)]
    assert got == naive.trace(rows_a + rows_b, 1, 0, 4 * H, ContactRule(depth=1))


# check-ins over two local days and more, whatever the time zone
spread_checkin = st.tuples(st.sampled_from(PERSONS), st.sampled_from(VENUES),
                           st.integers(0, 70).map(lambda k: k * 1800), st.booleans()).map(
    lambda r: (r[0], r[1], r[2], r[2] + 900 if r[3] else None))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(spread_checkin, max_size=40), owners=st.lists(st.integers(0, 2),
                                                                   max_size=40),
       copies=st.lists(st.integers(0, 39), max_size=6),
       window=st.tuples(st.integers(-1, 70), st.integers(1, 72)),
       tz=st.sampled_from([0, 7 * H, -5 * H]),
       asked=st.sets(st.sampled_from(VENUES), min_size=1))
def test_reports_over_shards_count_each_check_in_once(rows, owners, copies, window, tz,
                                                      asked):
    """The adoption report's counts and the lockdown comparison's persons over shards
    (rows spread at random, a venue's check-ins in several shards, some rows in two
    shards as a batch indexed twice would be) are those of the distinct check-ins."""
    lo, hi = window[0] * 1800, (window[0] + window[1]) * 1800
    with tempfile.TemporaryDirectory() as folder:
        indexes = _shards(Path(folder), rows,
                          lambda i, _r: owners[i] if i < len(owners) else 0, {}, len(rows) // 2)
        twice = [rows[i] for i in copies if i < len(rows)]
        for index in indexes[:2]:
            index.append(*columns(twice))
        try:
            snaps = [ix.snapshot() for ix in indexes]
            counts = venue_day_counts_over(snaps, lo, hi, tz)
            persons = np.unique(np.concatenate(
                [window_person_ids(s, np.array(sorted(asked), np.uint64), lo, hi)
                 for s in snaps]))
        finally:
            for index in indexes:
                index.close()
    distinct = {(p, v, t) for p, v, t, _out in rows if lo <= t < hi}
    want = Counter((v, (t + tz) // 86400) for _p, v, t in distinct)
    got = list(zip(counts.venue.tolist(), counts.day.tolist(), counts.checkins.tolist(),
                   strict=True))
    assert got == sorted((v, d, n) for (v, d), n in want.items())
    assert persons.tolist() == sorted({p for p, v, _t in distinct if v in asked})


def test_sharded_index_follows_folders_a_writer_holds(tmp_path):
    """ShardedIndex reads folders that their writers keep open (no lock taken) and sees
    what they append after it opened."""
    with CheckinIndex.open(tmp_path / "a") as a, CheckinIndex.open(tmp_path / "b") as b:
        a.append(*columns([(1, 10, 0, None)]))
        b.append(*columns([(2, 11, 0, None)]))
        rule = ContactRule(depth=2)
        with ShardedIndex.open([tmp_path / "a", tmp_path / "b"]) as shards:
            assert shards.trace(1, 0, 4 * H, rule).contacts == ()
            a.append(*columns([(3, 10, 600, None)]))
            b.append(*columns([(3, 11, 3000, None), (2, 11, 3000, None)]))
            got = shards.trace(1, 0, 4 * H, rule)
    assert [(c.person, c.level) for c in got.contacts] == [(3, 1), (2, 2)]


def test_bad_queries_and_folders_are_named(tmp_path):
    with pytest.raises(InvalidQuery, match="at least one"):
        trace_shards([], 1, 0, H, ContactRule())
    with pytest.raises(InvalidQuery, match="at least one"):
        ShardedIndex.open([])
    with CheckinIndex.open(tmp_path / "a") as a, pytest.raises(InvalidQuery, match="window"):
        trace_shards([a.snapshot()], 1, H, H, ContactRule())
    with pytest.raises(StorageError, match="no qrtrace index"):
        ShardedIndex.open([tmp_path / "a", tmp_path / "missing"])
