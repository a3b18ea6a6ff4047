"""Shared makers for the ingest tests: a data folder with keys, and scan events."""

from __future__ import annotations

import time

import numpy as np

from api.keystore import load_keyring
from decoder import issue_token
from ingest.events import ScanBatch, ScanEvent

# midnight UTC five days ago: scans of the three days after it are inside any retention
# period, so a worker's purge (a minute after it starts) never takes them
T0 = (int(time.time()) // 86_400 - 5) * 86_400


def keyring_of(data):
    """The key ring of a data folder (created on first use)."""
    return load_keyring(data)


def person_token(keyring, person: int) -> str:
    """A valid personal token."""
    return issue_token("person", person, keyring)


def forged(token: str) -> str:
    """The token with its last MAC character changed."""
    return token[:-1] + ("0" if token[-1] != "0" else "1")


def events_for(keyring, visits: list[tuple[int, int, int, int]], device: int = 1) -> list:
    """ScanEvents for (person, venue, t_in, t_out) visits, sequence numbers from 0."""
    tokens = {p: person_token(keyring, p) for p in {v[0] for v in visits}}
    return [ScanEvent(venue, device, seq, t_in, tokens[person], None, t_out)
            for seq, (person, venue, t_in, t_out) in enumerate(visits)]


def random_batch(keyring, n: int, seed: int = 0, persons: int = 500, venues: int = 50):
    """n valid scan events as a ScanBatch, and the distinct (person, venue, t_in) set."""
    rng = np.random.default_rng(seed)
    person = rng.integers(1, persons + 1, n)
    venue = rng.integers(1, venues + 1, n).astype(np.uint64)
    t_in = T0 + rng.integers(0, 86_400 * 3, n)
    tokens = {int(p): person_token(keyring, int(p)).encode() for p in np.unique(person)}
    token = np.array([tokens[int(p)] for p in person], dtype="S43")
    batch = ScanBatch(venue, np.ones(n, np.uint64), np.arange(n, dtype=np.uint64),
                      t_in.astype(np.int64), np.zeros(n, np.int64), token)
    keys = set(zip(person.tolist(), venue.tolist(), t_in.tolist(), strict=True))
    return batch, keys
