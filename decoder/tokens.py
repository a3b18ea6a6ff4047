"""Signed personal and venue tokens: issue one, verify a batch in one call.

Token layout (version 1), 43 characters of the QR alphanumeric set, so that a token fits
a QR code of version 3 at error correction M (61 alphanumeric characters)::

    QT 1 P 01 0000000000C1P 0K9L 1RUBSL2DSUN18IRRFRD2
    |  | | |  |             |    MAC: first 100 bits of the digest, 20 base-32 digits
    |  | | |  |             expiry day (days since 1970-01-01 UTC; 0 = none), 4 digits
    |  | | |  id, unsigned 64-bit, 13 digits (the first one below G): here 12345
    |  | | key id, 0..1023, 2 digits
    |  | kind: P person, V venue
    |  version
    prefix

Digits are base32hex (RFC 4648: 0-9 then A-V), big-endian. The MAC is keyed BLAKE2b with
a 16-byte digest over the first 23 characters as ASCII:
``hashlib.blake2b(body, key=secret, digest_size=16)``. A token is expired from the start
of its expiry day: expired when ``today >= expires_day``.

Errors::

    DecoderError (ValueError)   bad arguments: id out of range, unknown kind, short key...

Verification never raises for a bad item: each gets a `Status`.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

import numba
import numpy as np

from decoder import _token_kernels as kernels

PREFIX = "QT"
VERSION = "1"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUV"
KEY_CHARS, ID_CHARS, EXPIRY_CHARS, MAC_HI_CHARS, MAC_LO_CHARS = 2, 13, 4, 12, 8
BODY_LEN = len(PREFIX) + 2 + KEY_CHARS + ID_CHARS + EXPIRY_CHARS
TOKEN_LEN = BODY_LEN + MAC_HI_CHARS + MAC_LO_CHARS
MAC_BITS = 5 * (MAC_HI_CHARS + MAC_LO_CHARS)
MAX_KEY_ID = 32**KEY_CHARS - 1
MAX_EXPIRY_DAY = 32**EXPIRY_CHARS - 1
MIN_KEY_BYTES, MAX_KEY_BYTES = 16, 64
_DIGEST_SIZE = 16
PARALLEL_ROWS = 20_000  # from here a batch is verified on all of numba's threads


class DecoderError(ValueError):
    """Root of the errors that `decoder` raises for bad arguments (never for a bad item)."""


class Kind(IntEnum):
    """What a token names. The `kind` column holds 0 where a token is not authentic."""

    PERSON = 1
    VENUE = 2

    @property
    def char(self) -> str:
        """The kind's letter in a token: P or V."""
        return "P" if self is Kind.PERSON else "V"


class Status(IntEnum):
    """Outcome of verifying one token; `reason` is its short machine-readable name."""

    OK = 0
    MALFORMED = 1  # not text, wrong length, a character outside the layout
    UNKNOWN_VERSION = 2  # prefix "QT" with a version other than 1
    UNKNOWN_KEY = 3  # a key id the key ring never had
    RETIRED_KEY = 4  # a key id that was retired: its tokens are rejected
    BAD_MAC = 5  # forged, altered, or signed with another key
    EXPIRED = 6  # authentic, but today >= its expiry day
    REVOKED = 7  # authentic, but its (kind, id) is revoked

    @property
    def reason(self) -> str:
        """Short machine-readable name: "ok", "bad_mac", "unknown_key", ..."""
        return self.name.lower()


_LAYOUT = np.array(
    [ord("Q"), ord("T"), ord(VERSION), ord("P"), ord("V"), BODY_LEN,
     KEY_CHARS, ID_CHARS, EXPIRY_CHARS, MAC_HI_CHARS, MAC_LO_CHARS,
     Status.OK, Status.MALFORMED, Status.UNKNOWN_VERSION, Status.UNKNOWN_KEY,
     Status.RETIRED_KEY, Status.BAD_MAC, Status.EXPIRED],
    dtype=np.int64,
)  # fmt: skip
# plain ints for the kernels: numba types an IntEnum member by walking its class on every
# call
_OK, _EXPIRED = int(Status.OK), int(Status.EXPIRED)
_DIGIT = np.full(256, 255, dtype=np.uint8)
_DIGIT[np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)] = np.arange(32, dtype=np.uint8)


def _base32(value: int, width: int) -> str:
    return "".join(ALPHABET[(value >> (5 * (width - 1 - j))) & 31] for j in range(width))


