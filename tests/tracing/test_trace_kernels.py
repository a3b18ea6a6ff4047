"""contacts_of, the step that turns a level's evidence rows into its contacts, against a
plain Python ordering: the rows come nearly in order or in any order, with repeats and
with many equal starts (persons already at a venue when a presence began). The kernel
sorts nearly ordered rows by insertion; others by an argsort of the starts, then runs
of equal starts by insertion up to SMALL_TIE rows and by stable sorts beyond."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tracing.trace_kernels import SMALL_TIE, contacts_of


def expected_contacts(rows: list[tuple[int, int, int, int]]):
    """[(person, exposed_at, [(venue, start, end), ...])] ordered by (exposed_at,
    person), each person's rows by (start, end, venue), repeats dropped."""
    by_person: dict[int, set[tuple[int, int, int]]] = {}
    for p, v, s, e in rows:
        by_person.setdefault(p, set()).add((v, s, e))
    out = []
    for p, evidence in by_person.items():
        ordered = sorted(evidence, key=lambda r: (r[1], r[2], r[0]))
        out.append((p, ordered[0][1], ordered))
    return sorted(out, key=lambda c: (c[1], c[0]))


def kernel_contacts(rows: list[tuple[int, int, int, int]]):
    cols = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    p, v = np.array(cols[0], np.uint64), np.array(cols[1], np.uint64)
    s, e = np.array(cols[2], np.int64), np.array(cols[3], np.int64)
    persons, exposed_at, offsets, ev_v, ev_s, ev_e = contacts_of(p, v, s, e)
    assert offsets[0] == 0 and offsets[-1] == len(ev_v) == len(ev_s) == len(ev_e)
    return [(int(persons[g]), int(exposed_at[g]),
             [(int(ev_v[r]), int(ev_s[r]), int(ev_e[r]))
              for r in range(offsets[g], offsets[g + 1])])
            for g in range(len(persons))]


row = st.tuples(st.integers(0, 40),                       # person
                st.integers(0, 5),                        # venue
                st.sampled_from([1_000, 1_000, 1_600, 2_400]),  # start: many ties
                st.integers(1_900, 2_000))                # end


@settings(max_examples=300, deadline=None)
@given(st.lists(row, max_size=3 * SMALL_TIE))
def test_contacts_ordered_as_the_rule_says(rows):
    assert kernel_contacts(rows) == expected_contacts(rows)


def test_a_long_run_of_equal_starts_and_repeats():
    """More rows at one start than the insertion sort takes, shuffled, each twice."""
    rng = np.random.default_rng(7)
    rows = [(int(rng.integers(0, 500)), int(rng.integers(0, 3)), 5_000,
             int(rng.integers(5_100, 5_200))) for _ in range(4 * SMALL_TIE)]
    rows += [(p, v, s + 60, e) for p, v, s, e in rows[:SMALL_TIE]]
    rows = rows + rows[::-1]
    got = kernel_contacts(rows)
    assert got == expected_contacts(rows)
    assert sum(len(evidence) for _, _, evidence in got) == len(set(rows))


@settings(max_examples=100, deadline=None)
@given(st.lists(row, min_size=40, max_size=200), st.randoms(use_true_random=False))
def test_rows_nearly_in_order(rows, random):
    """As a level's rows come: by start, the rows at one start in any order (ordered
    by insertion in place, without the argsort)."""
    rows = sorted(rows, key=lambda r: (r[2], random.random()))
    assert kernel_contacts(rows) == expected_contacts(rows)


def test_rows_out_of_order_with_short_runs_of_equal_starts():
    """Too far out of order for the insertion sort: the argsort of the starts, then each
    short run of equal starts (two to a few rows) ordered by insertion."""
    rng = np.random.default_rng(11)
    rows = [(int(rng.integers(0, 60)), int(rng.integers(0, 4)), 1_000 + 7 * int(s),
             int(rng.integers(3_000, 3_050))) for s in rng.integers(0, 80, 300)]
    rows.sort(key=lambda r: -r[2])  # descending: every row out of place
    assert kernel_contacts(rows) == expected_contacts(rows)


def test_no_rows_no_contacts():
    assert kernel_contacts([]) == []
