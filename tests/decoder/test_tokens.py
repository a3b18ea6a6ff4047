"""Signed tokens: issue, verify a batch, reject every alteration, fit a small QR code."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
import zxingcpp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoder import _token_kernels as kernels
from decoder.tokens import (
    ALPHABET,
    BODY_LEN,
    TOKEN_LEN,
    DecoderError,
    KeyRing,
    Kind,
    RevocationList,
    Status,
    issue_token,
    verify_token,
    verify_tokens,
)

QR_ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
SECRETS = {k: hashlib.sha256(b"test key %d" % k).digest() for k in range(5)}
TODAY = 20_000
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip

ids = st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**63, 2**64 - 1])
kinds = st.sampled_from([Kind.PERSON, Kind.VENUE])
key_ids = st.sampled_from(sorted(SECRETS))


def ring(active: int = 1, live=(0, 1, 2, 3, 4), retired=()) -> KeyRing:
    return KeyRing({k: SECRETS[k] for k in live}, active, frozenset(retired))


def naive_verify(text, keys, retired=(), today=TODAY, revoked=()) -> tuple[Status, int, int]:
    """The layout read straight from the module docstring, one token at a time."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("latin-1")  # one char per byte; non-ASCII is rejected below
    if not isinstance(text, str):
        return Status.MALFORMED, 0, 0
    # The version decides the layout: only the first three characters count for it.
    if len(text) >= 3 and text[:2] == "QT" and text[2] != "1" and text[2] in QR_ALPHANUMERIC[:36]:
        return Status.UNKNOWN_VERSION, 0, 0
    if not text.isascii() or len(text) != TOKEN_LEN or text[:3] != "QT1" or text[3] not in "PV":
        return Status.MALFORMED, 0, 0
    digits = text[4:]
    if any(c not in ALPHABET for c in digits) or ALPHABET.index(text[6]) >= 16:
        return Status.MALFORMED, 0, 0
    key_id, value, expiry = int(text[4:6], 32), int(text[6:19], 32), int(text[19:23], 32)
    if key_id in retired:
        return Status.RETIRED_KEY, 0, 0
    if key_id not in keys:
        return Status.UNKNOWN_KEY, 0, 0
    digest = hashlib.blake2b(text[:BODY_LEN].encode(), key=keys[key_id], digest_size=16).digest()
    if int.from_bytes(digest, "big") >> 28 != int(text[BODY_LEN:], 32):
        return Status.BAD_MAC, 0, 0
    kind = 1 if text[3] == "P" else 2
    if (Kind(kind), value) in revoked:
        return Status.REVOKED, kind, value
    if expiry and today >= expiry:
        return Status.EXPIRED, kind, value
    return Status.OK, kind, value


def as_tuples(batch) -> list[tuple[int, int, int]]:
    return list(zip(batch.status.tolist(), batch.kind.tolist(), batch.id.tolist(), strict=True))


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=1, max_size=64), message=st.binary(max_size=400),
       size=st.integers(1, 64))  # fmt: skip
def test_numba_blake2b_equals_hashlib(key, message, size):
    ours = kernels.blake2b_digest(np.frombuffer(key, np.uint8), np.frombuffer(message, np.uint8),
                                  size)  # fmt: skip
    assert ours.tobytes() == hashlib.blake2b(message, key=key, digest_size=size).digest()


@FAST
@given(kind=kinds, value=ids, active=key_ids, expiry=st.none() | st.integers(TODAY + 1, 2**20 - 1))
def test_no_valid_token_is_rejected(kind, value, active, expiry):
    token = issue_token(kind, value, ring(active), expires_day=expiry)
    assert len(token) == TOKEN_LEN
    assert set(token) <= set(QR_ALPHANUMERIC)
    result = verify_token(token, ring(active=0), today=TODAY)  # any live key verifies
    assert (result.status, result.kind, result.id, result.key_id) == (Status.OK, kind, value,
                                                                      active)  # fmt: skip
    assert result.expires_day == (expiry or 0)


def test_a_large_batch_of_valid_tokens_all_verify():
    rng = random.Random(1)
    expected = [(rng.choice([Kind.PERSON, Kind.VENUE]), rng.getrandbits(64)) for _ in range(3000)]
    tokens = [issue_token(k, v, ring(i % 5)) for i, (k, v) in enumerate(expected)]
    batch = verify_tokens(tokens, ring(), today=TODAY)
    assert batch.ok.all()
    assert list(zip(batch.kind.tolist(), batch.id.tolist(), strict=True)) == expected


@FAST
@given(kind=kinds, value=ids, active=key_ids)
def test_every_single_character_change_is_rejected(kind, value, active):
    token = issue_token(kind, value, ring(active))
    variants = [token[:i] + c + token[i + 1:] for i in range(TOKEN_LEN)
                for c in QR_ALPHANUMERIC + "aé\x00" if c != token[i]]  # fmt: skip
    batch = verify_tokens(variants, ring(), today=TODAY)
    assert not batch.ok.any()
    assert not batch.id[batch.status == Status.BAD_MAC].any()


