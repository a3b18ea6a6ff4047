"""Whether a file changed since the last look, by one stat: how processes that share a
data folder see each other's venues.json and keys.json (api/service.py), and how a Kafka
worker sees a rotated key ring (api/keystore.KeyFile)."""

from __future__ import annotations

import os
from pathlib import Path


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
