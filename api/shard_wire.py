"""The wire between a trace's coordinator and a shard server: named numpy columns.

A request or an answer is one message of named 1-D columns; scalars travel as one-item
columns. A message is the magic b"QRS1", the length of a JSON header (uint32, little-
endian), the header ([name, dtype, rows] per column, in order), then each column's
little-endian bytes one after the other. `unpack` checks every column a question needs:
present, its dtype, the lengths that must agree, a row cap, and that the bytes are
exactly those the header names; a bad body raises ShardWireError naming the column and
its problem. (An .npz archive was the first format: 0.6 ms to pack and read again for a
few hundred rows, most of a question's 2 ms on loopback.)
"""

from __future__ import annotations

import json
import struct

import numpy as np

MAGIC = b"QRS1"
MEDIA_TYPE = "application/vnd.qrtrace.shard"
MAX_ROWS = 1 << 22  # rows of one column: a level of an F2 trace holds tens of thousands
MAX_HEADER = 1 << 16
DTYPES = ("uint64", "int64")


class ShardWireError(ValueError):
    """A body that is not the message of columns a question needs."""


def pack(**columns: np.ndarray | int) -> bytes:
    """The columns (ints become one-item int64 columns) as one message."""
    arrays = [(k, np.array([v], np.int64) if isinstance(v, int) else np.ascontiguousarray(v))
              for k, v in columns.items()]
    header = json.dumps([[k, a.dtype.name, a.shape[0]] for k, a in arrays]).encode()
    parts = [MAGIC, struct.pack("<I", len(header)), header]
    parts += [a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes() for _, a in arrays]
    return b"".join(parts)


def unpack(body: bytes, spec: dict[str, str], same_length: tuple[str, ...] = ()
           ) -> dict[str, np.ndarray]:
    """The columns of `spec` (name: dtype name, e.g. "uint64") from a message; names in
    `same_length` must have equal lengths, and "scalar:" dtypes one item (returned as
    int). Raises ShardWireError for anything else."""
    if body[:4] != MAGIC or len(body) < 8:
        raise ShardWireError("not a shard message (no QRS1 magic)")
    (size,) = struct.unpack_from("<I", body, 4)
    if size > MAX_HEADER or 8 + size > len(body):
        raise ShardWireError("not a shard message (bad header length)")
    try:
        header = json.loads(body[8:8 + size])
        entries = {str(name): (str(kind), int(rows)) for name, kind, rows in header}
    except (ValueError, TypeError) as exc:
        raise ShardWireError(f"not a shard message (bad header: {exc})") from None
    offsets, at = {}, 8 + size
    for name, kind, rows in header:
        if kind not in DTYPES or not 0 <= int(rows) <= MAX_ROWS:
            raise ShardWireError(f"column {name}: {kind} x {rows} is not a column here "
                                 f"(uint64 or int64, at most {MAX_ROWS} rows)")
        offsets[str(name)] = at
        at += 8 * int(rows)
    if at != len(body):
        raise ShardWireError(f"the columns take {at} bytes, the message has {len(body)}")
    missing = [name for name in spec if name not in entries]
    if missing:
        raise ShardWireError(f"missing columns: {', '.join(missing)}")
    out: dict = {}
    for name, want in spec.items():
        kind, rows = entries[name]
        scalar = want.startswith("scalar:")
        if kind != want.removeprefix("scalar:"):
            raise ShardWireError(f"column {name} must be {want.removeprefix('scalar:')}, "
                                 f"got {kind}")
        if scalar and rows != 1:
            raise ShardWireError(f"column {name} must hold one value")
        column = np.frombuffer(body, np.dtype(kind).newbyteorder("<"), rows, offsets[name])
        out[name] = int(column[0]) if scalar else column.astype(kind)  # native, writable
    lengths = {out[name].shape[0] for name in same_length}
    if len(lengths) > 1:
        raise ShardWireError(f"columns {', '.join(same_length)} must have the same length")
    return out


# Each question a shard answers: the request's columns, the ones that must have the same
# length, and the answer's columns in the order LocalShard (the three of a sharded trace,
# tracing/shards.py, each with the rule's default dwell) or tracing/adoption.py (the
# three of the reports over shards) returns them.
_DWELL = {"default_dwell": "scalar:int64"}
_WINDOW = {"t_from": "scalar:int64", "t_to": "scalar:int64"}
QUESTIONS: dict[str, tuple[dict[str, str], tuple[str, ...], dict[str, str]]] = {
    "presences": (
        {"persons": "uint64", "lows": "int64", "hi": "scalar:int64", **_DWELL},
        ("persons", "lows"),
        {"who": "int64", "venue": "uint64", "start": "int64", "end": "int64",
         "t_in": "int64", "explicit": "int64"}),
    "overlaps": (
        {"venues": "uint64", "starts": "int64", "ends": "int64", "need": "scalar:int64",
         **_DWELL},
        ("venues", "starts", "ends"),
        {"person": "uint64", "venue": "uint64", "start": "int64", "end": "int64",
         "t_in": "int64", "at": "int64", "explicit": "int64"}),
    "ends": (
        {"persons": "uint64", "venues": "uint64", "times": "int64", **_DWELL},
        ("persons", "venues", "times"),
        {"length": "int64", "next": "int64"}),
    "counts": (
        {**_WINDOW, "tz_offset_s": "scalar:int64"},
        (),
        {"venue": "uint64", "day": "int64", "checkins": "int64"}),
    "checkins": (
        {"venues": "uint64", **_WINDOW},
        (),
        {"venue": "uint64", "person": "uint64", "t_in": "int64"}),
    "persons": (
        {"venues": "uint64", **_WINDOW},
        (),
        {"person": "uint64"}),
}
