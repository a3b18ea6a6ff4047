"""Errors raised by tracing/.

    TracingError                     the root: catch this to catch them all
    ├── InvalidCheckin (ValueError)  a check-in row is malformed; names the row and field
    ├── InvalidQuery (ValueError)    a trace's case or window is malformed
    └── StorageError (OSError)       the data folder is missing, locked or corrupt
        └── ShardUnavailable         a shard of a sharded trace did not answer
"""

from __future__ import annotations


class TracingError(Exception):
    """The root of every error raised by tracing/."""


class InvalidCheckin(TracingError, ValueError):
    """A check-in is not valid input; the message names the row, the field and why."""


class InvalidQuery(TracingError, ValueError):
    """A trace request is not valid: a window that is empty, a case id out of range."""


class StorageError(TracingError, OSError):
    """The index's folder cannot be used: missing, not an index, or corrupt beyond repair."""


class ShardUnavailable(StorageError):
    """A shard (tracing/shards.py) could not answer: unreachable, refused, or broken; the
    message names the shard and why. A trace without one of its shards would be wrong,
    so it fails whole."""
