"""A/B of two versions of the trace kernel in one process.

    python -m benchmarks.trace_kernel_ab OTHER.py [--checkins N] [--depth D] [--index DIR]

OTHER.py is a copy of tracing/trace_kernels.py with a change in it. Both kernels trace
the same random cases of a simulated index (built into DIR if it is not there; seed 0,
as benchmarks.tracing), alternating case by case, and the p50, p90 and mean of each are
printed; every 37th case, both answers must be equal.

Why in one process: on this kind of host the same kernel's F1 p50 differs by up to 2x
between processes, and within one process from one second to the next (see RESULTS.md,
"the trace's fixed costs"), so two versions timed in turn in separate runs compare two
moments; alternating case by case compares the versions.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.tracing import build, sample_cases
from tracing import simulate
from tracing import trace_kernels as ours
from tracing.index import CheckinIndex
from tracing.model import ContactRule


def load_kernels(path: Path):
    """The module at `path` (compiled afresh: numba's cache is keyed by file). It is
    registered in sys.modules first: loading its kernels from numba's cache in a later
    run imports the module by name."""
    spec = importlib.util.spec_from_file_location("trace_kernels_other", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def compare(other, index: Path, checkins: int, depth: int, cases: int) -> dict:
    """Seconds per trace of each kernel over the same cases, alternated."""
    c, town = simulate.checkins_for_count(checkins, seed=0)
    if not (index / "MANIFEST.json").exists():
        print(f"building a {checkins:,}-check-in index in {index}", file=sys.stderr)
        build(c, town, index)
    sample = sample_cases(c, cases, 0)
    del c
    rule = ContactRule(depth=depth)
    with CheckinIndex.open(index, create=False) as idx:
        snap = idx.snapshot()
        table = snap.table(rule.default_dwell)

        def trace(kernels, case, lo, hi):
            return kernels.trace(table, np.uint64(case), lo, hi, rule.effective_min_overlap,
                                 rule.linger, depth)

        times: dict[str, list[float]] = {"main": [], "other": []}
        for kernels in (ours, other):  # compiled or loaded before timing
            trace(kernels, int(sample[0][0]), int(sample[1][0]), int(sample[2][0]))
        for i, (case, lo, hi) in enumerate(zip(*(a.tolist() for a in sample), strict=True)):
            # which goes first alternates, and swaps halfway
            name = ("main", "other")[(i + 2 * i // cases) % 2]
            kernels = ours if name == "main" else other
            began = time.perf_counter()
            answer = trace(kernels, case, lo, hi)
            times[name].append(time.perf_counter() - began)
            if i % 37 == 0:
                again = trace(other if kernels is ours else ours, case, lo, hi)
                if not all(np.array_equal(a, b) for a, b in zip(answer, again, strict=True)):
                    raise SystemExit(f"the kernels' answers differ for case {case}")
    out = {}
    for name, seconds in times.items():
        us = np.array(seconds[len(seconds) // 10:]) * 1e6  # the first tenth warms up
        out[name] = {"p50_us": round(float(np.percentile(us, 50)), 1),
                     "p90_us": round(float(np.percentile(us, 90)), 1),
                     "mean_us": round(float(us.mean()), 1)}
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, compare, print."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.trace_kernel_ab",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("other", type=Path, help="a changed copy of tracing/trace_kernels.py")
    p.add_argument("--checkins", type=int, default=10_000_000)
    p.add_argument("--depth", type=int, default=1)
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--index", type=Path, help="index folder to reuse (default: a temporary one)")
    args = p.parse_args(argv)
    if args.cases < 20:
        p.error("--cases must be at least 20")
    other = load_kernels(args.other)
    if args.index is not None:
        result = compare(other, args.index, args.checkins, args.depth, args.cases)
    else:
        with tempfile.TemporaryDirectory(prefix="qrtrace-ab-") as tmp:
            result = compare(other, Path(tmp) / "index", args.checkins, args.depth,
                             args.cases)
    for name, figures in result.items():
        print(name, " ".join(f"{k} {v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
