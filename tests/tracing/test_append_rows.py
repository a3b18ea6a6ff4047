"""append(..., rows=True) says which rows were duplicates, and duplicates() says it before
storing anything; last_checkin finds the visit a check-out scan ends. All against plain
Python models, through head appends, background merges, bulk loads (batches as large as a
merge), compactions and reopening."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tracing import naive
from tests.tracing.test_index import columns
from tracing import CheckinIndex, InvalidQuery

PERSONS = [1, 2, 3, 2**40 + 7, 2**64 - 1]
VENUES = [10, 11, 2**63 + 5]


@st.composite
def checkin(draw):
    t_in = draw(st.integers(0, 12)) * 300  # few distinct keys: duplicates are common
    t_out = draw(st.one_of(st.none(), st.integers(1, 6).map(lambda k: t_in + k * 300)))
    return (draw(st.sampled_from(PERSONS)), draw(st.sampled_from(VENUES)), t_in, t_out)


operations = st.lists(st.one_of(
    st.tuples(st.just("append"), st.lists(checkin(), max_size=3)),
    st.tuples(st.just("append"), st.lists(checkin(), max_size=14)),
    st.tuples(st.just("compact")), st.tuples(st.just("reopen"))), min_size=1, max_size=12)


class Model:
    """What the index should answer: every row appended so far."""

    def __init__(self):
        self.rows = []

    def duplicates(self, batch) -> list[bool]:
        stored = {(p, v, t) for p, v, t, _ in self.rows}
        duplicate = []
        for p, v, t, _ in batch:
            duplicate.append((p, v, t) in stored)
            stored.add((p, v, t))
        return duplicate

    def append(self, batch) -> list[bool]:
        duplicate = self.duplicates(batch)
        self.rows += batch
        return duplicate

    def last_checkin(self, person, venue, at):
        found = [(t, o or 0) for (p, v, t), o in naive.dedupe(self.rows).items()
                 if p == person and v == venue and t <= at]
        return max(found) if found else None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, head_limit=st.sampled_from([2, 4, 1 << 20]), data=st.data())
def test_row_outcomes_and_last_checkin_match_the_model(ops, head_limit, data):
    """A small head limit sends batches of a few rows down the bulk-load path and starts
    background merges; every step's per-row answer matches the model."""
    model = Model()
    with tempfile.TemporaryDirectory() as folder:
        index = CheckinIndex.open(folder, head_limit=head_limit)
        try:
            for op in ops:
                if op[0] == "append":
                    asked = index.duplicates(*columns(op[1])[:3])
                    assert asked.tolist() == model.duplicates(op[1])
                    result = index.append(*columns(op[1]), rows=True)
                    want = model.append(op[1])
                    assert result.duplicate.dtype == np.bool_
                    assert result.duplicate.tolist() == want
                    assert result.duplicates == sum(want) == int(result.duplicate.sum())
                    assert result.added == len(want) - sum(want)
                elif op[0] == "compact":
                    index.compact()
                else:
                    index.close()
                    index = CheckinIndex.open(folder, head_limit=head_limit)
                assert len(index) == len(naive.dedupe(model.rows))
                for _ in range(3):
                    person, venue = data.draw(st.sampled_from(PERSONS)), \
                        data.draw(st.sampled_from(VENUES))
                    at = data.draw(st.integers(-1, 14)) * 300 + data.draw(st.sampled_from([0, 1]))
                    assert index.last_checkin(person, venue, at) == \
                        model.last_checkin(person, venue, at)
            got = sorted(zip(*(c.tolist() for c in index.checkins()), strict=True))
            assert got == sorted((p, v, t, o or 0)
                                 for (p, v, t), o in naive.dedupe(model.rows).items())
        finally:
            index.close()


