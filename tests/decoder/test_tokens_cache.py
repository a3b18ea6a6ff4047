"""The key ring's cache of authentic tokens: a token verified again gives what checking
its MAC gives, and nothing that differs from an authentic token by a byte is found."""

from __future__ import annotations

import pickle
import random

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from decoder.tokens import TOKEN_LEN, Kind, Status, VerifiedTokens, issue_token, verify_tokens
from tests.decoder.test_tokens import (
    FAST,
    SECRETS,
    TODAY,
    as_tuples,
    ids,
    key_ids,
    kinds,
    mutate,
    naive_verify,
    ring,
    texts_of_any_kind,
)

SHARED = ring()  # one ring for every example: its cache fills as a worker's does


@FAST
@given(texts=texts_of_any_kind, repeat=st.lists(st.integers(0, 29), max_size=10))
def test_a_ring_that_verified_before_agrees_with_the_naive_reader(texts, repeat):
    texts = texts + [texts[i] for i in repeat if i < len(texts)]
    for _ in range(2):  # the second time, the authentic ones come from the cache
        batch = verify_tokens(texts, SHARED, today=TODAY)
        assert as_tuples(batch) == [naive_verify(t, SECRETS) for t in texts]


@FAST
@given(kind=kinds, value=ids, active=key_ids, seed=st.integers(0, 2**32))
def test_a_mutation_of_a_cached_token_is_never_accepted(kind, value, active, seed):
    token = issue_token(kind, value, ring(active))
    assert verify_tokens([token], SHARED, today=TODAY).ok.all()
    rng = random.Random(seed)
    texts = [t for t in (mutate(token, rng) for _ in range(50)) if t != token]
    batch = verify_tokens([*texts, token], SHARED, today=TODAY)
    assert as_tuples(batch) == [naive_verify(t, SECRETS) for t in [*texts, token]]
    assert batch.ok.tolist() == [False] * len(texts) + [True]


def test_ten_thousand_mutations_of_cached_tokens_give_none_accepted():
    rng = random.Random(7)
    shared = ring()
    tokens = [issue_token(rng.choice(list(Kind)), rng.getrandbits(64), ring(rng.randrange(5)))
              for _ in range(2_000)]
    assert verify_tokens(np.array(tokens, dtype=f"S{TOKEN_LEN}"), shared, today=TODAY).ok.all()
    assert len(shared._verified) == 2_000
    texts = []
    while len(texts) < 10_000:
        mutated = mutate(rng.choice(tokens), rng)
        if mutated not in tokens:
            texts.append(mutated)
    batch = verify_tokens(texts, shared, today=TODAY)
    assert int(batch.ok.sum()) == 0
    assert as_tuples(batch) == [naive_verify(t, SECRETS) for t in texts]


def test_expiry_is_judged_at_every_lookup():
    shared = ring()
    token = issue_token("person", 42, shared, expires_day=30_000)
    statuses = [verify_tokens([token], shared, today=day).status[0]
                for day in (29_999, 30_000, 29_999, 40_000)]
    assert statuses == [Status.OK, Status.EXPIRED, Status.OK, Status.EXPIRED]
    assert len(shared._verified) == 1


def test_revocation_and_retiring_reach_cached_tokens():
    shared = ring()
    token = issue_token("person", 5, ring(active=0))
    assert verify_tokens([token], shared, today=TODAY).ok.all()
    revoked = verify_tokens([token], shared, today=TODAY, revoked=[("person", 5)])
    assert revoked.status.tolist() == [Status.REVOKED]
    retired = ring(live=(1, 2), retired=(0,))  # a new ring: its cache starts empty
    assert verify_tokens([token], retired, today=TODAY).status.tolist() == [Status.RETIRED_KEY]


def test_a_full_cache_starts_again_and_stays_right(monkeypatch):
    monkeypatch.setattr(VerifiedTokens, "MAX_TOKENS", 64)
    shared = ring()
    rng = random.Random(3)
    tokens = [issue_token("person", rng.getrandbits(64), shared) for _ in range(300)]
    for _ in range(4):
        texts = rng.sample(tokens, 150)
        assert as_tuples(verify_tokens(texts, shared, today=TODAY)) == [
            naive_verify(t, SECRETS) for t in texts]
        assert len(shared._verified) <= 64


def test_a_pickled_ring_verifies_with_an_empty_cache():
    shared = ring()
    token = issue_token("venue", 9, shared)
    verify_tokens([token], shared, today=TODAY)
    copy = pickle.loads(pickle.dumps(shared))
    assert len(copy._verified) == 0
    assert as_tuples(verify_tokens([token], copy, today=TODAY)) == [(Status.OK, 2, 9)]
