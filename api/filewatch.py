"""Whether a file changed since the last look, by one stat: how processes that share a
data folder see each other's venues.json and keys.json (api/service.py), and how a Kafka
worker sees a rotated key ring or a new revocation (WatchedFile: api/keystore.KeyFile,
api/revocations.RevocationFile)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

logger = logging.getLogger("qrtrace.files")
T = TypeVar("T")


class FileWatch:
    """Whether a file changed (replaced, written, created or removed) since the last
    look: one stat a look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen = self._stamp()

    def _stamp(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def changed(self) -> bool:
        """True once after each change."""
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        return True

    def seen_now(self) -> None:
        """Take the file as it is now as seen (after this process changed it)."""
        self._seen = self._stamp()

    def look_again(self) -> None:
        """Make the next look report a change (after the file could not be used)."""
        self._seen = ()


class WatchedFile(Generic[T]):
    """What a file holds, read again when it changes (one stat a call). After a change
    the file cannot be read (a copy half-written, a bad mode), the last good value stays
    in use, the problem is logged once, and the next call tries again.

        keys = WatchedFile(path, read_keys, KeystoreError, "key ring")
        ring = keys()   # the value as the file holds it now

    `read(path)` gives the value or raises `errors`; the first read's error is raised."""

    def __init__(self, path: str | os.PathLike, read: Callable[[Path], T],
                 errors: type[Exception] | tuple[type[Exception], ...], what: str) -> None:
        self.path = Path(path)
        self._read, self._errors, self._what = read, errors, what
        self._watch = FileWatch(self.path)
        self._value = read(self.path)
        self._problem: str | None = None

    def __call__(self) -> T:
        if self._watch.changed():
            try:
                self._value = self._read(self.path)
            except self._errors as exc:
                self._watch.look_again()
                if str(exc) != self._problem:
                    logger.error(f"{self._what} not reloaded, the last one stays in use",
                                 extra={"fields": {"path": str(self.path), "problem": str(exc)}})
                self._problem = str(exc)
            else:
                self._problem = None
                logger.info(f"{self._what} reloaded", extra={"fields": {"path": str(self.path)}})
        return self._value