def test_bulk_load_marks_rows_stored_before_it(tmp_path):
    """A batch as large as a merge goes straight into a new segment; its duplicates are
    the rows whose keys base or head held, and later rows of a key in the batch."""
    with CheckinIndex.open(tmp_path / "ix", head_limit=4) as index:
        index.append(*columns([(1, 10, 0, None), (2, 10, 0, None), (3, 10, 0, None),
                               (4, 10, 0, None)]))  # bulk: into the base
        index.append(*columns([(5, 10, 0, None)]))  # into the head
        assert index.stats()["head_rows"] == 1
        batch = [(9, 10, 0, None), (1, 10, 0, 600), (5, 10, 0, None), (9, 10, 0, 900),
                 (6, 10, 0, None), (1, 10, 300, None)]
        result = index.append(*columns(batch), rows=True)
        assert index.stats()["head_rows"] == 0  # it did take the bulk path
        assert result.duplicate.tolist() == [False, True, True, True, False, False]
        assert (result.added, result.duplicates) == (3, 3)
        assert len(index) == 8
        assert index.last_checkin(1, 10, 299) == (0, 600)
        assert index.last_checkin(9, 10, 10**6) == (0, 900)


def test_appends_while_a_merge_runs(tmp_path, monkeypatch):
    """While a background merge holds the old head, appends are judged against base,
    merging head and new head alike, before and after the merge installs."""
    import threading

    release = threading.Event()
    build = CheckinIndex._build

    def slow_build(self, *args, **kwargs):
        assert release.wait(30)
        return build(self, *args, **kwargs)

    monkeypatch.setattr(CheckinIndex, "_build", slow_build)
    model = Model()
    with CheckinIndex.open(tmp_path / "ix", head_limit=4) as index:
        def append(batch):
            assert index.duplicates(*columns(batch)[:3]).tolist() == model.duplicates(batch)
            assert index.append(*columns(batch), rows=True).duplicate.tolist() == \
                model.append(batch)
            assert len(index) == len(naive.dedupe(model.rows))

        append([(1, 10, 0, None), (2, 10, 0, None)])
        append([(3, 10, 0, 600), (1, 10, 0, None), (8, 11, 0, None)])  # 4 rows: a merge
        assert index._merger is not None
        append([(3, 10, 0, None), (4, 10, 0, None), (3, 10, 0, 900)])
        append([(3, 10, 0, 300), (4, 10, 0, None), (5, 11, 60, None)])
        append([(8, 11, 0, 60)])
        assert index.last_checkin(3, 10, 0) == (0, 900)
        assert index.last_checkin(8, 11, 0) == (0, 60)
        assert index._merger is not None  # all of that while the first merge waited
        release.set()
        index._wait_merge()
        assert index.stats()["generation"] == 1
        append([(4, 10, 0, None), (3, 10, 0, 1200), (6, 10, 0, None)])
        assert index.last_checkin(3, 10, 0) == (0, 1200)
        index.compact()
        append([(1, 10, 0, None), (6, 10, 0, None), (7, 10, 0, None)])


def test_rows_false_costs_no_mask(tmp_path):
    with CheckinIndex.open(tmp_path / "ix") as index:
        result = index.append(*columns([(1, 10, 0, None), (1, 10, 0, None)]))
        assert result.duplicate is None and (result.added, result.duplicates) == (1, 1)
        assert index.append(*columns([]), rows=True).duplicate.tolist() == []


def test_last_checkin_prefers_the_latest_and_the_longest_checkout(tmp_path):
    with CheckinIndex.open(tmp_path / "ix") as index:
        index.append(*columns([(1, 10, 100, None), (1, 10, 500, 900), (1, 11, 700, None)]))
        index.compact()
        assert index.last_checkin(1, 10, 99) is None
        assert index.last_checkin(1, 10, 100) == (100, 0)
        assert index.last_checkin(1, 10, 10**9) == (500, 900)  # a later venue does not count
        assert index.last_checkin(1, 12, 10**9) is None
        assert index.last_checkin(7, 10, 10**9) is None
        index.append(*columns([(1, 10, 500, 1200)]))  # the head lengthens a base visit
        assert index.last_checkin(1, 10, 600) == (500, 1200)
        index.append(*columns([(1, 10, 100, 400)]))  # the check-out of the earlier visit
        assert index.last_checkin(1, 10, 499) == (100, 400)
        assert index.last_checkin(1, 10, 2**40) == (500, 1200)
        assert index.last_checkin(1, 10, -5) is None
        with pytest.raises(InvalidQuery, match="person"):
            index.last_checkin(-1, 10, 0)
        with pytest.raises(InvalidQuery, match="venue"):
            index.last_checkin(1, 2**64, 0)


