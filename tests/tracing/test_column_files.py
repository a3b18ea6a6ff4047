"""Segments built straight into their files read back as the segments built in memory."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tracing.test_segments import assert_same_segment
from tracing import CheckinIndex, column_files, segments
from tracing.column_files import ColumnFiles


def random_columns(n: int, seed: int):
    rng = np.random.default_rng(seed)
    t_in = rng.integers(1_700_000_000, 1_700_000_000 + 5 * 86400, n)
    return (rng.integers(0, n // 4 + 1, n).astype(np.uint64),
            rng.integers(0, 50, n).astype(np.uint64), t_in,
            np.where(rng.random(n) < 0.3, t_in + rng.integers(1, 7200, n), 0))


@pytest.fixture(autouse=True)
def every_column_mapped(monkeypatch):
    """Map columns of any size, so that small tests take the path of large builds."""
    monkeypatch.setattr(column_files, "MIN_MAPPED_BYTES", 0)


@pytest.mark.parametrize("path", ["two threads", "one thread", "grouped codes", "lexsort"])
def test_built_in_files_equals_built_in_memory(tmp_path, monkeypatch, path):
    """Every build path (packed keys with the codes' bits, in two threads or one; packed
    keys and a column of codes; the lexsort for wide keys, which takes the files as
    scratch only) saves the columns the in-memory build makes."""
    monkeypatch.setattr(segments, "TWO_THREAD_ROWS", 0 if path == "two threads" else 1 << 62)
    if path in ("grouped codes", "lexsort"):
        monkeypatch.setattr(segments, "KEY_BITS", 0)
    if path == "lexsort":
        monkeypatch.setattr(segments, "PACK_BITS", 0)
    cols = random_columns(5000, 1)
    files = ColumnFiles(tmp_path, "seg-1")
    built = segments.build_segment(*cols, files=files)
    segments.save_segment(built, tmp_path, "seg-1", files)
    del built
    assert_same_segment(segments.load_segment(tmp_path, "seg-1"),
                        segments.build_segment(*cols))
    assert not list(tmp_path.glob("*.tmp"))


def test_merged_in_files_equals_one_build(tmp_path):
    cols = random_columns(6000, 2)
    first = segments.build_segment(*(c[:2500] for c in cols))
    second = segments.build_segment(*(c[2500:] for c in cols))
    files = ColumnFiles(tmp_path, "seg-2")
    merged = segments.merge_segments(first, second, files)
    segments.save_segment(merged, tmp_path, "seg-2", files)
    del merged
    assert_same_segment(segments.load_segment(tmp_path, "seg-2"),
                        segments.build_segment(*cols))


def test_index_built_and_merged_in_files_reopens(tmp_path):
    """A bulk load, a merge of later rows and a reopen keep every check-in once."""
    cols = random_columns(8000, 3)
    with CheckinIndex.open(tmp_path / "index", head_limit=1000) as index:
        index.append(*(c[:5000] for c in cols))
        index.append(*(c[5000:] for c in cols))
        index.compact()
    with CheckinIndex.open(tmp_path / "index") as index:
        got = sorted(zip(*(c.tolist() for c in index.checkins()), strict=True))
    want = segments.build_segment(*cols).decode()
    assert got == sorted(zip(*(c.tolist() for c in want), strict=True))


def test_header_keeps_its_room_when_rows_shrink():
    """A column finished shorter than its capacity gets a header of the same length."""
    room = len(column_files._header(10**9, np.dtype(np.uint32)))
    assert len(column_files._header(7, np.dtype(np.uint32), room)) == room