def _check_int(value: object, what: str, low: int, high: int, high_text: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DecoderError(f"{what} must be an int, got {type(value).__name__}")
    if not low <= int(value) <= high:
        raise DecoderError(f"{what} must be in {low}..{high_text or high}, got {value}")
    return int(value)


def _check_key_id(key_id: object, what: str = "key_id") -> int:
    return _check_int(key_id, what, 0, MAX_KEY_ID)


@dataclass(frozen=True, repr=False)
class KeyRing:
    """The MAC keys: several key ids valid at once, one active for issuing.

    keys: key id (0..1023) -> secret (16..64 bytes); active: the key id that signs new
    tokens; retired: key ids whose tokens are rejected (their secrets are gone).
    Immutable: `rotate`, `add` and `retire` return a new ring. The repr shows ids only.
    Raises DecoderError for a bad key id, a short or long secret, or an active id that
    is not in `keys`.
    """

    keys: Mapping[int, bytes]
    active: int
    retired: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        keys = {}
        for key_id, secret in self.keys.items():
            key_id = _check_key_id(key_id)
            if not isinstance(secret, bytes | bytearray):
                raise DecoderError(f"key {key_id}: secret must be bytes")
            if not MIN_KEY_BYTES <= len(secret) <= MAX_KEY_BYTES:
                raise DecoderError(
                    f"key {key_id}: secret must be {MIN_KEY_BYTES}..{MAX_KEY_BYTES} bytes, "
                    f"got {len(secret)}"
                )
            keys[key_id] = bytes(secret)
        retired = frozenset(_check_key_id(k, "retired key id") for k in self.retired)
        active = _check_key_id(self.active, "active")
        if active not in keys:
            raise DecoderError(f"active key id {active} has no secret in the ring")
        if retired & keys.keys():
            raise DecoderError(f"key ids {sorted(retired & keys.keys())} are both live and retired")
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "retired", retired)
        object.__setattr__(self, "active", active)
        slots = np.full(MAX_KEY_ID + 1, -1, dtype=np.int64)
        states = np.zeros((len(keys), 8), dtype=np.uint64)
        for slot, (key_id, secret) in enumerate(sorted(keys.items())):
            slots[key_id] = slot
            key = np.frombuffer(secret, dtype=np.uint8)
            states[slot] = kernels.blake2b_keyed_state(key, _DIGEST_SIZE)
        slots[list(retired)] = -2
        object.__setattr__(self, "_slots", slots)
        object.__setattr__(self, "_states", states)
        object.__setattr__(self, "_verified", VerifiedTokens())

    def __repr__(self) -> str:
        ids, retired = sorted(self.keys), sorted(self.retired)
        return f"KeyRing(ids={ids}, active={self.active}, retired={retired})"

    def next_key_id(self) -> int:
        """The lowest key id above every live or retired one; DecoderError when none is left."""
        key_id = max([*self.keys, *self.retired]) + 1
        return _check_key_id(key_id, "next key id")

    def add(self, key_id: int, secret: bytes, *, activate: bool = False) -> KeyRing:
        """A ring with `secret` under a new `key_id`, optionally made active.

        Raises DecoderError if the id is already live or retired, or the secret is bad.
        """
        if key_id in self.keys or key_id in self.retired:
            raise DecoderError(f"key_id {key_id} is already in use or retired")
        active = key_id if activate else self.active
        return KeyRing({**self.keys, key_id: secret}, active, self.retired)

    def rotate(self, secret: bytes) -> KeyRing:
        """A ring where `secret`, under `next_key_id()`, is active; old keys stay valid."""
        return self.add(self.next_key_id(), secret, activate=True)

    def retire(self, key_id: int) -> KeyRing:
        """A ring without `key_id`: its tokens verify as RETIRED_KEY from now on.

        Raises DecoderError if the key id is not live or is the active one (rotate first).
        """
        if key_id not in self.keys:
            raise DecoderError(f"key_id {key_id} is not a live key")
        if key_id == self.active:
            raise DecoderError(f"key_id {key_id} is active: rotate before retiring it")
        keys = {k: s for k, s in self.keys.items() if k != key_id}
        return KeyRing(keys, self.active, self.retired | {key_id})


def _check_kind(kind: object) -> Kind:
    if isinstance(kind, str):
        try:
            return Kind[kind.upper()]
        except KeyError:
            pass
    elif isinstance(kind, int | np.integer) and int(kind) in (1, 2):
        return Kind(int(kind))
    raise DecoderError(f"kind must be 'person' or 'venue' (or a Kind), got {kind!r}")


