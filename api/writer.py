"""The channel between a server's follower processes and its writer.

`qrtrace serve --workers N` runs N processes on one listening socket (api/workers.py).
The first, the writer, owns what must exist once: the index (its write-ahead log and
merges), the rate limits' counts, the retention purge and, with --kafka, the producer
and the in-process indexing worker. Each follower answers reads from its own
tracing.follower.IndexFollower, and checks and verifies the scans it receives itself
(the costly part: parsing, times, token MACs); the rows that passed come here, to be
admitted through the shared rate limits and written in the writer's group commit.

    # writer, once per follower, before starting it:
    parent_end, child_end = socket.socketpair()
    WriterChannel(parent_end, service)            # serves it in a thread
    # follower:
    store = RemoteStore(socket.socket(fileno=fd))  # ScanIntake's store
    store.reload("venues")                         # after saving venues.json

Each message is a 4-byte little-endian length and a pickle. Pickle is safe here only
because both ends are this program joined by a socketpair that no other process can
reach: nothing from the network is ever unpickled.

Errors: a follower whose writer is gone gets WriterGone (the server is stopping or the
writer died; api/workers.py stops the followers then).
"""

from __future__ import annotations

import logging
import pickle
import socket
import struct
import threading

import numpy as np

from api.ratelimit import RateLimited

logger = logging.getLogger("qrtrace.api")
_LENGTH = struct.Struct("<I")
STORE, STORED, RELOAD, READY = "store", "stored", "reload", "ready"
_RELOADS = {"venues": "reload_venues", "keys": "reload_keyring", "revoked": "reload_revoked"}


class WriterGone(RuntimeError):
    """The writer process does not answer: the server is stopping, or its writer died."""


def _send(sock: socket.socket, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        read = sock.recv_into(view[got:])
        if not read:
            return None
        got += read
    return bytes(buf)


def _recv(sock: socket.socket):
    """The next message, or None at end of stream."""
    head = _recv_exact(sock, _LENGTH.size)
    if head is None:
        return None
    body = _recv_exact(sock, _LENGTH.unpack(head)[0])
    return None if body is None else pickle.loads(body)


def _refusals_out(refused: dict[int, RateLimited]) -> list[tuple]:
    return [(g, e.scope, e.retry_after, e.message, e.persons) for g, e in refused.items()]


def _refusals_in(refused: list[tuple]) -> dict[int, RateLimited]:
    return {g: RateLimited(scope, retry, message, persons)
            for g, scope, retry, message, persons in refused}


class WriterChannel:
    """The writer's end of one follower's socket, served by a daemon thread until the
    follower closes it."""

    def __init__(self, sock: socket.socket, service) -> None:
        self.sock = sock
        self.service = service
        self.ready = threading.Event()  # the follower has opened its service
        self.thread = threading.Thread(target=self._serve, name="qrtrace-writer-channel",
                                       daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.sock:
            while True:
                try:
                    message = _recv(self.sock)
                except OSError:
                    return
                if message is None:
                    return
                try:
                    reply = ("ok", self._handle(*message))
                except Exception as exc:  # the follower's request fails, not the writer
                    logger.exception("a follower's request to the writer failed")
                    reply = ("error", f"{type(exc).__name__}: {exc}")
                try:
                    _send(self.sock, reply)
                except OSError:
                    return

    def _handle(self, op: str, *args):
        if op == STORE:
            self.service.keyring()  # a rotation elsewhere reaches the Kafka worker first
            refused, rows, duplicate = self.service.intake.store.admit_and_write(*args)
            return _refusals_out(refused), rows, duplicate
        if op == STORED:
            return self.service.intake.store.stored(*args)
        if op == READY:
            self.ready.set()
            return None
        if op == RELOAD:
            method = _RELOADS.get(args[0])
            if method is None:
                raise ValueError(f"unknown reload {args[0]!r}")
            getattr(self.service, method)()
            return None
        raise ValueError(f"unknown request {op!r}")


class RemoteStore:
    """A follower's store for ScanIntake: LocalStore.admit_and_write, run by the writer.
    Thread-safe (one request at a time on the socket)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()

    def _call(self, *message):
        with self._lock:
            try:
                _send(self.sock, message)
                reply = _recv(self.sock)
            except OSError as exc:
                raise WriterGone(f"the writer process does not answer: {exc}") from None
        if reply is None:
            raise WriterGone("the writer process closed its channel")
        status, value = reply
        if status != "ok":
            raise RuntimeError(f"the writer process failed: {value}")
        return value

    def admit_and_write(self, batch, group: np.ndarray, ok: np.ndarray, persons: np.ndarray):
        """As LocalStore.admit_and_write, in the writer process."""
        refused, rows, duplicate = self._call(STORE, batch, group, ok, persons)
        return _refusals_in(refused), rows, duplicate

    def stored(self, persons: np.ndarray, venue: np.ndarray, t_in: np.ndarray) -> np.ndarray:
        """As LocalStore.stored, asked of the writer (a follower's own index may lag)."""
        return self._call(STORED, persons, venue, t_in)

    def ready(self) -> None:
        """Tell the writer this follower is about to serve."""
        self._call(READY)

    def reload(self, what: str) -> None:
        """Make the writer read again what this process changed: "venues" (venues.json;
        the writer applies the dwell times to the index), "keys" or "revoked"."""
        self._call(RELOAD, what)

    def close(self) -> None:
        """Close this end (the writer's thread for it ends)."""
        self.sock.close()
