"""fdatasync of one file for the coroutines of an event loop, done by a small child process.

Why not a thread: a thread that fsyncs must take the GIL from the event loop twice per
round (to start the fsync, and to hand its result back), and a busy loop gives it up only
when the interpreter forces a switch (every 5 ms by default). py-spy of `qrtrace serve`
answering 800 exposure queries/s showed the loop waiting for the GIL after each hand-over
for 16% of its time, and every query's audit line waited for two such hand-overs on top
of the fsync itself. A child process has its own interpreter: the loop sends it a
number, goes on serving, and reads the answer when the fsync is done like any socket.

The protocol, over a socketpair: the parent sends a ticket (8 bytes, little-endian
signed); the child reads every ticket waiting, runs one fdatasync of the file and answers
the highest ticket it read. If the fdatasync fails it answers minus the errno and exits.
It exits too when the parent's end closes (the parent closed it, or died). Tickets are
the parent's: "everything written before I sent this".
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

_TICKET = struct.Struct("<q")
_logger = logging.getLogger(__name__)


class SyncerGone(Exception):
    """The fsync helper process could not be started, or exited without an answer."""


class LoopSyncer:
    """A child process that fdatasyncs `fd` when asked, answering through `loop`.

    `on_answer(ticket)` runs in the loop's thread for each answer: a ticket >= 0 means
    everything written before that ticket was sent is on disk; a negative one is minus
    the errno of a failed fdatasync (the helper has then exited). `on_gone(reason)` runs
    if the helper exits without answering a request."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop,
                 on_answer: Callable[[int], None], on_gone: Callable[[str], None],
                 command: list[str] | None = None) -> None:
        """Start the helper for `fd`. `command` replaces the helper's program (tests);
        it gets the file's and the socket's descriptor numbers as its last two arguments.
        Raises SyncerGone if the helper cannot be started."""
        self.loop = loop
        self._on_answer, self._on_gone = on_answer, on_gone
        self._buffer = b""
        self._waiting = False  # a request was sent and not yet answered
        ours, theirs = socket.socketpair()
        try:
            program = command or [sys.executable, "-S", "-c", _CHILD_BOOT]
            self.process = subprocess.Popen(
                [*program, str(fd), str(theirs.fileno())], pass_fds=(fd, theirs.fileno()),
                stdin=subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            raise SyncerGone(f"cannot start the fsync helper ({exc})") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        self._socket = ours
        loop.add_reader(ours.fileno(), self._readable)

    @property
    def closed(self) -> bool:
        """Whether the helper is gone (closed, or it exited); a closed one answers nothing."""
        return self._socket.fileno() < 0

    def request(self, ticket: int) -> None:
        """Ask for an fdatasync covering everything written before this call; if the
        helper is gone, on_gone says so (now, from this call)."""
        self._waiting = True
        try:
            self._socket.send(_TICKET.pack(ticket))
        except OSError as exc:  # the helper is gone: its end is closed
            self._gone(f"the fsync helper is gone ({exc.strerror})")

    def _readable(self) -> None:
        try:
            data = self._socket.recv(4096)
        except BlockingIOError:
            return
        except OSError as exc:
            data, error = b"", exc.strerror
        else:
            error = None
        if not data:
            self._gone(f"the fsync helper exited ({error or 'end of its socket'})")
            return
        self._buffer += data
        whole = len(self._buffer) - len(self._buffer) % _TICKET.size
        answers = [t for (t,) in _TICKET.iter_unpack(self._buffer[:whole])]
        self._buffer = self._buffer[whole:]
        for ticket in answers:
            self._waiting = False
            self._on_answer(ticket)

    def _gone(self, reason: str) -> None:
        waiting = self._waiting
        if not self.closed:
            self.close()
        if waiting:
            self._on_gone(reason)

    def close(self) -> None:
        """Stop the helper (it exits when its socket closes). Call from the loop's thread
        while the loop runs, or after the loop has closed."""
        if self._socket.fileno() < 0:
            return
        if not self.loop.is_closed():
            self.loop.remove_reader(self._socket.fileno())
        self._socket.close()
        self._waiting = False
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _logger.warning("the fsync helper %d did not exit; killing it", self.process.pid)
            self.process.kill()
            self.process.wait()


def child(fd: int, sock_fd: int) -> None:
    """The helper's loop (see the module's docstring)."""
    # a signal to the server's process group (Ctrl-C, `timeout`, a service manager) starts
    # its graceful shutdown, during which requests still wait for their fsync: we stop
    # when the server closes our socket (or dies), not before
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sync = getattr(os, "fdatasync", os.fsync)
    sock = socket.socket(fileno=sock_fd)
    buffer = b""
    while True:
        data = sock.recv(4096)
        if not data:
            return
        buffer += data
        whole = len(buffer) - len(buffer) % _TICKET.size
        if not whole:
            continue
        highest = max(t for (t,) in _TICKET.iter_unpack(buffer[:whole]))
        buffer = buffer[whole:]
        try:
            sync(fd)
        except OSError as exc:
            sock.sendall(_TICKET.pack(-(exc.errno or 5)))
            return
        sock.sendall(_TICKET.pack(highest))


# the helper needs no site-packages (-S): only this module, found beside its package
_CHILD_BOOT = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); "
               "from api.syncer import child; child(int(sys.argv[1]), int(sys.argv[2]))")
