"""Fixtures for the API tests: a real `qrtrace serve` process on loopback.

    def test_x(live_server):
        server = live_server()                 # a fresh data folder, an admin token
        server.post("/v1/admin/venues", ...)   # requests with the admin token

`live_server(demo=True)` loads the demo commune (slower: about 10 s).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
IDLE_S = 3.0  # a pooled connection idle longer is not reused (uvicorn closes it at 5 s)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    """A running `qrtrace serve`: its URL, data folder, admin token and output."""

    url: str
    data: Path
    admin_token: str
    process: subprocess.Popen
    log: Path
    session: requests.Session = field(default_factory=requests.Session)
    last_request: float = 0.0

    def request(self, method: str, path: str, token: str | None = "admin", **kw):
        """An HTTP request; token "admin" (default) uses the admin token, None none."""
        if time.monotonic() - self.last_request > IDLE_S:
            # the server closes a connection idle for 5 s: a request sent on it as it
            # closes is reset ('Connection reset by peer'), so idle ones are not reused
            self.session.close()
        self.last_request = time.monotonic()
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {self.admin_token if token == 'admin' else token}"
        return self.session.request(method, self.url + path, headers=headers, timeout=60, **kw)

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw):
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw):
        return self.request("DELETE", path, **kw)

    def output(self) -> str:
        """What the server printed so far (stdout and stderr)."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(data: Path, *, demo: bool = False, extra: tuple[str, ...] = (),
                 env: dict | None = None, timeout: float = 180.0,
                 admin_token: str | None = "new") -> LiveServer:
    """Start `qrtrace serve` on a free port and wait until /readyz answers 200.

    admin_token: "new" gives QRTRACE_ADMIN_TOKEN a fresh random value; None leaves it
    unset (the server then creates one on its first start and prints it)."""
    port = free_port()
    token = "adm_" + secrets.token_urlsafe(24) if admin_token == "new" else (admin_token or "")
    log = data.parent / f"{data.name}-serve.log"
    args = [sys.executable, "-m", "api.cli", "serve", "--data", str(data),
            "--host", "127.0.0.1", "--port", str(port), *extra]
    if demo:
        args.append("--demo")
    full_env = {**os.environ, "QRTRACE_ADMIN_TOKEN": token, **(env or {})}
    if admin_token is None:
        del full_env["QRTRACE_ADMIN_TOKEN"]
    with open(log, "wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=out,
                                   stderr=subprocess.STDOUT)
    server = LiveServer(f"http://127.0.0.1:{port}", data, token, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"qrtrace serve exited with {process.returncode}:\n"
                               f"{server.output()}")
        try:
            if requests.get(server.url + "/readyz", timeout=2).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"qrtrace serve did not get ready in {timeout} s:\n{server.output()}")


@pytest.fixture(scope="session", autouse=True)
def kernels_compiled():
    """numba's on-disk cache filled once, here, before any server starts: a server loads
    every kernel before it answers (api/warmup.py), and on a fresh clone compiling them
    all takes about two minutes, too close to start_server's wait."""
    from api.warmup import warm_up

    warm_up()


@pytest.fixture
def live_server(tmp_path):
    """A factory of running servers, each on a fresh data folder; all stopped after."""
    servers: list[LiveServer] = []

    def make(demo: bool = False, extra: tuple[str, ...] = (), env: dict | None = None,
             data: Path | None = None) -> LiveServer:
        server = start_server(data or tmp_path / f"data{len(servers)}", demo=demo,
                              extra=extra, env=env)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """One server with the demo commune loaded, shared by the tests of a session."""
    server = start_server(tmp_path_factory.mktemp("demo") / "data", demo=True)
    yield server
    server.stop()


def demo_tokens(server: LiveServer) -> dict[str, str]:
    """The sign-in tokens a `--demo` server printed: {"commune": ..., "district": ...}."""
    found = {}
    for line in server.output().splitlines():
        line = line.strip()
        for key in ("commune", "district"):
            if line.startswith(f"{key} official"):
                found[key] = line.rsplit(" ", 1)[-1]
    return found
