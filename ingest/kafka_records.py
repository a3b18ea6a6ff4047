"""Reading fetched Kafka records a batch at a time instead of a record at a time.

kafka-python turns each fetched record into objects in Python (varints, a DefaultRecord,
a ConsumerRecord: ~17 µs of CPU per record, most of a JSON event's cost in the worker).
`install(consumer)` gives a KafkaConsumer a partition reader that splits each plain
record batch (message format v2, uncompressed, not a control batch) with one numba call
(`record_kernels.split_records`) and yields `ingest.log.Record`s directly. Anything else
(compressed or legacy batches, a batch that does not parse) is read by kafka-python's own
code, record by record, with its errors. Positions follow kafka-python's rules: a record
taken moves the partition's next fetch offset past it; the end of the fetched data moves
it past the last batch (offsets that compaction removed included).
"""

from __future__ import annotations

from functools import cache
from itertools import repeat

import numpy as np

from ingest.log import Record
from ingest.record_kernels import split_records

_new_record = tuple.__new__


def install(consumer) -> bool:
    """Make `consumer` (a kafka-python KafkaConsumer) read fetched records with this
    module; returns False (and leaves it as it was) when its settings need kafka-python's
    own reader: transactions read committed, or custom deserializers."""
    from kafka.consumer.fetcher import Fetcher

    fetcher = consumer._fetcher
    config = consumer.config
    if (config.get("isolation_level", "read_uncommitted") != "read_uncommitted"
            or config.get("key_deserializer") or config.get("value_deserializer")):
        return False

    class PartitionRecords(Fetcher.PartitionRecords):
        _unpack_records = _unpack_records
        take = _take

    fetcher.PartitionRecords = PartitionRecords
    return True


def _take(self, n=None):
    from kafka.consumer.fetcher import Fetcher

    records = Fetcher.PartitionRecords.take(self, n)
    if records:  # the last record taken: the next fetch starts after it
        self.next_fetch_offset = max(self.next_fetch_offset, records[-1].offset + 1)
    return records


def _unpack_records(self, tp, records, key_deserializer, value_deserializer):
    """kafka-python's PartitionRecords._unpack_records (read uncommitted), yielding
    Records, with plain batches split in one call."""
    from kafka import errors

    topic, partition = tp.topic, tp.partition
    try:
        batch = _next_batch(records)
        last_batch = None
        while batch is not None:
            last_batch = batch
            if self.check_crcs and not batch.validate_crc():
                raise errors.CorruptRecordError(
                    f"Record batch for partition {tp} at offset {batch.base_offset} "
                    "failed crc check")
            if batch.magic == 2:
                self.leader_epoch = batch.leader_epoch
                if batch.is_control_batch:
                    self.next_fetch_offset = batch.next_offset
                    batch = _next_batch(records)
                    continue
            split = _split(batch) if batch.magic == 2 and not batch.compression_type else None
            if split is not None:
                self.records_read += len(split[0])
                self.bytes_read += batch.size_in_bytes
                yield from map(_new_record, repeat(Record), zip(
                    split[0], split[1], split[2], repeat(partition), split[3],
                    repeat(topic)))
            else:
                for record in batch:
                    if self.check_crcs and not record.validate_crc():
                        raise errors.CorruptRecordError(
                            f"Record for partition {tp} at offset {record.offset} failed "
                            "crc check")
                    self.records_read += 1
                    self.bytes_read += record.size_in_bytes
                    self.next_fetch_offset = record.offset + 1
                    yield Record(record.value, record.headers or (), record.key, partition,
                                 record.offset, topic)
            batch = _next_batch(records)
        else:
            # as kafka-python does: past the last batch, even if compaction removed its
            # last records
            if last_batch is not None and last_batch.magic == 2:
                self.next_fetch_offset = max(self.next_fetch_offset, last_batch.next_offset)
            self.drain()
    except StopIteration:  # as kafka-python: a StopIteration must not end the generator
        raise RuntimeError("StopIteration raised unpacking messageset") from None


# where a record batch's magic byte sits: after base offset (8), length (4), leader epoch (4)
_MAGIC_AT = 16