def _check_id(value: object) -> int:
    return _check_int(value, "id", 0, 2**64 - 1, "2**64-1")


def token_mac(body: str, secret: bytes) -> str:
    """The 20-digit MAC of a token body (its first 23 characters) under `secret`."""
    digest = hashlib.blake2b(body.encode("ascii"), key=secret, digest_size=_DIGEST_SIZE).digest()
    return _base32(int.from_bytes(digest, "big") >> (8 * _DIGEST_SIZE - MAC_BITS), 20)


def issue_token(
    kind: Kind | str, id: int, keyring: KeyRing, *, expires_day: int | None = None
) -> str:
    """A signed token for person or venue `id`, under the ring's active key.

    kind: Kind.PERSON / Kind.VENUE or "person" / "venue"; id: 0..2**64-1;
    expires_day: days since 1970-01-01 UTC from which the token is expired
    (1..1048575), or None for a token that never expires. Returns the 43-character token.
    Raises DecoderError naming the bad argument.
    """
    kind = _check_kind(kind)
    value = _check_id(id)
    if not isinstance(keyring, KeyRing):
        raise DecoderError(f"keyring must be a KeyRing, got {type(keyring).__name__}")
    expiry = 0 if expires_day is None else _check_int(expires_day, "expires_day", 1,
                                                        MAX_EXPIRY_DAY)  # fmt: skip
    body = (
        f"{PREFIX}{VERSION}{kind.char}{_base32(keyring.active, KEY_CHARS)}"
        f"{_base32(value, ID_CHARS)}{_base32(expiry, EXPIRY_CHARS)}"
    )
    return body + token_mac(body, keyring.keys[keyring.active])


@dataclass(frozen=True)
class RevocationList:
    """Revoked ids, per kind, as sorted unique uint64 arrays (build once, verify often)."""

    persons: np.ndarray
    venues: np.ndarray

    @classmethod
    def of(cls, pairs: Iterable[tuple[Kind | str, int]]) -> RevocationList:
        """From (kind, id) pairs; raises DecoderError for a bad kind or id."""
        persons: list[int] = []
        venues: list[int] = []
        for kind, value in pairs:
            (persons if _check_kind(kind) is Kind.PERSON else venues).append(_check_id(value))
        return cls(np.unique(np.array(persons, dtype=np.uint64)),
                   np.unique(np.array(venues, dtype=np.uint64)))  # fmt: skip


class TokenResult(NamedTuple):
    """One verified item: `kind` and `id` are set only when the MAC verified."""

    status: Status
    kind: Kind | None
    id: int
    key_id: int
    expires_day: int

    @property
    def ok(self) -> bool:
        """True only for status OK."""
        return self.status is Status.OK

    @property
    def reason(self) -> str:
        """The status's machine-readable name."""
        return self.status.reason