def test_failed_log_write_leaves_no_trace(tmp_path, monkeypatch):
    """A batch whose log write fails is not acknowledged: the index forgets its keys, so
    the same batch appended again counts as new."""
    from tracing.wal import WriteAheadLog

    with CheckinIndex.open(tmp_path / "ix") as index:
        index.append(*columns([(1, 10, 0, None)]))

        def failing_write(self, *cols):
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as patch:
            patch.setattr(WriteAheadLog, "write", failing_write)
            with pytest.raises(OSError):
                index.append(*columns([(1, 10, 0, 600), (2, 10, 0, None)]))
        assert len(index) == 1
        result = index.append(*columns([(1, 10, 0, 600), (2, 10, 0, None)]), rows=True)
        assert result.duplicate.tolist() == [True, False]
        assert len(index) == 2 and index.last_checkin(1, 10, 0) == (0, 600)


def test_failed_merge_keeps_the_head(tmp_path, monkeypatch):
    """A merge that fails in the caller's thread leaves the head whole, for the next one."""
    with CheckinIndex.open(tmp_path / "ix") as index:
        index.append(*columns([(1, 10, 0, None), (2, 10, 0, None)]))

        def failing_build(*args, **kwargs):
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as patch:
            patch.setattr(CheckinIndex, "_build", failing_build)
            with pytest.raises(OSError):
                index.compact()
        assert len(index) == 2
        assert index.append(*columns([(2, 10, 0, None)]), rows=True).duplicate.tolist() == [True]
        index.append(*columns([(3, 10, 0, None)]))
        index.compact()
        assert len(index) == 3 and index.stats()["head_rows"] == 0
    with CheckinIndex.open(tmp_path / "ix") as index:
        assert sorted(index.checkins()[0].tolist()) == [1, 2, 3]


def test_failed_background_merge_keeps_every_row(tmp_path, monkeypatch):
    """Rows appended while a background merge fails are judged and counted as before."""
    import threading

    from tracing import StorageError

    release = threading.Event()

    def failing_build(self, *args, **kwargs):
        assert release.wait(30)
        raise OSError(28, "No space left on device")

    model = Model()
    with CheckinIndex.open(tmp_path / "ix", head_limit=4) as index:
        def append(batch):
            assert index.duplicates(*columns(batch)[:3]).tolist() == model.duplicates(batch)
            assert index.append(*columns(batch), rows=True).duplicate.tolist() == \
                model.append(batch)

        with monkeypatch.context() as patch:
            patch.setattr(CheckinIndex, "_build", failing_build)
            append([(1, 10, 0, None), (2, 10, 0, None)])
            append([(3, 10, 0, None), (4, 10, 0, None)])  # 4 rows: a merge starts
            append([(1, 10, 0, 600), (5, 10, 0, None)])
            release.set()
            with pytest.raises(StorageError, match="background merge failed"):
                index.compact()
        assert len(index) == 5
        append([(5, 10, 0, None), (1, 10, 0, None), (6, 10, 0, None)])
        assert index.last_checkin(1, 10, 0) == (0, 600)
        index.compact()
        assert len(index) == 6
    with CheckinIndex.open(tmp_path / "ix") as index:
        assert len(index) == 6 and index.last_checkin(1, 10, 0) == (0, 600)
