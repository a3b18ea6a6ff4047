"""A shard server (`qrtrace shard`, api/shard_server.py) asked over HTTP.

    shard = RemoteShard("http://10.0.0.7:8090", token)
    result = trace_shards([local_snapshot, shard], case, lo, hi, rule)
    counts = venue_day_counts_over([local_snapshot, shard], t_from, t_to, tz)

One keep-alive connection per shard (http.client: no extra dependency), used by one
question at a time. Anything but a well-formed answer raises ShardUnavailable naming the
shard: a trace missing a shard would be wrong, so it fails whole.
"""

from __future__ import annotations

import http.client
import threading
from urllib.parse import urlsplit

import numpy as np

from api.shard_wire import MEDIA_TYPE, QUESTIONS, ShardWireError, pack, unpack
from tracing.adoption import VenueDays
from tracing.errors import ShardUnavailable


def shard_address(url: str) -> tuple[str, int]:
    """(host, port) of a shard server's address http://HOST:PORT; ValueError otherwise."""
    parts = urlsplit(url)
    try:
        port = parts.port or 80
    except ValueError:  # a port that is no number or out of range
        port = None
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") or not port:
        raise ValueError(f"a shard's address must be http://HOST:PORT, got {url!r}")
    return parts.hostname, port


class RemoteShard:
    """A shard server at `url` (http://host:port), asked with `token`."""

    def __init__(self, url: str, token: str, timeout_s: float = 30.0) -> None:
        self._host, self._port = shard_address(url)
        self.url = url.rstrip("/")
        self._token, self._timeout = token, timeout_s
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None

    def bind(self, default_dwell: int) -> _Bound:
        """The three questions of tracing/shards.py for one rule's default dwell."""
        return _Bound(self, int(default_dwell))

    def ask(self, question: str, **columns) -> tuple[np.ndarray, ...]:
        """POST one question; its answer's columns in QUESTIONS' order. Raises
        ShardUnavailable."""
        body = pack(**columns)
        headers = {"Authorization": f"Bearer {self._token}",
                   "Content-Type": MEDIA_TYPE}
        with self._lock:
            for attempt in (0, 1):  # a kept-alive connection the server closed: once more
                try:
                    if self._connection is None:
                        self._connection = http.client.HTTPConnection(
                            self._host, self._port, timeout=self._timeout)
                    self._connection.request("POST", f"/v1/shard/{question}", body, headers)
                    response = self._connection.getresponse()
                    payload = response.read()
                    break
                except (OSError, http.client.HTTPException) as exc:
                    self.close_connection()
                    if attempt:
                        raise ShardUnavailable(f"shard {self.url}: {exc}") from exc
        if response.status != 200:
            detail = payload[:300].decode("utf-8", "replace")
            raise ShardUnavailable(f"shard {self.url} answered {response.status}: {detail}")
        answer_spec = QUESTIONS[question][2]
        try:
            answer = unpack(payload, answer_spec, tuple(answer_spec))
        except ShardWireError as exc:
            raise ShardUnavailable(f"shard {self.url} answered badly: {exc}") from None
        return tuple(answer[name] for name in answer_spec)

    # the questions of the reports over shards (tracing/adoption.py), by the names of
    # the functions that answer them over a snapshot

    def venue_day_counts(self, t_from: int, t_to: int, tz_offset_s: int) -> VenueDays:
        venue, day, checkins = self.ask("counts", t_from=int(t_from), t_to=int(t_to),
                                        tz_offset_s=int(tz_offset_s))
        return VenueDays(venue, day, checkins, int(t_from), int(t_to), int(tz_offset_s))

    def venue_checkins(self, venue_ids, t_from: int, t_to: int):
        return self.ask("checkins", venues=_u64(venue_ids), t_from=int(t_from),
                        t_to=int(t_to))

    def window_person_ids(self, venue_ids, t_from: int, t_to: int) -> np.ndarray:
        return self.ask("persons", venues=_u64(venue_ids), t_from=int(t_from),
                        t_to=int(t_to))[0]

    def problem(self) -> str | None:
        """Why the shard cannot answer now (its /healthz, 2 s at most), or None: a
        readiness check of a server whose traces need it."""
        connection = http.client.HTTPConnection(self._host, self._port, timeout=2.0)
        try:
            connection.request("GET", "/healthz")
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return f"shard {self.url} does not answer: {exc}"
        finally:
            connection.close()
        return None if status == 200 else f"shard {self.url} answered {status} to /healthz"

    def close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        with self._lock:
            self.close_connection()


class _Bound:
    """RemoteShard's questions for one default dwell, answered as LocalShard does."""

    def __init__(self, shard: RemoteShard, default_dwell: int) -> None:
        self.shard, self.default_dwell = shard, default_dwell

    def presence_rows(self, persons, lows, hi):
        return self.shard.ask("presences", persons=_u64(persons), lows=_i64(lows), hi=int(hi),
                              default_dwell=self.default_dwell)

    def overlap_rows(self, venues, starts, ends, need):
        return self.shard.ask("overlaps", venues=_u64(venues), starts=_i64(starts),
                              ends=_i64(ends), need=int(need),
                              default_dwell=self.default_dwell)

    def visit_ends(self, persons, venues, times):
        return self.shard.ask("ends", persons=_u64(persons), venues=_u64(venues),
                              times=_i64(times), default_dwell=self.default_dwell)


def _u64(a) -> np.ndarray:
    return np.ascontiguousarray(a, np.uint64)


def _i64(a) -> np.ndarray:
    return np.ascontiguousarray(a, np.int64)
