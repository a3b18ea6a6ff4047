"""The numba kernels of a serving process, loaded before it listens.

A kernel is compiled on its first call (a fresh install: a minute or two for them all,
then cached on disk) and still loaded and linked from that cache on its first call in
each process, holding the GIL for 5-100 ms. Left to the requests, those loads stalled
them: the first scans after a start, and the first exposure pages made while scans
flowed, waited 230-800 ms at 10M check-ins (benchmarks/RESULTS.md, the HTTP API,
eighteenth session). `qrtrace serve` (each of its processes) and `qrtrace shard` call
`warm_up` before they listen, so that a server that answers is a server that is ready.
"""

from __future__ import annotations

import time

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
