"""Wire formats of scan events: one JSON object per record, or a packed binary batch.

A record's header `qrtrace-format` names its format: `json` or `packed-v1`. A record
without that header is recognised by its first bytes (the packed magic, or `{`).

JSON, one event per record (UTF-8)::

    {"venue": 17, "device": 4, "seq": 981, "t_in": 1764100000,
     "token": "QT1P01...", "t_out": 1764103600}

    venue, device, seq   integers in [0, 2**64)
    t_in                 integer seconds since the Unix epoch (UTC), or ISO 8601 text
                         with an offset ("2026-11-25T22:00:00+07:00"); never a naive time
    t_out                optional, the same kinds; null, 0 or absent = no check-out
    token | frame         the scanned text, or a camera frame as base64 of PNG/JPEG/WebP

packed-v1, many events per record, all little-endian::

    offset  size    field
    0       4       magic b"QRTP"
    4       2       version, 1
    6       2       flags, 0
    8       4       count n
    12      4       reserved, 0
    16      8n      venue   u64[n]
    ...     8n      device  u64[n]
    ...     8n      seq     u64[n]
    ...     8n      t_in    i64[n]
    ...     8n      t_out   i64[n]   (0 = no check-out)
    ...     43n     token   43 ASCII bytes per event (packed carries tokens, not frames)

    The record is exactly 16 + 83 n bytes.

Decoding never raises for a bad record: it gives the reason (`Decoded.reason`).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ingest.events import TOKEN_DTYPE, ScanBatch, ScanEvent, concat

FORMAT_HEADER = "qrtrace-format"
REASON_HEADER = "qrtrace-reason"
JSON = "json"
PACKED_V1 = "packed-v1"
# the fields of a JSON event; any other is refused, as the API refuses it
FIELDS = frozenset({"venue", "device", "seq", "t_in", "t_out", "token", "frame"})
MAGIC = b"QRTP"
_HEAD = struct.Struct("<4sHHII")
HEADER_SIZE = _HEAD.size
ROW_SIZE = 5 * 8 + TOKEN_DTYPE.itemsize
MAX_U64 = 2**64 - 1
_I64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded record: its events, or the reason it cannot be decoded (batch None)."""

    batch: ScanBatch | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when the record decoded."""
        return self.batch is not None


# ---- packed-v1 ---------------------------------------------------------------------


def encode_packed(batch: ScanBatch) -> bytes:
    """One packed-v1 record holding `batch` (tokens only: a row with a frame is refused).

    Raises ValueError if a row carries a frame instead of a token.
    """
    if batch.frames:
        raise ValueError("packed-v1 carries tokens, not frames: send frames as JSON")
    n = len(batch)
    parts = [_HEAD.pack(MAGIC, 1, 0, n, 0)]
    for col, dtype in ((batch.venue, "<u8"), (batch.device, "<u8"), (batch.seq, "<u8"),
                       (batch.t_in, "<i8"), (batch.t_out, "<i8")):
        parts.append(np.ascontiguousarray(col, dtype=dtype).tobytes())
    parts.append(np.ascontiguousarray(batch.token, dtype=TOKEN_DTYPE).tobytes())
    return b"".join(parts)


def packed_count(value: bytes) -> tuple[int, str | None]:
    """The number of events in a packed-v1 record, or (0, the reason it is not one)."""
    if len(value) < HEADER_SIZE:
        return 0, f"packed: {len(value)} bytes is shorter than the header"
    magic, version, flags, n, reserved = _HEAD.unpack_from(value)
    if magic != MAGIC:
        return 0, "packed: bad magic"
    if version != 1:
        return 0, f"packed: unknown version {version}"
    if flags or reserved:
        return 0, "packed: flags and reserved must be 0"
    if len(value) != HEADER_SIZE + ROW_SIZE * n:
        return 0, (f"packed: {len(value)} bytes, expected {HEADER_SIZE + ROW_SIZE * n} "
                   f"for {n} events")
    return n, None


def decode_packed(value: bytes) -> Decoded:
    """The events of a packed-v1 record, or the reason it is not one."""
    n, reason = packed_count(value)
    if reason is not None:
        return Decoded(None, reason)
    return Decoded(decode_packed_many([value], [n]))


def decode_packed_many(values: list[bytes], counts: list[int]) -> ScanBatch:
    """The events of packed-v1 records whose `counts` packed_count gave, as one batch in
    order: each column copied once, straight from the records into the batch (no
    per-record arrays to concatenate)."""
    total = sum(counts)
    cols = [np.empty(total, dtype) for dtype in (np.uint64, np.uint64, np.uint64, np.int64,
                                                 np.int64)]
    tokens = np.empty(total, TOKEN_DTYPE)
    at = 0
    for value, n in zip(values, counts, strict=True):
        where = HEADER_SIZE
        for col, dtype in zip(cols, ("<u8", "<u8", "<u8", "<i8", "<i8"), strict=True):
            col[at:at + n] = np.frombuffer(value, dtype, n, where)
            where += 8 * n
        tokens[at:at + n] = np.frombuffer(value, TOKEN_DTYPE, n, where)
        at += n
    return ScanBatch(*cols, tokens)


# ---- JSON --------------------------------------------------------------------------


class _Bad(Exception):
    pass


def _uint(doc: dict, name: str) -> int:
    value = doc.get(name)
    if name not in doc:
        raise _Bad(f"{name}: missing (an integer in [0, 2**64))")
    if type(value) is not int or not 0 <= value <= MAX_U64:
        raise _Bad(f"{name}: expected an integer in [0, 2**64), got {_show(value)}")
    return value


def _time(doc: dict, name: str, optional: bool = False) -> int:
    value = doc.get(name)
    if optional and value is None:
        return 0
    if name not in doc:
        raise _Bad(f"{name}: missing (integer seconds or ISO 8601 text with an offset)")
    if type(value) is int:
        if not _I64[0] <= value <= _I64[1]:
            raise _Bad(f"{name}: {value} is out of range")
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _Bad(f"{name}: {_show(value)} is not ISO 8601") from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise _Bad(f"{name}: {_show(value)} has no UTC offset")
        return int(moment.timestamp())
    raise _Bad(f"{name}: expected integer seconds or ISO 8601 text, got {_show(value)}")


def _show(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def event_from_json(doc: object) -> ScanEvent:
    """A ScanEvent from a parsed JSON object; raises ValueError naming the bad field."""
    try:
        if not isinstance(doc, dict):
            raise _Bad(f"expected a JSON object, got {type(doc).__name__}")
        if not doc.keys() <= FIELDS:  # as the API refuses them: a misspelt t_out
            unknown = sorted(doc.keys() - FIELDS)
            raise _Bad(f"unknown field {_show(unknown[0])} (the fields: "
                       f"{', '.join(sorted(FIELDS))})")
        venue, device, seq = _uint(doc, "venue"), _uint(doc, "device"), _uint(doc, "seq")
        t_in, t_out = _time(doc, "t_in"), _time(doc, "t_out", optional=True)
        token, frame = doc.get("token"), doc.get("frame")
        if (token is None) == (frame is None):
            raise _Bad("expected exactly one of token and frame")
        if token is not None:
            if not isinstance(token, str) or not token.isascii() or len(token) != 43:
                raise _Bad(f"token: malformed, not a 43-character token: {_show(token)}")
            return ScanEvent(venue, device, seq, t_in, token=token, t_out=t_out)
        if not isinstance(frame, str):
            raise _Bad("frame: expected base64 text")
        try:
            image = base64.b64decode(frame, validate=True)
        except (binascii.Error, ValueError):
            raise _Bad("frame: not valid base64") from None
        return ScanEvent(venue, device, seq, t_in, frame=image, t_out=t_out)
    except _Bad as exc:
        raise ValueError(str(exc)) from None


def event_to_json(event: ScanEvent) -> dict:
    """The JSON object of `event` (times as integer seconds)."""
    doc = {"venue": event.venue, "device": event.device, "seq": event.seq, "t_in": event.t_in}
    if event.t_out:
        doc["t_out"] = event.t_out
    if event.frame is not None:
        doc["frame"] = base64.b64encode(event.frame).decode("ascii")
    else:
        doc["token"] = event.token
    return doc


def encode_json(event: ScanEvent) -> bytes:
    """One JSON record (UTF-8 bytes) for `event`."""
    return json.dumps(event_to_json(event), separators=(",", ":")).encode()


def parse_json(value: bytes) -> ScanEvent | str:
    """The event of a JSON record (bytes or a buffer), or the reason (a str) it is not one."""
    try:
        doc = json.loads(value if isinstance(value, bytes | bytearray) else bytes(value))
    except (ValueError, RecursionError) as exc:
        return f"json: not a JSON document ({type(exc).__name__})"
    try:
        return event_from_json(doc)
    except ValueError as exc:
        return f"json: {exc}"


def parse_json_many(values: list[bytes]) -> tuple[ScanBatch, list[int], list[tuple[int, str]]]:
    """The events of many JSON records at once, the same as `parse_json` on each.

    Returns (batch, rows, refused): the batch's row i came from values[rows[i]]; refused
    lists (position, reason) of the records that are not events. The common event (integer
    fields, a 43-character token) is checked a column at a time: per record, only orjson's
    parse is paid in Python; any other record takes `parse_json`'s path, with its reasons.
    """
    import orjson

    docs, plain, refused = [], [], []
    slow: list[int] = []
    for i, value in enumerate(values):
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            slow.append(i)  # json gives the reason (or takes what orjson refuses)
            continue
        if type(doc) is dict:
            docs.append(doc)
            plain.append(i)
        else:
            slow.append(i)
    columns = _plain_columns(docs)
    if columns is None:  # some record is not the common event: sort them one by one
        fast = [_is_plain(doc) for doc in docs]
        slow.extend(i for i, ok in zip(plain, fast, strict=True) if not ok)
        docs = [doc for doc, ok in zip(docs, fast, strict=True) if ok]
        plain = [i for i, ok in zip(plain, fast, strict=True) if ok]
        columns = _plain_columns(docs)
        if columns is None:  # _is_plain and _plain_columns disagree: a bug, not input
            raise AssertionError("a JSON event passed _is_plain but not _plain_columns")
    batches, rows, events = [ScanBatch(*columns)], list(plain), []
    for i in sorted(slow):
        event = parse_json(values[i])
        if isinstance(event, str):
            refused.append((i, event))
        else:
            events.append(event)
            rows.append(i)
    if events:
        batches.append(ScanBatch.of(events))
    return concat(batches), rows, refused


def _is_plain(doc: dict) -> bool:
    """True for the common event: no unknown field, integer fields in range, a
    43-character ASCII token, no frame."""
    token, t_out = doc.get("token"), doc.get("t_out")
    return (doc.keys() <= FIELDS and type(token) is str and len(token) == 43 and token.isascii()
            and doc.get("frame") is None
            and all(type(doc.get(k)) is int and 0 <= doc[k] <= MAX_U64
                    for k in ("venue", "device", "seq"))
            and type(doc.get("t_in")) is int and _I64[0] <= doc["t_in"] <= _I64[1]
            and (t_out is None or (type(t_out) is int and _I64[0] <= t_out <= _I64[1])))


def _plain_columns(docs: list[dict]) -> tuple | None:
    """The six columns of `docs` when every one is the common event (see _is_plain),
    checked a column at a time; None if any is not."""
    if not docs:
        e = ScanBatch.empty()
        return e.venue, e.device, e.seq, e.t_in, e.t_out, e.token
    token = [d.get("token") for d in docs]
    if set(map(type, token)) != {str} or set(map(len, token)) != {43}:
        return None
    text = "".join(token)
    if not text.isascii() or any(d.get("frame") is not None or not d.keys() <= FIELDS
                                 for d in docs):
        return None
    ints = []
    for name, dtype in (("venue", np.uint64), ("device", np.uint64), ("seq", np.uint64),
                        ("t_in", np.int64)):
        column = [d.get(name) for d in docs]
        if set(map(type, column)) != {int}:
            return None
        try:  # numpy refuses an int outside the dtype's range
            ints.append(np.array(column, dtype=dtype))
        except OverflowError:
            return None
    t_out = [d.get("t_out") for d in docs]
    kinds = set(map(type, t_out))
    if not kinds <= {int, type(None)}:
        return None
    if type(None) in kinds:
        t_out = [0 if t is None else t for t in t_out]
    try:
        out = np.array(t_out, dtype=np.int64)
    except OverflowError:
        return None
    tokens = np.frombuffer(bytearray(text.encode("ascii")), dtype=TOKEN_DTYPE)
    return (*ints, out, tokens)


def decode_json(value: bytes) -> Decoded:
    """The event of a JSON record, or the reason it is not one."""
    event = parse_json(value)
    return Decoded(None, event) if isinstance(event, str) else Decoded(ScanBatch.of([event]))


# ---- records -----------------------------------------------------------------------


def header_value(headers, name: str) -> bytes | None:
    """The value of header `name` in a list of (name, bytes) pairs; None if absent."""
    for key, value in headers or ():
        if key == name:
            return value
    return None


def record_format(value: bytes, headers=None) -> bytes:
    """The record's format name: its header, else `packed-v1` or `json` by its first bytes
    (the packed magic, or `{`), else b"" (no format this module knows)."""
    fmt = header_value(headers, FORMAT_HEADER)
    if fmt is None:
        if value[:4] == MAGIC:
            return PACKED_V1.encode()
        return JSON.encode() if bytes(value[:64]).lstrip()[:1] == b"{" else b""
    return bytes(fmt)


def decode_record(value: bytes | None, headers=None) -> Decoded:
    """The events of one record by its `qrtrace-format` header (or first bytes).

    Never raises for bad input: an unknown format or a malformed body gives the reason.
    """
    if value is None:
        return Decoded(None, "format: empty record (no value)")
    value = bytes(value)
    fmt = record_format(value, headers)
    if fmt == JSON.encode():
        return decode_json(value)
    if fmt == PACKED_V1.encode():
        return decode_packed(value)
    if not fmt:
        return Decoded(None, "format: no qrtrace-format header, and the record is neither "
                             "packed-v1 (magic QRTP) nor a JSON object")
    return Decoded(None, f"format: unknown format {_show(bytes(fmt))}")
