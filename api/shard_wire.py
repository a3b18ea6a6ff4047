"""The wire between a trace's coordinator and a shard server: named numpy columns.

A request or an answer is one `.npz` archive (numpy's zip of .npy files, never pickles:
np.load with allow_pickle=False) of named 1-D columns; scalars travel as one-item
columns. `unpack` checks every column a question needs: present, its dtype, 1-D, the
lengths that must agree, and a row cap; a bad body raises ShardWireError naming the
column and its problem.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

MAX_ROWS = 1 << 22  # rows of one column: a level of an F2 trace holds tens of thousands


class ShardWireError(ValueError):
    """A body that is not the archive of columns a question needs."""


def pack(**columns: np.ndarray | int) -> bytes:
    """The columns (ints become one-item int64 columns) as one .npz archive."""
    buffer = io.BytesIO()
    arrays = {k: np.array([v], np.int64) if isinstance(v, int) else np.ascontiguousarray(v)
              for k, v in columns.items()}
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def unpack(body: bytes, spec: dict[str, str], same_length: tuple[str, ...] = ()
           ) -> dict[str, np.ndarray]:
    """The columns of `spec` (name: dtype string, e.g. "uint64") from an archive; names in
    `same_length` must have equal lengths, and "scalar:" dtypes one item (returned as
    int). Raises ShardWireError for anything else."""
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as archive:
            names = set(archive.files)
            missing = [name for name in spec if name not in names]
            if missing:
                raise ShardWireError(f"missing columns: {', '.join(missing)}")
            out: dict = {}
            for name, kind in spec.items():
                column = archive[name]
                scalar = kind.startswith("scalar:")
                dtype = np.dtype(kind.removeprefix("scalar:"))
                if column.dtype != dtype or column.ndim != 1:
                    raise ShardWireError(f"column {name} must be 1-D {dtype}, got "
                                         f"{column.ndim}-D {column.dtype}")
                if scalar and column.shape[0] != 1:
                    raise ShardWireError(f"column {name} must hold one value")
                if column.shape[0] > MAX_ROWS:
                    raise ShardWireError(f"column {name} has over {MAX_ROWS} rows")
                out[name] = int(column[0]) if scalar else column
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, ShardWireError):
            raise
        raise ShardWireError(f"not an archive of numpy columns: {exc}") from None
    lengths = {out[name].shape[0] for name in same_length}
    if len(lengths) > 1:
        raise ShardWireError(f"columns {', '.join(same_length)} must have the same length")
    return out


# Each question of a sharded trace (tracing/shards.py): the request's columns, the ones
# that must have the same length, and the answer's columns in the order LocalShard
# returns them. Every request also carries the rule's default dwell.
QUESTIONS: dict[str, tuple[dict[str, str], tuple[str, ...], dict[str, str]]] = {
    "presences": (
        {"persons": "uint64", "lows": "int64", "hi": "scalar:int64"},
        ("persons", "lows"),
        {"who": "int64", "venue": "uint64", "start": "int64", "end": "int64",
         "t_in": "int64", "explicit": "int64"}),
    "overlaps": (
        {"venues": "uint64", "starts": "int64", "ends": "int64", "need": "scalar:int64"},
        ("venues", "starts", "ends"),
        {"person": "uint64", "venue": "uint64", "start": "int64", "end": "int64",
         "t_in": "int64", "at": "int64", "explicit": "int64"}),
    "next": (
        {"persons": "uint64", "times": "int64"},
        ("persons", "times"),
        {"next": "int64"}),
    "checkouts": (
        {"persons": "uint64", "venues": "uint64", "times": "int64"},
        ("persons", "venues", "times"),
        {"length": "int64"}),
}
DWELL = {"default_dwell": "scalar:int64"}