@dataclass(frozen=True)
class TokenBatch:
    """Columns of a verified batch, one row per input item, in input order.

    status: uint8 `Status`; kind: uint8 `Kind` (0 unless authentic); id: uint64;
    key_id: uint16; expires_day: uint32 (0 = none). kind, id, key_id and expires_day are
    0 unless the MAC verified (status OK, EXPIRED or REVOKED): a forged token is never an
    id. Use `ok` (a mask) or check `status == Status.OK` before trusting an id.
    """

    status: np.ndarray
    kind: np.ndarray
    id: np.ndarray
    key_id: np.ndarray
    expires_day: np.ndarray

    def __len__(self) -> int:
        return len(self.status)

    def __getitem__(self, i: int) -> TokenResult:
        k = int(self.kind[i])
        status = Status(int(self.status[i]))
        kind = Kind(k) if k else None
        return TokenResult(status, kind, int(self.id[i]), int(self.key_id[i]),
                           int(self.expires_day[i]))  # fmt: skip

    def __iter__(self) -> Iterator[TokenResult]:
        return (self[i] for i in range(len(self)))

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the items that verified with status OK."""
        return self.status == Status.OK

    def reasons(self) -> list[str]:
        """The machine reason of every item ("ok", "bad_mac", ...), in order."""
        names = np.array([s.reason for s in Status], dtype=object)
        return names[self.status].tolist()

    def counts(self) -> dict[str, int]:
        """How many items got each status, by reason (statuses that occur only)."""
        found = np.bincount(self.status, minlength=len(Status))
        return {s.reason: int(found[s]) for s in Status if found[s]}


def _as_bytes(item: object) -> bytes | None:
    if isinstance(item, str):
        return item.encode("ascii", "replace")  # one byte per code point: '?' is no digit
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    return None


def _pack(items: list[object]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Rows of the items that have the token length, which items those are (None: all),
    and the status of the others (MALFORMED, or UNKNOWN_VERSION for "QT" + another)."""
    n = len(items)
    buf = None
    try:
        buf = "".join(items).encode("ascii", "replace")
    except TypeError:
        with contextlib.suppress(TypeError):
            buf = b"".join(items)
    if buf is not None:
        lengths = np.fromiter(map(len, items), dtype=np.int64, count=n)
    if buf is None or len(buf) != lengths.sum():  # junk or multi-byte views: item by item
        norm = [_as_bytes(item) for item in items]
        lengths = np.array([-1 if b is None else len(b) for b in norm], dtype=np.int64)
        buf = b"".join(b for b in norm if b is not None)
    flat = np.frombuffer(buf, dtype=np.uint8)
    fits = lengths == TOKEN_LEN
    if fits.all():
        return flat.reshape(n, TOKEN_LEN), None, np.empty(0, np.uint8)
    starts = np.cumsum(lengths.clip(0)) - lengths.clip(0)
    rows = flat[starts[fits, None] + np.arange(TOKEN_LEN)]
    others = np.full(n - len(rows), Status.MALFORMED, dtype=np.uint8)
    long_enough = lengths[~fits] >= 3
    if long_enough.any():
        head = flat[starts[~fits][long_enough, None] + np.arange(3)]
        version = head[:, 2]
        alnum = ((version >= ord("0")) & (version <= ord("9"))) | (
            (version >= ord("A")) & (version <= ord("Z")))  # fmt: skip
        newer = (head[:, 0] == ord("Q")) & (head[:, 1] == ord("T")) & alnum & (
            version != ord(VERSION))  # fmt: skip
        others[np.flatnonzero(long_enough)[newer]] = Status.UNKNOWN_VERSION
    return rows, fits, others


