"""Tables of cases for tracing/rule.py, the window arithmetic of the contact rule."""

import pytest

from tracing import rule

H = 3600


@pytest.mark.parametrize(("t_in", "t_out", "dwell", "next_t_in", "expected"), [
    (100, None, H, None, 100 + H),          # no check-out, no next: dwell
    (100, 0, H, None, 100 + H),             # 0 means no check-out
    (100, -1, H, None, 100 + H),            # so does a negative value
    (100, 250, H, None, 250),               # explicit check-out wins
    (100, 250, H, 200, 250),                # ... even over an earlier next check-in
    (100, 9000, H, None, 9000),             # ... and over the dwell
    (100, None, H, 700, 700),               # next check-in ends it early
    (100, None, H, 100, 100 + H),           # a next at the same second is not "later"
    (100, None, H, 100 + H, 100 + H),       # next exactly at the dwell's end
    (100, None, H, 100 + H + 5, 100 + H),   # next after the dwell: dwell
    (100, None, 0, None, 100),              # zero dwell: an empty visit
])
def test_visit_end(t_in, t_out, dwell, next_t_in, expected):
    assert rule.visit_end(t_in, t_out, dwell, next_t_in) == expected


@pytest.mark.parametrize(("start", "end", "lo", "hi", "linger", "expected"), [
    (10, 20, 0, 100, 0, (10, 20)),     # inside the window
    (10, 20, 15, 100, 0, (15, 20)),    # window starts inside
    (10, 20, 0, 15, 0, (10, 15)),      # window ends inside
    (10, 20, 0, 15, 30, (10, 45)),     # linger extends past the window's end
    (10, 20, 20, 30, 30, None),        # window starts at the visit's end: nothing
    (10, 20, 0, 10, 30, None),         # window ends at the visit's start: nothing
    (10, 10, 0, 100, 30, None),        # an empty visit has no presence
    (10, 20, 12, 12, 0, None),         # an empty window
])
def test_presence(start, end, lo, hi, linger, expected):
    assert rule.presence(start, end, lo, hi, linger) == expected


@pytest.mark.parametrize(("a", "b", "min_overlap", "expected"), [
    ((0, 600), (0, 600), 600, (0, 600)),        # exactly min_overlap qualifies
    ((0, 599), (0, 600), 600, None),            # one second short
    ((0, 100), (100, 200), 0, None),            # touching is a zero-length overlap
    ((0, 101), (100, 200), 0, (100, 101)),      # min_overlap 0 still needs 1 s
    ((0, 1000), (200, 300), 60, (200, 300)),    # visit inside the presence
    ((200, 300), (0, 1000), 60, (200, 300)),    # presence inside the visit
    ((0, 10), (20, 30), 0, None),               # apart
])
def test_qualifying_overlap(a, b, min_overlap, expected):
    assert rule.qualifying_overlap(*a, *b, min_overlap) == expected
