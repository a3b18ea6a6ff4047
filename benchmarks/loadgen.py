"""Load generators for the API benchmark, run from their own process or thread.

- `open_loop_get`: GET requests at a fixed rate (an open loop: request i is due at
  start + i / rate whether or not earlier ones have answered), over keep-alive HTTP/1.1
  connections opened as needed; latency counts from when a request was due, so a slow
  server cannot hide its queueing (no coordinated omission).
- `wrk`: Debian's wrk (C, closed loop) with a Lua script that cycles through given
  request bodies, for request rates a Python client could not produce on two cores.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


async def _request(reader, writer, raw: bytes) -> int:
    writer.write(raw)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if match is None:
        raise RuntimeError("a response without Content-Length")
    await reader.readexactly(int(match.group(1)))
    return status


async def _open_loop(host: str, port: int, paths: list[str], headers: dict[str, str],
                     rate: float, duration: float, max_connections: int):
    idle: list = []
    opened = 0
    latencies = np.full(int(rate * duration), np.nan)
    statuses: dict[int, int] = {}
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def one(i: int, due: float) -> None:
        nonlocal opened
        if idle:
            reader, writer = idle.pop()
        else:
            opened += 1
            reader, writer = await asyncio.open_connection(host, port)
        raw = f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
        try:
            status = await _request(reader, writer, raw)
        except (ConnectionError, asyncio.IncompleteReadError):
            # the server closed an idle keep-alive connection: open another, once
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
            status = await _request(reader, writer, raw)
        latencies[i] = time.perf_counter() - due
        statuses[status] = statuses.get(status, 0) + 1
        idle.append((reader, writer))

    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(latencies.shape[0]):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if opened - len(idle) >= max_connections and not idle:
            latencies[i] = np.inf  # the client itself is saturated: count as a miss
            continue
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for _, writer in idle:
        writer.close()
    return latencies, statuses, elapsed, opened


def open_loop_get(url: str, paths: list[str], headers: dict[str, str], rate: float,
                  duration: float, max_connections: int = 256) -> dict:
    """GET `paths` (cycled) at `rate` requests/s for `duration` s; latency percentiles
    in ms from each request's due time, the statuses, and the achieved rate."""
    host, port = url.split("//", 1)[1].split(":")
    latencies, statuses, elapsed, opened = asyncio.run(_open_loop(
        host, int(port), paths, headers, rate, duration, max_connections))
    done = latencies[np.isfinite(latencies)]
    return {"requests": int(latencies.shape[0]), "answered": int(done.shape[0]),
            "achieved_per_s": round(done.shape[0] / elapsed, 1),
            "p50_ms": round(float(np.percentile(done, 50)) * 1e3, 2),
            "p90_ms": round(float(np.percentile(done, 90)) * 1e3, 2),
            "p99_ms": round(float(np.percentile(done, 99)) * 1e3, 2),
            "max_ms": round(float(done.max()) * 1e3, 2), "statuses": statuses,
            "connections": opened}


def wrk(url: str, bodies: list[bytes], headers: dict[str, str], duration: float,
        connections: int = 64) -> dict:
    """POST `bodies` (cycled) to `url` with wrk for `duration` s; requests/s, latency
    percentiles and non-2xx answers. Raises RuntimeError when wrk is not installed."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk (make bench does)")
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "bodies.lua"
        lines = ["bodies = {"]
        lines += [f"  [==[{b.decode()}]==]," for b in bodies]
        lines.append("}")
        lines.append("headers = {")
        lines += [f'  ["{k}"] = "{v}",' for k, v in headers.items()]
        lines.append("}")
        lines.append("i = 0")
        lines.append("request = function()\n  i = i + 1\n"
                     "  return wrk.format('POST', nil, headers, bodies[(i % #bodies) + 1])\n"
                     "end")
        script.write_text("\n".join(lines))
        seconds = max(1, round(duration))
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                              "-s", str(script), url], capture_output=True, text=True,
                             check=True).stdout
    rate = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    pct = dict(re.findall(r"(?m)^\s+(50|90|99)%\s+([\d.]+\w+)", out))
    return {"requests_per_s": rate, "non_2xx": int(errors.group(1)) if errors else 0,
            "latency_p50": pct.get("50"), "latency_p99": pct.get("99"),
            "connections": connections}