def _next_batch(records):
    """`records.next_batch()` (a kafka-python MemoryRecords), except that a v2 batch reads
    the fetched bytes in place: kafka-python copies each batch into a bytearray first
    (~10-60 ns a packed event, more with the page faults of a fresh 16 MB copy), and a
    v2 batch is only read. Legacy (v0, v1) and too-short batches, and the errors, are
    kafka-python's."""
    view = records._next_slice
    batch_class = _view_batch_class()
    if view is None or len(view) < batch_class.HEADER_STRUCT.size or view[_MAGIC_AT] != 2:
        return records.next_batch()  # with its errors for a batch too short
    records._cache_next()  # what next_batch does to move past it
    return batch_class(view)


@cache
def _view_batch_class():
    from kafka.record.default_records import DefaultRecordBatch

    class ViewBatch(DefaultRecordBatch):
        """A DefaultRecordBatch over a read-only view of the fetched bytes. Its __init__
        is kafka-python's (2.0.2 to 3.0.12) but for the bytearray copy; its header and
        CRC check read the view. kafka-python's record-by-record reader (compressed
        batches, and those `_split` leaves to it) gets the copy it expects."""

        def __init__(self, buffer):
            self._buffer = buffer
            self._header_data = self.HEADER_STRUCT.unpack_from(buffer)
            self._pos = self.HEADER_STRUCT.size
            self._num_records = self._header_data[12]
            self._next_record_index = 0
            self._decompressed = False

        def __iter__(self):
            if not isinstance(self._buffer, bytearray):
                self._buffer = bytearray(self._buffer)  # it decodes slices of it as text
            return super().__iter__()

    return ViewBatch


def warm_up() -> None:
    """Load (or compile, on a first run) the kernel, so that the first fetch does not."""
    raw = np.zeros(0, np.uint8)
    split_records(raw, 0, 0, *(np.empty(0, np.int64) for _ in range(7)))


_HEADERS: dict[bytes, tuple] = {}  # the bytes of a record's headers -> parsed (shared)


FEW_RECORDS = 64  # a batch of at most this many records gives its values as views


def _split(batch):
    """(values, headers, keys, offsets) of a plain v2 batch, or None when its records do
    not parse (kafka-python's reader then names the problem)."""
    buf = batch._buffer
    count = batch.records_count
    raw = np.frombuffer(buf, np.uint8)
    delta = np.empty(count, np.int64)
    key_at, key_len, value_at, value_len, head_at, head_end = (
        np.empty(count, np.int64) for _ in range(6))
    if split_records(raw, batch._pos, count, delta, key_at, key_len, value_at, value_len,
                     head_at, head_end):
        return None
    # a few large records (packed batches): values are read-only views of the fetched
    # bytes, not copies; many small ones (JSON events): one copy of the buffer, then
    # slices (cheaper each than a view)
    few = count <= FEW_RECORDS
    data = memoryview(buf).toreadonly() if few else bytes(buf)
    values = [data[a:a + n] if n >= 0 else None
              for a, n in zip(value_at.tolist(), value_len.tolist(), strict=True)]
    keys = [data[a:a + n] if n >= 0 else None
            for a, n in zip(key_at.tolist(), key_len.tolist(), strict=True)]
    if few:
        keys = [None if k is None else bytes(k) for k in keys]
    headers = []
    for a, b in zip(head_at.tolist(), head_end.tolist(), strict=True):
        span = bytes(data[a:b]) if few else data[a:b]
        parsed = _HEADERS.get(span)
        if parsed is None:
            try:
                parsed = _parse_headers(span)
            except UnicodeDecodeError:  # kafka-python's reader says what is wrong
                return None
            if len(_HEADERS) < 4096:
                _HEADERS[span] = parsed
        headers.append(parsed)
    offsets = (delta + batch.base_offset).tolist()
    return values, headers, keys, offsets


def _parse_headers(span: bytes) -> tuple:
    """The (name, value) pairs of a record's header bytes (already checked by the kernel);
    () when there are none, as kafka-python's records give an empty list."""
    count, at = _zigzag(span, 0)
    out = []
    for _ in range(count):
        n, at = _zigzag(span, at)
        name = span[at:at + n].decode("utf-8")
        at += n
        n, at = _zigzag(span, at)
        value = span[at:at + n] if n >= 0 else None
        at += max(n, 0)
        out.append((name, value))
    return tuple(out)


def _zigzag(data: bytes, at: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = data[at]
        at += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), at
