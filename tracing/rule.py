"""Window arithmetic of the contact rule (DESIGN.md, "The contact rule"), one small pure
function per step. The numba kernels repeat these steps inline (they cannot call Python);
tests/tracing/test_rule.py pins both to the same tables.

Intervals are half-open [start, end) in integer seconds. An interval with start >= end is
empty; every function returns None for an empty result.
"""

from __future__ import annotations

NO_CHECKOUT = 0
"""t_out value meaning "no explicit check-out" (any t_out <= 0 means the same)."""


def visit_end(t_in: int, t_out: int | None, dwell: int, next_t_in: int | None) -> int:
    """When a visit ends (rule 2).

    t_out: the explicit check-out, or None / <= 0 when there is none; it wins outright.
    dwell: the venue's dwell in seconds. next_t_in: the same person's next strictly later
    t_in at any venue, or None. Returns min(t_in + dwell, next_t_in) without a check-out.
    """
    if t_out is not None and t_out > 0:
        return t_out
    end = t_in + dwell
    if next_t_in is not None and t_in < next_t_in < end:
        end = next_t_in
    return end


def clip(start: int, end: int, lo: int, hi: int) -> tuple[int, int] | None:
    """[start, end) cut to [lo, hi); None when nothing of positive length is left."""
    s, e = max(start, lo), min(end, hi)
    return (s, e) if s < e else None


def presence(start: int, end: int, lo: int, hi: int, linger: int) -> tuple[int, int] | None:
    """A visit's infectious presence (rules 4 and 6): clipped to [lo, hi), then + linger.

    A visit that does not reach into the window has no presence, linger or not.
    """
    clipped = clip(start, end, lo, hi)
    if clipped is None:
        return None
    return clipped[0], clipped[1] + linger


def overlap(a_start: int, a_end: int, b_start: int, b_end: int) -> tuple[int, int] | None:
    """The common part of two intervals, or None if they only touch or are apart."""
    return clip(a_start, a_end, b_start, b_end)


def qualifying_overlap(presence_start: int, presence_end: int, visit_start: int,
                       visit_end_: int, min_overlap: int) -> tuple[int, int] | None:
    """The overlap of a presence and a visit if it lasts >= max(min_overlap, 1 s) (rule 5)."""
    common = overlap(presence_start, presence_end, visit_start, visit_end_)
    if common is None or common[1] - common[0] < max(min_overlap, 1):
        return None
    return common
