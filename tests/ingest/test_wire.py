"""Round trips and garbage for the scan event wire formats."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ingest.events import ScanBatch, ScanEvent
from ingest.wire import (
    FORMAT_HEADER,
    MAGIC,
    decode_json,
    decode_packed,
    decode_record,
    encode_json,
    encode_packed,
    event_to_json,
    parse_json,
    parse_json_many,
)

u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
token = st.text(st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"),
                min_size=43, max_size=43)
token_events = st.builds(ScanEvent, u64, u64, u64, i64, token, st.none(), i64)
frame_events = st.builds(ScanEvent, u64, u64, u64, i64, st.none(), st.binary(max_size=64), i64)


@given(st.lists(token_events, max_size=20))
def test_packed_round_trip(events):
    decoded = decode_record(encode_packed(ScanBatch.of(events)), [(FORMAT_HEADER, b"packed-v1")])
    assert decoded.ok, decoded.reason
    assert decoded.batch.events() == events


@given(st.one_of(token_events, frame_events))
def test_json_round_trip(event):
    decoded = decode_record(encode_json(event), [(FORMAT_HEADER, b"json")])
    assert decoded.ok, decoded.reason
    assert decoded.batch.events() == [event]


@given(st.lists(token_events, min_size=1, max_size=5))
def test_records_without_a_header_are_recognised(events):
    assert decode_record(encode_packed(ScanBatch.of(events))).batch.events() == events
    assert decode_record(encode_json(events[0])).batch.events() == events[:1]


@given(st.binary(max_size=300))
def test_garbage_gives_a_reason_never_an_exception(value):
    for headers in ([(FORMAT_HEADER, b"json")], [(FORMAT_HEADER, b"packed-v1")], None):
        decoded = decode_record(value, headers)
        assert decoded.ok or decoded.reason


@given(st.lists(token_events, min_size=1, max_size=5), st.data())
def test_a_cut_or_grown_packed_record_is_refused(events, data):
    value = encode_packed(ScanBatch.of(events))
    cut = data.draw(st.integers(0, len(value) - 1))
    assert "packed:" in decode_packed(value[:cut]).reason
    assert "packed:" in decode_packed(value + b"\0").reason


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                         max_size=4)))
def test_any_json_document_gives_an_event_or_a_reason(doc):
    decoded = decode_json(json.dumps(doc).encode())
    assert decoded.ok or decoded.reason.startswith("json: ")


def test_reasons_name_the_field():
    good = {"venue": 1, "device": 2, "seq": 3, "t_in": 100, "token": "Q" * 43}
    assert decode_json(json.dumps(good).encode()).ok
    cases = {
        "venue": (-1, "venue"), "seq": (True, "seq"), "t_in": ("2026-11-25T22:00:00", "offset"),
        "token": ("short", "token"),
    }
    for field, (value, words) in cases.items():
        reason = decode_json(json.dumps({**good, field: value}).encode()).reason
        assert field in reason and words in reason, reason
    both = {**good, "frame": base64.b64encode(b"x").decode()}
    assert "exactly one" in decode_json(json.dumps(both).encode()).reason
    assert "unknown format" in decode_record(b"{}", [(FORMAT_HEADER, b"avro")]).reason
    assert "bad magic" in decode_packed(b"XXXX" + bytes(12)).reason
    assert "version" in decode_packed(MAGIC + b"\x02\0" + bytes(10)).reason


def test_a_missing_or_unknown_field_and_a_headerless_stranger_are_named():
    """A review's record with "extra": 1 was indexed (the API refuses unknown fields), a
    missing device was 'device: ... got null', and bytes without a header that are not
    JSON were 'json: not a JSON document'."""
    good = {"venue": 1, "device": 2, "seq": 3, "t_in": 100, "token": "Q" * 43}
    extra = json.dumps({**good, "extra": 1}).encode()
    assert decode_json(extra).reason.startswith('json: unknown field "extra"')
    _, rows, refused = parse_json_many([json.dumps(good).encode(), extra])
    assert rows == [0] and refused[0][0] == 1 and "unknown field" in refused[0][1]
    missing = json.dumps({k: v for k, v in good.items() if k != "device"}).encode()
    assert decode_json(missing).reason == "json: device: missing (an integer in [0, 2**64))"
    stranger = decode_record(b"hello, kafka")
    assert stranger.reason.startswith("format: no qrtrace-format header")
    assert decode_record(b'  {"venue": 1}').reason.startswith("json: ")  # JSON by its {


def test_iso_times_with_an_offset_are_seconds_since_the_epoch():
    doc = {"venue": 1, "device": 2, "seq": 3, "t_in": "2026-11-25T07:00:00+07:00",
           "t_out": "2026-11-25T01:00:00Z", "token": "Q" * 43}
    event = decode_json(json.dumps(doc).encode()).batch.events()[0]
    assert event.t_in == int(datetime(2026, 11, 25, tzinfo=UTC).timestamp())
    assert event.t_out == event.t_in + 3600


def test_packed_columns_are_little_endian_at_documented_offsets():
    value = encode_packed(ScanBatch.of([ScanEvent(0x0102, 7, 9, 100, "A" * 43, None, 200)]))
    assert value[:4] == MAGIC and len(value) == 16 + 83
    assert value[16:24] == (0x0102).to_bytes(8, "little")
    assert np.frombuffer(value, "<i8", 1, 16 + 32)[0] == 200
    assert value[16 + 40:] == b"A" * 43


# values for each field of a JSON event, most of them wrong in some way
_field_values = st.one_of(
    u64, i64, st.integers(-(2**70), 2**70), st.booleans(), st.none(),
    st.floats(allow_nan=False), token, st.text(max_size=45),
    st.sampled_from(["2026-11-25T22:00:00+07:00", "2026-11-25T22:00:00", "é" * 43]))
_docs = st.one_of(
    st.builds(lambda e: json.dumps(event_to_json(e)), st.one_of(token_events, frame_events)),
    st.dictionaries(st.sampled_from(["venue", "device", "seq", "t_in", "t_out", "token",
                                     "frame", "note"]), _field_values).map(json.dumps),
    st.just("[1, 2]"), st.just("{not json"), st.just('"text"'))


@given(st.lists(_docs, max_size=12))
def test_many_json_records_decode_as_each_alone(texts):
    values = [t.encode() for t in texts]
    batch, rows, refused = parse_json_many(values)
    alone = [parse_json(v) for v in values]
    assert dict(refused) == {i: r for i, r in enumerate(alone) if isinstance(r, str)}
    assert sorted(rows) == [i for i, r in enumerate(alone) if not isinstance(r, str)]
    assert len(batch) == len(rows)
    assert dict(zip(rows, batch.events(), strict=True)) == {
        i: r for i, r in enumerate(alone) if not isinstance(r, str)}
