"""Token verification throughput: `verify_tokens` against a plain per-token hashlib loop.

    python -m benchmarks.tokens [--n N] [--repeat R] [--json]

Both verify the same batch (valid tokens under two keys, with some forged, truncated and
junk items mixed in) on one thread and must agree item by item. The time from a fresh
interpreter to its first verified batch is reported twice: with the numba cache that
`cache=True` keeps next to the kernels, and with an empty cache (compiling everything).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from decoder.tokens import (
    BODY_LEN,
    TOKEN_LEN,
    KeyRing,
    Kind,
    Status,
    issue_token,
    verify_tokens,
)

TODAY = 20_400


def verify_loop(texts, keyring: KeyRing, today: int) -> list[tuple[int, int, int]]:
    """The obvious peer: parse and check each token in Python with hashlib, one by one."""
    out = []
    append = out.append
    keys = keyring.keys
    for text in texts:
        if not isinstance(text, str) or len(text) != TOKEN_LEN or not text.startswith("QT1"):
            append((Status.MALFORMED, 0, 0))
            continue
        kind = 1 if text[3] == "P" else 2 if text[3] == "V" else 0
        try:
            key_id, value, expiry = int(text[4:6], 32), int(text[6:19], 32), int(text[19:23], 32)
            mac = int(text[BODY_LEN:], 32)
        except ValueError:
            append((Status.MALFORMED, 0, 0))
            continue
        secret = keys.get(key_id)
        if not kind or secret is None:
            append((Status.MALFORMED if not kind else Status.UNKNOWN_KEY, 0, 0))
            continue
        digest = hashlib.blake2b(text[:BODY_LEN].encode(), key=secret, digest_size=16).digest()
        if int.from_bytes(digest, "big") >> 28 != mac:
            append((Status.BAD_MAC, 0, 0))
        elif expiry and today >= expiry:
            append((Status.EXPIRED, kind, value))
        else:
            append((Status.OK, kind, value))
    return out


def make_batch(n: int, keyring: KeyRing, seed: int = 7) -> list[str]:
    """n texts: ~90% valid under the ring's keys, the rest forged, truncated or junk."""
    rng = random.Random(seed)
    older = KeyRing(keyring.keys, min(keyring.keys))
    texts = []
    for i in range(n):
        ring = keyring if i % 2 else older
        kind = Kind.PERSON if i % 3 else Kind.VENUE
        expiry = TODAY + rng.randint(-5, 400)
        token = issue_token(kind, rng.getrandbits(64), ring, expires_day=expiry)
        roll = rng.random()
        if roll < 0.04:
            token = token[:-1] + ("0" if token[-1] != "0" else "1")
        elif roll < 0.07:
            token = token[: rng.randrange(TOKEN_LEN)]
        elif roll < 0.10:
            token = "https://example.org/checkin?v=" + str(i)
        texts.append(token)
    return texts


_FIRST_CALL = """
import time
start = time.perf_counter()
from decoder.tokens import KeyRing, verify_tokens
ring = KeyRing({1: bytes(32)}, 1)
verify_tokens(["QT1P"], ring, today=1)
print(time.perf_counter() - start)
"""


def first_call_in_fresh_process(cold_cache: bool) -> float:
    """Seconds from a fresh interpreter to the first verified batch: import, key ring set-up
    and numba kernels loaded from the cache (or compiled, with an empty cache folder)."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if cold_cache:
            env["NUMBA_CACHE_DIR"] = cache
        out = subprocess.run(
            [sys.executable, "-c", _FIRST_CALL],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
    return float(out.stdout.strip())


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(n: int, repeat: int) -> dict:
    """Measure both verifiers on one batch of n texts; returns the figures as a dict."""
    first_call_warm = first_call_in_fresh_process(cold_cache=False)
    first_call_cold = first_call_in_fresh_process(cold_cache=True)
    keyring = KeyRing({1: os.urandom(32), 2: os.urandom(32)}, active=2)
    texts = make_batch(n, keyring)
    ours = verify_tokens(texts, keyring, today=TODAY)
    peer = verify_loop(texts, keyring, TODAY)
    agree = all(
        (int(s), int(k), int(i)) == p
        for s, k, i, p in zip(ours.status, ours.kind, ours.id, peer, strict=True)
    )
    t_ours = _best(lambda: verify_tokens(texts, keyring, today=TODAY), repeat)
    t_peer = _best(lambda: verify_loop(texts, keyring, TODAY), max(1, repeat // 2))
    as_array = np.array(texts, dtype=f"S{TOKEN_LEN}")  # overlong junk truncates: timing only
    t_array = _best(lambda: verify_tokens(as_array, keyring, today=TODAY), repeat)
    return {
        "n": n,
        "threads": 1,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "first_call_fresh_process_s": round(first_call_warm, 3),
        "first_call_cold_cache_s": round(first_call_cold, 3),
        "verify_tokens_per_s": round(n / t_ours),
        "verify_tokens_S43_array_per_s": round(n / t_array),
        "hashlib_loop_per_s": round(n / t_peer),
        "speedup": round(t_peer / t_ours, 1),
        "agree": agree,
        "statuses": ours.counts(),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints the figures (or JSON) and returns 0 if they agree."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tokens", description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="tokens per batch")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; the best counts")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(args.n, args.repeat)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"token verification, batch of {result['n']:,}, one thread "
              f"(Python {result['python']}, {result['cpus']} cpus)")  # fmt: skip
        print(f"  first call in a fresh process (import, key ring, kernels): "
              f"{result['first_call_fresh_process_s']:.3f} s from the numba cache, "
              f"{result['first_call_cold_cache_s']:.3f} s compiling")  # fmt: skip
        print(f"  verify_tokens (list of str)   {result['verify_tokens_per_s']:>12,} tokens/s")
        print(f"  verify_tokens (S43 array)     {result['verify_tokens_S43_array_per_s']:>12,} "
              "tokens/s")  # fmt: skip
        print(f"  hashlib loop (per token)      {result['hashlib_loop_per_s']:>12,} tokens/s")
        print(f"  speed-up {result['speedup']}x; results agree: {result['agree']}")
        print(f"  statuses: {result['statuses']}")
    return 0 if result["agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