@FAST
@given(kind=kinds, value=ids, active=key_ids)
def test_every_truncation_or_extension_is_rejected(kind, value, active):
    token = issue_token(kind, value, ring(active))
    variants = [token[:i] for i in range(TOKEN_LEN)] + [token + "0", " " + token, token + " "]
    batch = verify_tokens(variants, ring(), today=TODAY)
    assert set(batch.status.tolist()) == {Status.MALFORMED}


@FAST
@given(kind=kinds, value=ids, signer=key_ids, relabel=key_ids)
def test_key_swap_is_rejected(kind, value, signer, relabel):
    token = issue_token(kind, value, ring(signer))
    other = KeyRing({signer: SECRETS[(signer + 1) % 5]}, signer)  # same id, another secret
    assert verify_token(token, other, today=TODAY).status is Status.BAD_MAC
    if relabel != signer:  # same secrets, token claims another key id
        moved = token[:4] + f"{ALPHABET[relabel // 32]}{ALPHABET[relabel % 32]}" + token[6:]
        assert verify_token(moved, ring(), today=TODAY).status is Status.BAD_MAC


def mutate(token: str, rng: random.Random) -> str:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        op, i = rng.randrange(5), rng.randrange(len(token) or 1)
        char = rng.choice(QR_ALPHANUMERIC + "aézW\x00")
        if op == 0:
            token = token[:i] + char + token[i + 1 :]
        elif op == 1:
            token = token[:i] + char + token[i:]
        elif op == 2:
            token = token[:i] + token[i + 1 :]
        elif op == 3 and i + 1 < len(token):
            token = token[:i] + token[i + 1] + token[i] + token[i + 2 :]
        else:
            token = token[:i]
    return token


def test_ten_thousand_mutated_tokens_give_none_accepted():
    rng = random.Random(2026)
    texts = []
    while len(texts) < 10_000:
        kind, expiry = rng.choice([Kind.PERSON, Kind.VENUE]), rng.choice([None, 30_000])
        token = issue_token(kind, rng.getrandbits(64), ring(rng.randrange(5)), expires_day=expiry)
        mutated = mutate(token, rng)
        if mutated != token:
            texts.append(mutated)
    batch = verify_tokens(texts, ring(), today=TODAY)
    assert int(batch.ok.sum()) == 0
    assert as_tuples(batch) == [naive_verify(t, SECRETS) for t in texts]
    assert {"bad_mac", "malformed"} <= set(batch.counts())


def test_rotation_keeps_old_tokens_and_retiring_rejects_them():
    first = KeyRing({0: SECRETS[0]}, 0)
    old = issue_token("venue", 7, first)
    rotated = first.rotate(SECRETS[1])
    new = issue_token("venue", 8, rotated)
    assert rotated.active == 1 and new[4:6] == "01"
    assert verify_tokens([old, new], rotated, today=TODAY).ok.all()
    retired = rotated.retire(0)
    batch = verify_tokens([old, new], retired, today=TODAY)
    assert batch.reasons() == ["retired_key", "ok"]
    assert batch.id.tolist() == [0, 8]
    assert retired.next_key_id() == 2  # a retired id is never reused
    assert verify_token(old, KeyRing({1: SECRETS[1]}, 1), today=TODAY).status is Status.UNKNOWN_KEY


@pytest.mark.parametrize(("today", "status"), [(29_998, Status.OK), (29_999, Status.OK),
                         (30_000, Status.EXPIRED), (40_000, Status.EXPIRED)])  # fmt: skip
def test_expired_from_the_start_of_the_expiry_day(today, status):
    token = issue_token("person", 42, ring(), expires_day=30_000)
    result = verify_token(token, ring(), today=today)
    assert (result.status, result.id) == (status, 42)  # an expired token is still authentic


def test_revoked_by_kind_and_id():
    tokens = [issue_token("person", 5, ring()), issue_token("venue", 5, ring()),
              issue_token("person", 6, ring(), expires_day=10)]  # fmt: skip
    for revoked in (
        [("person", 5), (Kind.PERSON, 6)],
        RevocationList.of([("person", 5), ("person", 6)]),
    ):
        batch = verify_tokens(tokens, ring(), today=TODAY, revoked=revoked)
        assert batch.reasons() == ["revoked", "ok", "revoked"]


