"""The batch-at-a-time record reader gives what kafka-python's own reader gives: the same
records (value, key, headers, offset) and the same positions."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from ingest import kafka_records
from ingest.kafka_log import ensure_topics
from ingest.kafka_records import _split, install

_bytes = st.one_of(st.none(), st.binary(max_size=300))
_headers = st.lists(st.tuples(st.text(max_size=20), _bytes), max_size=3)
_records = st.lists(st.tuples(_bytes, _bytes, _headers), min_size=1, max_size=40)


def _batch(records, base_offset=0) -> DefaultRecordBatch:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    for i, (key, value, headers) in enumerate(records):
        builder.append(i, timestamp=1_764_000_000_000 + i, key=key, value=value,
                       headers=headers)
    data = bytearray(builder.build())
    data[:8] = base_offset.to_bytes(8, "big")  # the broker sets a batch's base offset
    return DefaultRecordBatch(bytes(data))


@settings(max_examples=200, deadline=None)
@given(_records, st.integers(0, 2**40), st.sampled_from([0, 10**6]))
def test_a_split_batch_holds_what_kafka_python_reads(records, base_offset, few):
    # FEW_RECORDS 0: the values sliced from one copy of the batch; 10**6: copied one by one
    saved, kafka_records.FEW_RECORDS = kafka_records.FEW_RECORDS, few
    try:
        values, headers, keys, offsets = _split(_batch(records, base_offset))
    finally:
        kafka_records.FEW_RECORDS = saved
    assert all(type(k) is bytes for k in keys if k is not None)
    # the values of a few (large) records are read-only views of the fetched bytes
    assert all(type(v) is bytes or (type(v) is memoryview and v.readonly)
               for v in values if v is not None)
    theirs = list(_batch(records, base_offset))
    assert values == [r.value for r in theirs]
    assert keys == [r.key for r in theirs]
    assert [list(h) for h in headers] == [r.headers for r in theirs]
    assert offsets == [r.offset for r in theirs]


@settings(max_examples=100, deadline=None)
@given(st.lists(_records, min_size=1, max_size=4), st.integers(0, 60))
def test_batches_read_in_place_are_the_batches_kafka_python_reads(batches, cut):
    """Fetched data (several batches, the last one cut short as a fetch may end) gives the
    same batches, records and end whether read in place or by kafka-python."""
    from kafka.record.memory_records import MemoryRecords

    data = b"".join(bytes(_batch(records, 1000 * i)._buffer)
                    for i, records in enumerate(batches))
    data = data[:len(data) - cut]

    def read(next_batch):
        fetched, out = MemoryRecords(data), []
        while (batch := next_batch(fetched)) is not None:
            out.append((batch.base_offset, batch.next_offset, batch.validate_crc(),
                        [(r.offset, r.key, r.value, r.headers) for r in batch]))
        return out

    ours = read(kafka_records._next_batch)
    assert ours == read(MemoryRecords.next_batch)
    assert len(ours) == len(batches) - (cut > 0)


@settings(max_examples=100, deadline=None)
@given(_records, st.data())
def test_a_damaged_batch_is_left_to_kafka_python(records, data):
    batch = _batch(records)
    raw = bytearray(batch._buffer)
    at = data.draw(st.integers(batch._pos, len(raw) - 1))
    raw[at] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[at]))
    damaged = DefaultRecordBatch(bytes(raw))
    split = _split(damaged)
    if split is None:
        return  # kafka-python's reader takes it, with its own error
    try:  # what the kernel accepted, kafka-python reads the same way
        theirs = list(DefaultRecordBatch(bytes(raw)))
    except Exception:  # kafka-python refuses what we read
        raise AssertionError("split a batch that kafka-python refuses") from None
    assert split[0] == [r.value for r in theirs]
    assert split[3] == [r.offset for r in theirs]


def _read_all(bootstrap, topic, expect, max_records, batched):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    if batched:
        assert install(consumer)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    out, positions = [], []
    for _ in range(400):
        polled = consumer.poll(timeout_ms=500, max_records=max_records)
        for message in polled.get(tp, []):
            out.append((message.offset, message.key, message.value,
                        list(message.headers or ())))
        if polled:
            positions.append(consumer.position(tp))
        if len(out) >= expect:
            break
    consumer.close()
    return out, positions


def test_records_and_positions_match_kafka_python_on_a_real_broker(kafka_bootstrap):
    topic = f"qrtrace.scans.test-{uuid.uuid4().hex[:12]}"
    ensure_topics(kafka_bootstrap, topic)
    sent = []
    for compression in (None, "gzip", None):  # a compressed stretch takes the slow path
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=50,
                                 compression_type=compression)
        for i in range(300):
            headers = [("qrtrace-format", b"json")] if i % 3 else []
            if i % 7 == 0:
                headers.append(("other", b""))
            key = None if i % 5 == 0 and i % 11 else str(i).encode()
            value = None if i % 11 == 0 else f'{{"n": {len(sent)}}}'.encode()
            producer.send(topic, value, key=key, headers=headers)
            sent.append(value)
        producer.flush()
        producer.close()
    for max_records in (7, 1000):
        ours, our_positions = _read_all(kafka_bootstrap, topic, len(sent), max_records, True)
        theirs, their_positions = _read_all(kafka_bootstrap, topic, len(sent), max_records,
                                            False)
        assert ours == theirs
        assert [value for _, _, value, _ in ours] == sent
        assert our_positions[-1] == their_positions[-1] == len(sent)
        if max_records == 7:  # every poll stops inside a batch: positions follow records
            assert our_positions == their_positions
