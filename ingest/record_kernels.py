"""Numba kernels over the bytes of a Kafka record batch (message format v2, uncompressed).

Only arrays and scalars in and out; `ingest.kafka_records` calls them and builds records.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _varint(buf, pos, end):
    """A zigzag varint at buf[pos:end]: (value, next position); next position -1 when the
    bytes end first or it is longer than 10 bytes."""
    result = np.uint64(0)
    shift = np.uint64(0)
    while True:
        if pos >= end or shift > np.uint64(63):
            return np.int64(0), np.int64(-1)
        b = np.uint64(buf[pos])
        pos += 1
        result |= (b & np.uint64(0x7F)) << shift
        if b < np.uint64(0x80):
            break
        shift += np.uint64(7)
    value = np.int64(result >> np.uint64(1)) ^ -np.int64(result & np.uint64(1))
    return value, np.int64(pos)


@njit(cache=True)
def split_records(buf, pos, count, offset_delta, key_at, key_len, value_at, value_len,
                  head_at, head_end):
    """The `count` records of a v2 batch whose records start at buf[pos]: per record its
    offset delta, key and value (start, length; length -1 = null) and the span of its
    headers' bytes (count varint included). Returns 0 when every record parsed and the
    records end exactly at the end of `buf`, else 1 (the caller then reads the batch the
    slow way, which names the problem)."""
    end = buf.shape[0]
    for i in range(count):
        length, pos = _varint(buf, pos, end)
        if pos < 0 or length < 0 or pos + length > end:
            return 1
        stop = pos + length
        _, pos = _varint(buf, pos, stop)  # attributes (read as kafka-python reads them)
        if pos < 0:
            return 1
        _, pos = _varint(buf, pos, stop)  # timestamp delta
        if pos < 0:
            return 1
        delta, pos = _varint(buf, pos, stop)
        if pos < 0:
            return 1
        offset_delta[i] = delta
        n, pos = _varint(buf, pos, stop)
        if pos < 0 or pos + max(n, 0) > stop:
            return 1
        key_at[i], key_len[i] = pos, n
        pos += max(n, 0)
        n, pos = _varint(buf, pos, stop)
        if pos < 0 or pos + max(n, 0) > stop:
            return 1
        value_at[i], value_len[i] = pos, n
        pos += max(n, 0)
        head_at[i] = pos
        headers, pos = _varint(buf, pos, stop)
        if pos < 0 or headers < 0:
            return 1
        for _ in range(headers):
            n, pos = _varint(buf, pos, stop)  # key: a string, never null
            if pos < 0 or n < 0 or pos + n > stop:
                return 1
            pos += n
            n, pos = _varint(buf, pos, stop)  # value: bytes, may be null
            if pos < 0 or pos + max(n, 0) > stop:
                return 1
            pos += max(n, 0)
        if pos != stop:
            return 1
        head_end[i] = pos
    return 0 if pos == end else 1
