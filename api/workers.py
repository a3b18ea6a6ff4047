"""`qrtrace serve --workers N`: N server processes on one listening socket.

The process that `qrtrace serve` starts is the writer: it opens the Service as usual
(the index, the rate limits, the retention purge, Kafka), binds the address, and starts
N - 1 followers before serving on the socket itself. Every process accepts connections
from the same socket (the kernel hands each connection to one of them) and answers every
route; a follower reads the index through a tracing.follower.IndexFollower and sends the
scans it has checked and verified to the writer (api/writer.py), over a socketpair made
for it. The settings reach a follower through its stdin (they may hold the admin token:
never on a command line).

    followers = Followers(settings, service, sock, count=N - 1, log_level="warning")
    followers.start()
    ...                        # the writer serves on `sock`
    followers.stop()

A follower that exits while the server runs is started again (after a pause if it keeps
failing); a follower whose writer dies is stopped by the kernel (PR_SET_PDEATHSIG).
Followers are what `python -m api.workers LISTEN_FD WRITER_FD LOG_LEVEL SLOT WRITER_PID`
runs.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

logger = logging.getLogger("qrtrace.api")
RESTART_PAUSE_S = 5.0  # between restarts of a follower that failed soon after starting
STOP_WAIT_S = 15.0


def share_metrics() -> str:
    """Make every process of this server count into one fresh folder of
    prometheus_client's multiprocess files (removed at exit); the followers inherit it.
    Call before any metric is made."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("share_metrics() must run before prometheus_client is imported")
    folder = tempfile.mkdtemp(prefix="qrtrace-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def bind(host: str, port: int, listen: bool = True) -> socket.socket:
    """A TCP socket bound to (host, port), inheritable by the followers; listening
    unless `listen` is False (then whoever serves on it listens: until then a client is
    refused at once instead of waiting on a backlog nobody accepts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class Followers:
    """Starts, watches and stops the follower processes of one writer."""

    def __init__(self, settings, service, sock: socket.socket, *, count: int,
                 log_level: str) -> None:
        self.settings = settings
        self.service = service
        self.sock = sock
        self.count = count
        self.log_level = log_level
        self._procs: dict[int, subprocess.Popen] = {}
        self._channels: dict[int, object] = {}  # slot -> its api.writer.WriterChannel
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="qrtrace-followers",
                                         daemon=True)

    def start(self) -> None:
        """Start every follower and the thread that restarts one that exits."""
        for slot in range(1, self.count + 1):
            self._procs[slot] = self._spawn(slot)
        self._watcher.start()

    def _spawn(self, slot: int) -> subprocess.Popen:
        from api.writer import WriterChannel

        ours, theirs = socket.socketpair()
        self._channels[slot] = WriterChannel(ours, self.service)  # not ready until it says
        try:
            fds = (self.sock.fileno(), theirs.fileno())
            proc = subprocess.Popen(
                [sys.executable, "-m", "api.workers", str(fds[0]), str(fds[1]),
                 self.log_level, str(slot), str(os.getpid())],
                stdin=subprocess.PIPE, pass_fds=fds, close_fds=True)
        finally:
            theirs.close()
        try:
            proc.stdin.write(pickle.dumps(self.settings))
            proc.stdin.close()
        except OSError:  # it died at once: the watcher sees it exit
            pass
        return proc

    def _watch(self) -> None:
        started = {slot: time.monotonic() for slot in self._procs}
        while not self._stopping.wait(0.5):
            for slot, proc in list(self._procs.items()):
                code = proc.poll()
                if code is None or self._stopping.is_set():
                    continue
                lived = time.monotonic() - started[slot]
                logger.error("follower %d (pid %d) exited with %s after %.0f s; starting "
                             "it again", slot, proc.pid, code, lived)
                if lived < RESTART_PAUSE_S and self._stopping.wait(RESTART_PAUSE_S):
                    return
                self._procs[slot] = self._spawn(slot)
                started[slot] = time.monotonic()

    def readiness_problem(self) -> str | None:
        """What /readyz reports while followers are starting (None once all serve)."""
        starting = [slot for slot, ch in self._channels.items() if not ch.ready.is_set()]
        if starting:
            return f"{len(starting)} of {self.count} follower processes are starting"
        return None

    def stop(self) -> None:
        """SIGTERM every follower (they finish their requests), then wait; SIGKILL the
        ones still running after STOP_WAIT_S."""
        self._stopping.set()
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the parent exits (strictly: the parent's thread that
    started this process; Linux; elsewhere a no-op)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def follower_main(argv: list[str]) -> int:
    """A follower: serve on the inherited socket, writing through the writer."""
    import uvicorn

    from api import warmup
    from api.app import create_asgi
    from api.service import Service
    from api.writer import RemoteStore

    listen_fd, writer_fd, log_level, slot, writer_pid = (
        int(argv[0]), int(argv[1]), argv[2], argv[3], int(argv[4]))
    die_with_parent()
    if os.getppid() != writer_pid:  # the writer died before the request took effect
        return 1
    settings = pickle.load(sys.stdin.buffer)
    writer = RemoteStore(socket.socket(fileno=writer_fd))
    service = Service(settings, writer=writer, process=f"follower {slot}")
    try:
        warmup.warm_up()  # the writer has warmed them first: loaded from numba's cache
        writer.ready()
        gc.collect()
        gc.freeze()
        config = uvicorn.Config(create_asgi(settings, service), log_level=log_level,
                                access_log=False, proxy_headers=False)
        uvicorn.Server(config).run(sockets=[socket.socket(fileno=listen_fd)])
    finally:
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(follower_main(sys.argv[1:]))