def verify_tokens(
    texts: Sequence[object],
    keyring: KeyRing,
    *,
    today: int | None = None,
    revoked: RevocationList | Iterable[tuple[Kind | str, int]] | None = None,
) -> TokenBatch:
    """Verify a batch of scanned texts in one call, giving each its id or a reason.

    texts: a sequence (or iterable) of str or bytes (anything else, non-ASCII, empty or
    overlong items get MALFORMED), or a 1-D numpy array of dtype S43 (the fastest).
    keyring: the keys to check MACs with. today: days since 1970-01-01 UTC for the expiry
    check; None reads the system clock. revoked: a RevocationList or (kind, id) pairs
    whose authentic tokens get REVOKED. Returns a TokenBatch, one row per item, in order.
    Raises DecoderError only for bad arguments (a single str instead of a sequence, a
    keyring that is no KeyRing, a day that is no int, a bad revoked pair).
    """
    if isinstance(texts, str | bytes | bytearray) or not isinstance(texts, Iterable):
        raise DecoderError(f"texts must be a sequence of tokens, got {type(texts).__name__}")
    if not isinstance(keyring, KeyRing):
        raise DecoderError(f"keyring must be a KeyRing, got {type(keyring).__name__}")
    day = int(time.time() // 86400) if today is None else _check_int(today, "today", 0, 2**62)
    if isinstance(texts, np.ndarray) and texts.dtype == np.dtype(f"S{TOKEN_LEN}"):
        if texts.ndim != 1:
            raise DecoderError(f"texts must be 1-D, got shape {texts.shape}")
        rows = np.ascontiguousarray(texts).view(np.uint8).reshape(-1, TOKEN_LEN)
        fits, others = None, None
    else:
        rows, fits, others = _pack(list(texts))
    m = len(rows)
    cols = _columns(m)
    missed = keyring._verified.lookup(rows, day, cols)
    if missed.shape[0] == m:
        _verify_rows(rows, keyring, day, cols)
        keyring._verified.insert(rows, cols)
    elif missed.shape[0]:
        part, found = rows[missed], _columns(missed.shape[0])
        _verify_rows(part, keyring, day, found)
        for col, value in zip(cols, found, strict=True):
            col[missed] = value
        keyring._verified.insert(part, found)
    if fits is not None:  # put the rows back among the items that were not token-sized
        full = tuple(np.zeros(len(fits), col.dtype) for col in cols)
        for out, col in zip(full, cols, strict=True):
            out[fits] = col
        full[0][~fits] = others
        cols = full
    if revoked is not None:
        _apply_revocations(cols[0], cols[1], cols[2], revoked)
    return TokenBatch(*cols)


def _columns(m: int) -> tuple[np.ndarray, ...]:
    """Empty output columns of a batch: status, kind, id, key id, expiry day."""
    return (np.empty(m, np.uint8), np.zeros(m, np.uint8), np.zeros(m, np.uint64),
            np.zeros(m, np.uint16), np.zeros(m, np.uint32))  # fmt: skip


def _verify_rows(rows: np.ndarray, keyring: KeyRing, day: int, cols) -> None:
    """Check the MAC of every token row (BLAKE2b), into the output columns."""
    if len(rows) >= PARALLEL_ROWS:  # BLAKE2b is most of the cost: share large batches out
        kernels.verify_rows_parallel(rows, _DIGIT, _LAYOUT, keyring._slots, keyring._states,
                                     day, *cols, numba.get_num_threads() * 4)
    else:
        kernels.verify_rows(rows, _DIGIT, _LAYOUT, keyring._slots, keyring._states, day,
                            *cols)


class VerifiedTokens:
    """The authentic tokens a key ring has verified (its MAC checked out), each with its
    kind, id, key id and expiry day, so that the same token scanned again is looked up
    instead of hashed: a person shows one code at every check-in, and BLAKE2b was
    ~300 ns a token, most of a packed check-in's verification.

    A token is found only when all its bytes equal a stored one's, so a forged or
    altered token is never found and gets its MAC checked. Expiry is judged again at
    each lookup (from `today`); revocations are applied after, as before; a retired key
    makes a new KeyRing, whose cache starts empty. A hash table of 64-byte rows kept at
    most half full, growing to MAX_TOKENS tokens, then emptied and filled again.
    Thread-safe. Pickles empty."""

    MAX_TOKENS = 1 << 19  # 64 MB of table at most

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table = np.zeros((1 << 10, kernels.CACHE_ROW), np.uint64)
        self._count = 0

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def __len__(self) -> int:
        return self._count

    def _shift(self) -> np.uint64:
        return np.uint64(64 - (self._table.shape[0].bit_length() - 1))

    def lookup(self, rows: np.ndarray, day: int, cols) -> np.ndarray:
        """Fill the output columns of the token rows found; returns the others' indices."""
        missed = np.empty(len(rows), np.int64)
        with self._lock:
            if not self._count:
                return np.arange(len(rows), dtype=np.int64)
            n = kernels.cache_lookup(rows, self._table, self._shift(), day, _OK, _EXPIRED,
                                     *cols, missed)
        return missed[:n]

    def insert(self, rows: np.ndarray, cols) -> None:
        """Remember the rows whose MAC verified (kind != 0), given their columns."""
        if not cols[1].any():
            return
        start, n = 0, len(rows)
        with self._lock:
            while True:
                room = min(self._table.shape[0] // 2, self.MAX_TOKENS) - self._count
                added, start = kernels.cache_insert(rows, self._table, self._shift(), start,
                                                    room, *cols[1:])
                self._count += added
                if start == n:
                    return
                if self._table.shape[0] // 2 < self.MAX_TOKENS:  # twice the room
                    old = self._table
                    self._table = np.zeros((min(2 * old.shape[0], 2 * self.MAX_TOKENS),
                                            kernels.CACHE_ROW), np.uint64)
                    kernels.cache_rehash(old, self._table, self._shift())
                else:  # full: start again with what comes now
                    self._table.fill(0)
                    self._count = 0


def _apply_revocations(status, kind, ids, revoked) -> None:
    if not isinstance(revoked, RevocationList):
        revoked = RevocationList.of(revoked)
    authentic = (status == Status.OK) | (status == Status.EXPIRED)
    for k, listed in ((Kind.PERSON, revoked.persons), (Kind.VENUE, revoked.venues)):
        if len(listed):
            rows = np.flatnonzero(authentic & (kind == k))
            hit = np.isin(ids[rows], listed, assume_unique=False)
            status[rows[hit]] = Status.REVOKED


def verify_token(text: object, keyring: KeyRing, **kwargs) -> TokenResult:
    """Verify one text; a convenience over `verify_tokens` (same keywords and result)."""
    return verify_tokens([text], keyring, **kwargs)[0]
