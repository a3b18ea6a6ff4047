"""Load generators for the API benchmark, run from their own process or thread.

- `open_loop_get`: GET requests at a fixed rate (an open loop: request i is due at
  start + i / rate whether or not earlier ones have answered), over keep-alive HTTP/1.1
  connections opened as needed, from one thread on epoll (cheap beside the server on
  two cores); latency counts from when a request was due, so a slow
  server cannot hide its queueing (no coordinated omission).
- `wrk`: Debian's wrk (C, closed loop) with a Lua script that cycles through given
  request bodies, for request rates a Python client could not produce on two cores.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


class _Connection:
    """One keep-alive HTTP/1.1 connection of the open-loop client, reading one answer."""

    __slots__ = ("due", "head", "lowat", "remaining", "request", "sock", "status")

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.request, self.due = sock, -1, 0.0
        self.head, self.remaining, self.status, self.lowat = b"", -1, 0, 1


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
    sock.setblocking(False)
    return sock


def _open_loop(address: tuple[str, int], raws: list[bytes], rate: float, duration: float,
               max_connections: int):
    """The client's loop: one thread, epoll, non-blocking sockets, answers read into one
    buffer and counted, not kept (a Python asyncio client cost ~0.3 ms of CPU a 130 KB
    answer, a third of what the server spent on it, on the same two cores)."""
    selector = selectors.DefaultSelector()
    buffer = memoryview(bytearray(1 << 20))
    n = int(rate * duration)
    latencies = np.full(n, np.nan)
    statuses: dict[int, int] = {}
    idle: list[_Connection] = []
    busy = opened = 0
    start = time.perf_counter() + 0.05
    i = 0

    def send(conn: _Connection, k: int, due: float) -> None:
        conn.request, conn.due, conn.head, conn.remaining = k, due, b"", -1
        conn.sock.sendall(raws[k % len(raws)])  # a few hundred bytes: the buffer takes them

    def finish(conn: _Connection) -> None:
        nonlocal busy
        latencies[conn.request] = time.perf_counter() - conn.due
        statuses[conn.status] = statuses.get(conn.status, 0) + 1
        conn.request = -1
        busy -= 1
        idle.append(conn)

    while i < n or busy:
        now = time.perf_counter()
        while i < n and start + i / rate <= now:  # every request now due goes out
            due = start + i / rate
            if idle:
                conn = idle.pop()
            elif opened < max_connections:
                opened += 1
                conn = _Connection(_connect(address))
                selector.register(conn.sock, selectors.EVENT_READ, conn)
            else:
                latencies[i] = np.inf  # the client itself is saturated: count as a miss
                i += 1
                continue
            busy += 1
            send(conn, i, due)
            i += 1
        timeout = max(0.0, start + i / rate - time.perf_counter()) if i < n else None
        for key, _ in selector.select(timeout):
            conn = key.data
            try:
                got = conn.sock.recv_into(buffer)
            except BlockingIOError:
                continue
            except ConnectionError:  # a reset: as a close
                got = 0
            if not got:  # the server closed an idle keep-alive connection
                selector.unregister(conn.sock)
                conn.sock.close()
                if conn.request < 0:
                    idle.remove(conn)
                    opened -= 1
                    continue
                if conn.head or conn.remaining >= 0:
                    raise RuntimeError("the server closed a connection mid-answer")
                replacement = _Connection(_connect(address))  # ask again, once
                selector.register(replacement.sock, selectors.EVENT_READ, replacement)
                send(replacement, conn.request, conn.due)
                continue
            if conn.request < 0:
                raise RuntimeError("bytes from the server with no request outstanding")
            if conn.remaining < 0:  # still in the head
                conn.head += bytes(buffer[:got])
                end = conn.head.find(b"\r\n\r\n")
                if end < 0:
                    continue
                match = _LENGTH.search(conn.head, 0, end)
                if match is None:
                    raise RuntimeError("a response without Content-Length")
                conn.status = int(conn.head[9:12])
                conn.remaining = int(match.group(1)) - (len(conn.head) - end - 4)
            else:
                conn.remaining -= got
            if conn.remaining == 0:
                if conn.lowat > 1:
                    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
                    conn.lowat = 1
                finish(conn)
            elif conn.remaining > 0 and conn.lowat != min(conn.remaining, _LOWAT_MAX):
                # wake when the rest has come, not for every segment (~30 a 130 KB answer)
                conn.lowat = min(conn.remaining, _LOWAT_MAX)
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, conn.lowat)
            elif conn.remaining < 0:
                raise RuntimeError("more bytes than Content-Length (pipelining is not used)")
    elapsed = time.perf_counter() - start
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    selector.close()
    return latencies, statuses, elapsed, opened


_RECEIVE_BUFFER = 4 << 20
_LOWAT_MAX = 1 << 20  # below half the receive buffer, or epoll would never say readable
_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


def open_loop_get(url: str, paths: list[str], headers: dict[str, str], rate: float,
                  duration: float, max_connections: int = 256) -> dict:
    """GET `paths` (cycled) at `rate` requests/s for `duration` s; latency percentiles
    in ms from each request's due time, the statuses, the achieved rate, and the
    client's own CPU per request."""
    host, port = url.split("//", 1)[1].split(":")
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raws = [f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode() for path in paths]
    cpu = time.process_time()
    latencies, statuses, elapsed, opened = _open_loop((host, int(port)), raws, rate, duration,
                                                      max_connections)
    cpu = time.process_time() - cpu
    done = latencies[np.isfinite(latencies)]
    return {"requests": int(latencies.shape[0]), "answered": int(done.shape[0]),
            "achieved_per_s": round(done.shape[0] / elapsed, 1),
            "p50_ms": round(float(np.percentile(done, 50)) * 1e3, 2),
            "p90_ms": round(float(np.percentile(done, 90)) * 1e3, 2),
            "p99_ms": round(float(np.percentile(done, 99)) * 1e3, 2),
            "max_ms": round(float(done.max()) * 1e3, 2), "statuses": statuses,
            "connections": opened,
            "client_cpu_ms_per_request": round(cpu * 1e3 / max(done.shape[0], 1), 3)}


def wrk(url: str, bodies: list[bytes], headers: dict[str, str], duration: float,
        connections: int = 64) -> dict:
    """POST `bodies` (cycled) to `url` with wrk for `duration` s; requests/s, latency
    percentiles, non-2xx answers, and wrk's own CPU time per request (it shares the
    machine with the server). Raises RuntimeError when wrk is not installed."""
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
        began = os.times()
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                              "-s", str(script), url], capture_output=True, text=True,
                             check=True).stdout
        ended = os.times()
    rate = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    pct = dict(re.findall(r"(?m)^\s+(50|90|99)%\s+([\d.]+\w+)", out))
    return {"requests_per_s": rate, "non_2xx": int(errors.group(1)) if errors else 0,
            "latency_p50": pct.get("50"), "latency_p99": pct.get("99"),
            "connections": connections,
            "client_cpu_us_per_request": round(
                (ended.children_user - began.children_user + ended.children_system
                 - began.children_system) * 1e6 / max(rate * seconds, 1), 1)}
