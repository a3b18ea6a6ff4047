"""Traces over several shards against one index holding everything: what asking costs.

    python -m benchmarks.shards [--checkins N] [--shards S] [--cases K] [--depth D]
                                [--remote] [--json]

Simulated check-ins (seed 0, as benchmarks.tracing) are built into one index and, split
by venue (venue id % S, as Kafka's partitions keyed by venue split them), into S more;
the same K cases (benchmarks.tracing.sample_cases: a person's check-in, window one day
before to two days after) are traced over the one index (CheckinIndex.trace) and over
the S shards (tracing.shards.trace_shards), alternating case by case in one process;
with --remote, each shard is a `qrtrace shard` server on loopback, asked over HTTP
(api/shard_client.py), all on this machine. Every pair of answers must be equal (the
run stops otherwise). Prints the p50 and p99 of
each in ms and their ratio; `--json` one flat JSON object. Progress goes to stderr.

Then the adoption report's counts (check-ins per venue and local day over the cases'
whole span) from the one index and over the shards, ten alternated rounds, equal or the
run stops: `counts_one_ms`, `counts_sharded_ms` (medians).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.tracing import build, percentile_ms, sample_cases
from tracing import simulate
from tracing.adoption import venue_day_counts, venue_day_counts_over
from tracing.index import CheckinIndex
from tracing.model import ContactRule
from tracing.shards import trace_shards


def run(n: int, shards: int, cases: int, depth: int, folder: Path, remote: bool = False
        ) -> dict:
    """Build, trace both ways, compare; the figures as a flat dict."""
    c, town = simulate.checkins_for_count(n, seed=0)
    began = time.perf_counter()
    print(f"building one index of {len(c):,} check-ins and {shards} shards", file=sys.stderr)
    build(c, town, folder / "all")
    sizes = []
    for s in range(shards):
        mine = c.venue % np.uint64(shards) == s
        build(simulate.Checkins(c.person[mine], c.venue[mine], c.t_in[mine], c.t_out[mine]),
              town, folder / f"shard-{s}" / "index")
        sizes.append(int(mine.sum()))
    built_s = time.perf_counter() - began
    sample = sample_cases(c, cases, 0)
    del c
    rule = ContactRule(depth=depth)
    one_s, sharded_s, contacts = [], [], 0
    indexes = [] if remote else [CheckinIndex.open(folder / f"shard-{s}" / "index",
                                                   create=False) for s in range(shards)]
    servers = _ShardServers([folder / f"shard-{s}" for s in range(shards)]) if remote else None
    try:
        with CheckinIndex.open(folder / "all", create=False) as whole:
            snaps = servers.shards if remote else [ix.snapshot() for ix in indexes]
            queries = list(zip(*(a.tolist() for a in sample), strict=True))
            for case, lo, hi in queries[:20]:  # compiled, caches warm, not timed
                whole.trace(case, lo, hi, rule)
                trace_shards(snaps, case, lo, hi, rule)
            print(f"tracing {cases} cases both ways", file=sys.stderr)
            for i, (case, lo, hi) in enumerate(queries):
                first_whole = i % 2 == 0
                for turn in (0, 1):
                    t0 = time.perf_counter()
                    if (turn == 0) == first_whole:
                        want = whole.trace(case, lo, hi, rule)
                        one_s.append(time.perf_counter() - t0)
                    else:
                        got = trace_shards(snaps, case, lo, hi, rule)
                        sharded_s.append(time.perf_counter() - t0)
                if got != want:
                    raise SystemExit(f"the answers differ for case {case} ({lo}, {hi})")
                contacts += len(want.contact_persons)
            counts = _time_counts(whole.snapshot(), snaps, int(sample[1].min()),
                                  int(sample[2].max()))
    finally:
        for ix in indexes:
            ix.close()
        if servers is not None:
            servers.close()
    out = {
        "checkins": n, "shards": shards, "shard_checkins": " ".join(map(str, sizes)),
        "remote": remote, "depth": depth, "cases": cases,
        "contacts_per_case": round(contacts / cases, 1),
        "build_s": round(built_s, 1),
        "one_p50_ms": percentile_ms(one_s, 50), "one_p99_ms": percentile_ms(one_s, 99),
        "sharded_p50_ms": percentile_ms(sharded_s, 50),
        "sharded_p99_ms": percentile_ms(sharded_s, 99),
        "answers_equal": cases,
        **counts,
    }
    out["p50_ratio"] = round(out["sharded_p50_ms"] / out["one_p50_ms"], 2)
    return out


def _time_counts(whole, shards, t_from: int, t_to: int, rounds: int = 10) -> dict:
    """The adoption report's counts (check-ins per venue and local day) over the cases'
    whole span, from the one index and over the shards, alternated; medians in ms.
    Stops the run if the two differ."""
    one_s, sharded_s = [], []
    for i in range(rounds + 1):  # the first round compiles and warms, not timed
        for turn in ((0, 1) if i % 2 else (1, 0)):
            t0 = time.perf_counter()
            if turn == 0:
                want = venue_day_counts(whole, t_from, t_to)
                one_s.append(time.perf_counter() - t0)
            else:
                got = venue_day_counts_over(shards, t_from, t_to)
                sharded_s.append(time.perf_counter() - t0)
        if not all(np.array_equal(getattr(got, k), getattr(want, k))
                   for k in ("venue", "day", "checkins")):
            raise SystemExit("the check-ins per venue and day differ")
    return {"counts_rows": len(want), "counts_days": round((t_to - t_from) / 86400, 1),
            "counts_one_ms": round(float(np.median(one_s[1:])) * 1e3, 2),
            "counts_sharded_ms": round(float(np.median(sharded_s[1:])) * 1e3, 2)}


class _ShardServers:
    """A `qrtrace shard` process for each data folder, on free loopback ports, with a
    fresh token; `shards` are their clients."""

    def __init__(self, folders: list[Path]) -> None:
        from api.shard_client import RemoteShard

        token = secrets.token_urlsafe(32)
        self.processes, self.shards = [], []
        for data in folders:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "api.cli", "shard", "--data", str(data), "--port",
                 str(port)], env={**os.environ, "QRTRACE_SHARD_TOKEN": token},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.shards.append(RemoteShard(f"http://127.0.0.1:{port}", token))
        deadline = time.monotonic() + 120
        while any(shard.problem() for shard in self.shards):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                self.close()
                raise SystemExit("the shard servers did not start")
            time.sleep(0.2)

    def close(self) -> None:
        for shard in self.shards:
            shard.close()
        for process in self.processes:
            process.terminate()
            process.wait(timeout=20)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.shards", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkins", type=int, default=10_000_000)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--depth", type=int, default=1)
    p.add_argument("--remote", action="store_true",
                   help="ask each shard through a `qrtrace shard` server on loopback")
    p.add_argument("--json", action="store_true", help="print one flat JSON object")
    args = p.parse_args(argv)
    if args.shards < 1 or args.cases < 1 or not 1 <= args.depth <= 8:
        p.error("--shards and --cases must be at least 1, --depth from 1 to 8")
    with tempfile.TemporaryDirectory(prefix="qrtrace-shards-") as tmp:
        out = run(args.checkins, args.shards, args.cases, args.depth, Path(tmp), args.remote)
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:20s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
