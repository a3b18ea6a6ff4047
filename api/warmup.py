"""The numba kernels of a serving process, loaded before it listens.

A kernel is compiled on its first call (a fresh install: a minute or two for them all,
then cached on disk) and still loaded and linked from that cache on its first call in
each process, holding the GIL for 5-100 ms. Left to the requests, those loads stalled
them: the first scans after a start, and the first exposure pages made while scans
flowed, waited 230-800 ms at 10M check-ins (benchmarks/RESULTS.md, the HTTP API,
eighteenth session). `qrtrace serve` (each of its processes) and `qrtrace shard` call
`warm_up` before they listen, so that a server that answers is a server that is ready.

`python -m api.warmup` fills the on-disk cache on a fresh install, the decoder's kernels
and tracing's in two processes at once (`make test` runs it while the Kafka broker
starts: compiling them one after the other took about three minutes of a CI run).
"""

from __future__ import annotations

import importlib
import time
from concurrent.futures import ProcessPoolExecutor

import decoder.warmup
import tracing.warmup

NOTICE = "loading the kernels (a fresh install compiles them first: a minute or two)..."


def warm_up() -> float:
    """Call every kernel the service's requests call (decoder/warmup.py,
    tracing/warmup.py) on scratch data; returns the seconds it took."""
    started = time.perf_counter()
    decoder.warmup.warm_up()
    tracing.warmup.warm_up()
    return time.perf_counter() - started


def _warm_module(name: str) -> None:
    importlib.import_module(name).warm_up()


def compile_all() -> float:
    """`warm_up`, the decoder's part and tracing's in two processes at once (numba
    compiles on one core); returns the seconds it took."""
    started = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_warm_module, ["decoder.warmup", "tracing.warmup"]))
    return time.perf_counter() - started


if __name__ == "__main__":
    print(f"warmup: the numba kernels compiled or loaded in {compile_all():.0f} s")
