"""TraceResult made by a trace (columns, tuples built when read) against the same answer
made from its tuples: what every caller of the index, the API and the exports rely on."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from tracing import CheckinIndex, ContactRule
from tracing.model import TraceResult

H = 3600


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """Depth-3 traces of a few cases over a random commune small enough to check by eye:
    60 persons, 6 venues, three days of visits."""
    rng = np.random.default_rng(7)
    n = 2_000
    person = rng.integers(1, 61, n).astype(np.uint64)
    venue = rng.integers(100, 106, n).astype(np.uint64)
    t_in = rng.integers(0, 72, n) * H + rng.integers(0, 4, n) * 900
    t_out = np.where(rng.random(n) < 0.3, t_in + rng.integers(1, 5, n) * 900, 0)
    with CheckinIndex.open(tmp_path_factory.mktemp("index"), retention_days=None) as index:
        index.append(person, venue, t_in, t_out)
        rule = ContactRule(min_overlap=600, depth=3)
        results = [index.trace(case, 0, 72 * H, rule) for case in (1, 2, 3, 999)]
    assert sum(len(r.contacts) for r in results) > 50  # the commune mixes: F1, F2, F3
    return results


def fresh(result: TraceResult) -> TraceResult:
    """The same answer, its tuples not yet built (a trace's result builds them on first
    read, and keeps them)."""
    return pickle.loads(pickle.dumps(result))


def test_a_traced_result_equals_the_one_made_from_its_tuples(traced):
    for result in traced:
        made = TraceResult(result.case, result.window_from, result.window_to, result.rule,
                           result.contacts, result.zones)
        assert fresh(result) == made and hash(fresh(result)) == hash(made)
        assert fresh(result).to_dict() == made.to_dict()
        assert made.columns is None and fresh(result).columns is not None


def test_a_slice_of_contacts_is_the_same_as_slicing_them_all(traced):
    for result in traced:
        n = len(result.contacts)
        for start, stop in [(0, None), (0, 1), (1, 4), (n // 2, n), (n - 1, n + 5),
                            (n, None), (n + 3, n + 9), (0, 0)]:
            assert fresh(result).contacts_slice(start, stop) == result.contacts[start:stop]


def test_levels_and_persons_come_without_the_tuples(traced):
    for result in traced:
        levels = [c.level for c in result.contacts]
        persons = [c.person for c in result.contacts]
        assert fresh(result).contact_levels.tolist() == levels
        assert fresh(result).contact_persons.tolist() == persons
        made = TraceResult(result.case, result.window_from, result.window_to, result.rule,
                           result.contacts, result.zones)
        assert made.contact_levels.tolist() == levels


def test_a_result_is_frozen(traced):
    with pytest.raises(AttributeError, match="frozen"):
        traced[0].case = 5