def test_junk_gets_a_status_never_an_exception():
    token = issue_token("venue", 99, ring())
    texts = [None, 42, object(), b"\xff\xfe" * 30, "", "x" * 1_000_000, "é" * 43,
             token.encode(), bytearray(token.encode()), memoryview(token.encode()),
             token.lower(), "QT2" + token[3:], "QT9", "QT1", token[:3] + "\udc80" + token[4:],
             b"QT1P" + b"\x80" * 39, token]  # fmt: skip
    batch = verify_tokens(texts, ring(), today=TODAY)
    assert batch.reasons() == ["malformed"] * 7 + ["ok"] * 3 + [
        "malformed",
        "unknown_version",
        "unknown_version",
        "malformed",
        "malformed",
        "malformed",
        "ok",
    ]
    assert batch.id.tolist()[7:10] == [99] * 3
    assert batch.counts() == {"ok": 4, "malformed": 11, "unknown_version": 2}
    assert [r.reason for r in batch] == batch.reasons()
    assert len(verify_tokens([], ring())) == 0
    assert verify_tokens((t for t in [token]), ring(), today=TODAY).reasons() == ["ok"]


def test_all_bytes_and_numpy_S43_batches():
    tokens = [issue_token("person", i, ring()) for i in range(50)]
    expected = [(Status.OK, Kind.PERSON, i) for i in range(50)]
    assert as_tuples(verify_tokens([t.encode() for t in tokens], ring(), today=TODAY)) == expected
    array = np.array([*tokens, "QT1"], dtype=f"S{TOKEN_LEN}")
    assert as_tuples(verify_tokens(array, ring(), today=TODAY)) == [*expected, (1, 0, 0)]


@pytest.mark.parametrize("kind", ["person", "venue"])
def test_a_token_fits_a_qr_code_of_version_4_at_level_m(kind):
    token = issue_token(kind, 2**64 - 1, ring(), expires_day=2**20 - 1)
    code = zxingcpp.create_barcode(token, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    assert code.ec_level == "M"
    size = np.asarray(code.to_image(scale=1, add_quiet_zones=False)).shape
    assert size[0] == size[1] <= 33  # version 4 is 33x33 modules (version 3: 29x29)
    assert zxingcpp.read_barcodes(code.to_image(scale=4))[0].text == token


@pytest.mark.parametrize(("call", "message"), [
    (lambda: issue_token("person", -1, ring()), "id must be in 0..2**64-1"),
    (lambda: issue_token("person", 2**64, ring()), "id must be in 0..2**64-1"),
    (lambda: issue_token("person", True, ring()), "id must be an int"),
    (lambda: issue_token("person", "7", ring()), "id must be an int"),
    (lambda: issue_token("shop", 7, ring()), "kind must be 'person' or 'venue'"),
    (lambda: issue_token("venue", 7, ring(), expires_day=0), "expires_day must be in"),
    (lambda: issue_token("venue", 7, ring(), expires_day=1.5), "expires_day must be an int"),
    (lambda: issue_token("venue", 7, object()), "keyring must be a KeyRing"),
    (lambda: KeyRing({1: b"short"}, 1), "key 1: secret must be 16..64 bytes, got 5"),
    (lambda: KeyRing({1024: SECRETS[0]}, 1024), "key_id must be in 0..1023"),
    (lambda: KeyRing({1: SECRETS[0]}, 2), "active key id 2 has no secret"),
    (lambda: ring().retire(1), "rotate before retiring"),
    (lambda: ring().add(2, SECRETS[0]), "already in use"),
    (lambda: verify_tokens("QT1P", ring()), "sequence of tokens"),
    (lambda: verify_tokens(None, ring()), "sequence of tokens, got NoneType"),
    (lambda: verify_tokens(["QT1P"], ring(), today="1"), "today must be an int"),
    (lambda: verify_tokens(np.zeros((2, 2), "S43"), ring()), "texts must be 1-D"),
    (lambda: verify_tokens([], ring(), revoked=[("shop", 1)]), "kind must be"),
])  # fmt: skip
def test_bad_arguments_raise_naming_the_field(call, message):
    with pytest.raises(DecoderError, match=message.replace("*", r"\*").replace(".", r"\.")):
        call()


def test_key_ring_repr_shows_no_secret():
    text = repr(ring()) + str(ring())
    assert "KeyRing(ids=[0, 1, 2, 3, 4], active=1" in text
    assert not any(s.hex()[:8] in text or repr(s)[2:10] in text for s in SECRETS.values())


def near_token(draw_text: str) -> str:
    return "QT1" + draw_text[3:]


texts_of_any_kind = st.lists(st.one_of(
    st.text(max_size=60), st.binary(max_size=60), st.none(), st.integers(),
    st.text(alphabet=QR_ALPHANUMERIC, min_size=TOKEN_LEN, max_size=TOKEN_LEN).map(near_token),
    st.builds(lambda k, v, a: issue_token(k, v, ring(a)), kinds, ids, key_ids),
), max_size=30)  # fmt: skip


@FAST
@given(texts=texts_of_any_kind, str_only=st.booleans())
def test_batch_agrees_with_the_naive_reader(texts, str_only):
    if str_only:
        texts = [t for t in texts if isinstance(t, str)]
    batch = verify_tokens(texts, ring(), today=TODAY)
    assert as_tuples(batch) == [naive_verify(t, SECRETS) for t in texts]
