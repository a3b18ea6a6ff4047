"""kafka-python's receive path with fewer copies: the same bytes off the socket, the same
responses out of them, however the bytes arrive."""

from __future__ import annotations

import itertools
import random
import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import errors
from kafka.net.transport import KafkaTCPTransport
from kafka.protocol.consumer.fetch import FetchRequest, FetchResponse
from kafka.protocol.parser import KafkaProtocol

from ingest import kafka_receive

VERSION = 11  # a Fetch version that kafka-python 3 and Kafka 4 both speak


@pytest.fixture(autouse=True, scope="module")
def _installed():
    assert kafka_receive.install() and kafka_receive.install()  # once is enough


def _read_socket(sender_data: bytes) -> tuple[bytes, Exception | None]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    sender = threading.Thread(target=lambda: (theirs.sendall(sender_data), theirs.close()))
    sender.start()
    transport = KafkaTCPTransport.__new__(KafkaTCPTransport)  # only its socket is read
    transport._sock, transport._closed = ours, False
    got, err = bytearray(), None
    try:
        while err is None:
            chunk, err = transport._sock_recv()
            assert len(chunk) <= kafka_receive.RECEIVE_BYTES
            got += chunk  # the protocol copies what it keeps before the next read
    finally:
        sender.join()
        ours.close()
    return bytes(got), err


def test_socket_reads_give_every_byte_in_order_and_say_when_the_peer_closes():
    data = random.Random(4).randbytes(3 * kafka_receive.RECEIVE_BYTES + 12_345)
    got, err = _read_socket(data)
    assert got == data
    assert isinstance(err, errors.KafkaConnectionError)
    assert "disconnected" in str(err)


def _fetch_response(correlation_id: int, records: bytes, partition: int) -> bytes:
    response = FetchResponse[VERSION]
    topic = response.FetchableTopicResponse
    data = topic.PartitionData(
        partition_index=partition, error_code=0, high_watermark=10, last_stable_offset=10,
        log_start_offset=0, aborted_transactions=[], preferred_read_replica=-1,
        records=records)
    message = response(throttle_time_ms=0, error_code=0, session_id=0,
                       responses=[topic(topic="qrtrace.scans", partitions=[data])])
    message.with_header(correlation_id=correlation_id)
    return bytes(message.encode(framed=True, header=True))


def _protocol(requests: int) -> tuple[KafkaProtocol, list[int]]:
    protocol = KafkaProtocol(client_id="test")
    request = FetchRequest[VERSION](
        replica_id=-1, max_wait_ms=100, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
        session_id=0, session_epoch=-1, topics=[], forgotten_topics_data=[], rack_id="")
    return protocol, [protocol.send_request(request) for _ in range(requests)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=5),
       st.lists(st.integers(0, 4000), max_size=12), st.integers(0, 2**32))
def test_responses_split_anywhere_decode_as_sent(records, cuts, seed):
    protocol, ids = _protocol(len(records))
    stream = b"".join(_fetch_response(cid, r, i)
                      for i, (cid, r) in enumerate(zip(ids, records, strict=True)))
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    got = []
    for a, b in itertools.pairwise(points):
        piece = stream[a:b]
        # pieces arrive as bytes or, from the socket reader, as read-only views
        got += protocol.receive_bytes(memoryview(piece).toreadonly() if seed % 2 else piece)
    assert [cid for cid, _ in got] == ids
    for (_, response), sent, i in zip(got, records, range(len(records)), strict=True):
        data = response.responses[0].partitions[0]
        assert (bytes(data.records), data.partition_index) == (sent, i)
    assert not protocol._receiving  # nothing left half-read


def test_a_frame_larger_than_allowed_is_refused_as_kafka_python_refuses_it():
    protocol, _ = _protocol(1)
    protocol._max_frame_size = 1000
    with pytest.raises(errors.InvalidReceiveError):
        protocol.receive_bytes((5000).to_bytes(4, "big") + b"x" * 10)
