"""Building and merging segments: the same columns whichever way the rows come in."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tracing import naive
from tests.tracing.test_index import checkin, columns
from tracing import CheckinIndex, checkins, segments


def assert_same_segment(got: segments.Segment, want: segments.Segment) -> None:
    for name in segments.COLUMNS:
        assert getattr(got, name).dtype == getattr(want, name).dtype, name
        assert np.array_equal(getattr(got, name), getattr(want, name)), name


def lexsorted(cols) -> segments.Segment:
    """The segment by the lexsort path (the slow, obvious one)."""
    original = segments.PACK_BITS
    segments.PACK_BITS = 0
    try:
        return segments.build_segment(*cols)
    finally:
        segments.PACK_BITS = original


@settings(max_examples=80, deadline=None)
@given(first=st.lists(checkin(), max_size=30), second=st.lists(checkin(), max_size=30))
def test_merged_segments_equal_one_build(first, second):
    """A base merged with the rows that came after it is the segment of all the rows."""
    merged = segments.merge_segments(segments.build_segment(*columns(first)),
                                     segments.build_segment(*columns(second)))
    assert_same_segment(merged, segments.build_segment(*columns(first + second)))
    assert sorted(zip(*(c.tolist() for c in merged.decode()), strict=True)) == sorted(
        (p, v, t, o or 0) for (p, v, t), o in naive.dedupe(first + second).items())


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_large_groups_out_of_time_order(order):
    """A venue and a person with thousands of rows out of time order (past what the
    insertion sort takes on) build the same segment as the lexsort."""
    rng = np.random.default_rng(3)
    n = 5000
    t_in = np.arange(n, dtype=np.int64) * 7 // 3  # some equal times
    person = np.where(rng.random(n) < 0.5, 1, rng.integers(2, 50, n)).astype(np.uint64)
    venue = np.where(rng.random(n) < 0.5, 10, rng.integers(11, 20, n)).astype(np.uint64)
    t_out = np.where(rng.random(n) < 0.3, t_in + 600, 0)
    rows = np.arange(n)[::-1] if order == "reversed" else rng.permutation(n)
    cols = (person[rows], venue[rows], t_in[rows], t_out[rows])
    assert_same_segment(segments.build_segment(*cols), lexsorted(cols))


@pytest.mark.parametrize("path", ["two threads", "both ends", "one thread", "grouped codes"])
@pytest.mark.parametrize("time_order", [True, False])
@pytest.mark.parametrize("ids", ["large", "small"])
def test_build_paths_equal_the_lexsort(path, time_order, ids, monkeypatch):
    """Every grouping path builds the lexsort's segment: the two views in two threads
    (the codes and the venue view's second pass shared by both from either end), in one, and
    the older path with a column of codes (for keys too wide to carry the codes' low
    bits); with many groups (two grouping passes), duplicates whose copies differ in
    their check-out, rows in and out of time order, and ids coded by a table or a sort."""
    monkeypatch.setattr(segments, "TWO_THREAD_ROWS", 1 << 62 if path == "one thread" else 0)
    monkeypatch.setattr(segments, "CODE_CLAIM", 1000)  # the codes in many claims
    if path == "grouped codes":
        monkeypatch.setattr(segments, "KEY_BITS", 0)
    ends = set()
    if path == "both ends":  # the calling thread starts late: the other takes from the end
        finish = segments.build_kernels.finish_venue_coarse

        def late_front(c_lo, c_hi, backward, *args):
            if not backward and not ends:
                time.sleep(0.5)
            ends.add(backward)
            return finish(c_lo, c_hi, backward, *args)

        monkeypatch.setattr(segments.build_kernels, "finish_venue_coarse", late_front)
    rng = np.random.default_rng(5)
    n = 60_000
    scale = (7919, 104_729) if ids == "large" else (1, 1)
    person = rng.integers(0, 20_000, n).astype(np.uint64) * scale[0] + 3
    venue = rng.integers(0, 5_000, n).astype(np.uint64) * scale[1]
    t_in = rng.integers(1_700_000_000, 1_700_000_000 + 14 * 86_400, n)
    if time_order:
        t_in.sort()
    copies = rng.integers(0, n, n // 10)  # the same check-in again, some with a check-out
    person, venue = np.r_[person, person[copies]], np.r_[venue, venue[copies]]
    t_in = np.r_[t_in, t_in[copies]]
    m = t_in.shape[0]
    t_out = np.where(rng.random(m) < 0.3, t_in + rng.integers(1, 9000, m), 0)
    cols = (person, venue, t_in, t_out)
    built = segments.build_segment(*cols)
    assert len(built) < t_in.shape[0]  # the copies were merged
    assert_same_segment(built, lexsorted(cols))
    if path == "both ends":
        assert ends == {False, True}


def test_head_keys_outgrow_their_first_tables(tmp_path, monkeypatch):
    """Appends past the size at which the head's key table stops doubling (a second and
    third table) still count every repeated check-in as a duplicate."""
    monkeypatch.setattr(checkins, "FIRST_ROWS", 16)
    monkeypatch.setattr(checkins, "REHASH_SLOTS", 1 << 12)
    rng = np.random.default_rng(5)
    n = 20_000
    person = rng.integers(1, 500, n).astype(np.uint64)
    venue = rng.integers(1, 40, n).astype(np.uint64)
    t_in = rng.integers(0, 10**6, n)
    distinct = len(set(zip(person.tolist(), venue.tolist(), t_in.tolist(), strict=True)))
    with CheckinIndex.open(tmp_path / "index", head_limit=1 << 20) as index:
        added = 0
        for lo in range(0, n, 700):
            added += index.append(person[lo:lo + 700], venue[lo:lo + 700],
                                  t_in[lo:lo + 700]).added
        assert added == distinct == len(index)
        again = index.append(person[::-1], venue[::-1], t_in[::-1], rows=True)
        assert again.added == 0 and again.duplicate.all()
