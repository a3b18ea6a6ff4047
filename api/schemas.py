"""Request and response bodies of the HTTP API (pydantic models).

Every request model forbids unknown fields (no mass assignment) and bounds every
string, number and list. The models accept exactly what their JSON Schema (in
/openapi.json) describes, no more: an integer is a JSON integer (3 or 3.0, never true or
"3"), a time is integer seconds since the Unix epoch (UTC) or RFC 3339 text with an offset
("2026-11-25T08:30:00+07:00"; a time without an offset is refused). Ids of persons and
venues are integers in [0, 2**64).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
)

from api.registry import OFFICIAL_VALID_DAYS
from tracing.venues import normal_jurisdiction

MAX_TIME = 2**32 - 1
U64_MAX = 2**64 - 1
ROW_ID_MAX = 2**63 - 1  # ids of cases and principals are SQLite rowids
# Bounds that a float (FastAPI's OpenAPI model keeps bounds as floats) cannot spell:
# api.app writes them back exactly into /openapi.json.
LARGE_BOUNDS = (U64_MAX, ROW_ID_MAX)


def json_integer(value: object) -> int:
    """`value` as a JSON integer: an int, or a float without a fraction (JSON Schema counts
    3.0 as an integer). Raises ValueError for anything else, booleans and digit strings
    included (pydantic's lax mode would take them)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be an integer, got {type(value).__name__}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"must be an integer, got {value}")
        return int(value)
    return value


def _int(low: int, high: int) -> object:
    return Annotated[int, Field(ge=low, le=high), BeforeValidator(json_integer)]


U64 = _int(0, U64_MAX)
Minutes = _int(0, 1440)
DwellMinutes = _int(1, 1440)
Depth = _int(1, 3)
ExpiresDay = _int(1, 1_048_575)

_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def rfc3339_seconds(text: str) -> int:
    """Seconds since the Unix epoch of an RFC 3339 date-time ("2026-11-25T08:30:00+07:00",
    fraction dropped, a leap second :60 counts as the next second), for any year 0001-9999:
    the caller judges whether the time is plausible. Raises ValueError naming the problem."""
    found = _RFC3339.fullmatch(text)
    if found is None:
        raise ValueError("must be RFC 3339 date-time text with an offset, "
                         "like 2026-11-25T08:30:00+07:00")
    day, hour_minute, second, _, offset = found.groups()
    leap = second == "60"
    offset = "+00:00" if offset in "Zz" else offset
    try:
        moment = datetime.fromisoformat(f"{day}T{hour_minute}:{'59' if leap else second}"
                                        f"{offset}")
    except ValueError as exc:
        raise ValueError(f"not a date-time: {exc}") from None
    return int((moment - _EPOCH) // timedelta(seconds=1)) + leap


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def rfc3339_utc(seconds: int) -> str:
    """Epoch seconds as RFC 3339 UTC text (2026-11-20T01:00:00Z), for messages that
    name a time."""
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp(value: object) -> int:
    if isinstance(value, str):
        return rfc3339_seconds(value)
    seconds = json_integer(value)
    if not 0 <= seconds <= MAX_TIME:
        raise ValueError(f"seconds must lie in [0, {MAX_TIME}], got {seconds}")
    return seconds


def _in_uint32(seconds: int) -> int:
    if not 0 <= seconds <= MAX_TIME:
        raise ValueError(f"the time must lie between 1970 and 2106, got {seconds} s")
    return seconds


# A time as the request gives it. Text may name any year: a scan at an impossible time is
# rejected on its own, with its reason, and the rest of its batch goes on.
Timestamp = Annotated[int, PlainValidator(_timestamp), WithJsonSchema({
    "anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_TIME},
              {"type": "string", "format": "date-time"}],
    "description": "seconds since the Unix epoch (UTC), or RFC 3339 text with an offset"})]
# A time that must be stored as it is (a case's window): 1970 to 2106, else 422.
StoredTime = Annotated[Timestamp, AfterValidator(_in_uint32)]
# Control characters and the invisible ones that reorder or hide text (bidi overrides,
# zero-width): text that goes into the audit log and onto the officials' page as it is
# holds none of them, and something besides spaces. As a pattern, so that the JSON
# Schema says what the model accepts.
_HIDDEN = "\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
VISIBLE = f"^[^{_HIDDEN}]*[^{_HIDDEN}\\s][^{_HIDDEN}]*$"


Name = Annotated[str, Field(min_length=1, max_length=200, pattern=VISIBLE)]
Place = Annotated[str, Field(max_length=200)]
TokenText = Annotated[str, Field(min_length=1, max_length=64)]
# "District" or "District/Commune": no empty part (an empty jurisdiction is the whole
# country, which no official is given by accident).
_PART = f"[^/{_HIDDEN}]*[^/\\s{_HIDDEN}][^/{_HIDDEN}]*"
Jurisdiction = Annotated[str, Field(min_length=1, max_length=200,
                                    pattern=f"^{_PART}(/{_PART})?$"),
                         AfterValidator(normal_jurisdiction)]


class Strict(BaseModel):
    """Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


# ---- scans -----------------------------------------------------------------------

class ScanIn(Strict):
    """One scan at a check-in point: the person's token, when, and the device's number."""

    token: TokenText
    time: Timestamp
    seq: U64 = 0
    check_out: Timestamp | None = None


class ScanBatchIn(Strict):
    """Up to 10,000 scans (an offline device uploads its backlog in one request)."""

    scans: Annotated[list[ScanIn], Field(min_length=1, max_length=10_000)]


class ScanResult(BaseModel):
    """What became of one scan."""

    seq: int
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = None


class ScanBatchOut(BaseModel):
    """A result per scan, in order, and the counts."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[ScanResult]


class FrameScanResult(ScanResult):
    """What became of one code read in a frame: `frame` is the frame's place in the
    request (a frame showing several people's codes gives a result for each)."""

    frame: int


class FramesOut(BaseModel):
    """A result per personal code read (a frame without one: one rejected result), in
    the frames' order, and the counts."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[FrameScanResult]


class RowProblem(BaseModel):
    """A packed row that was not stored as new: its row number and why."""

    row: int
    reason: str


class PackedScansOut(BaseModel):
    """The result of a packed batch: every row not listed was accepted."""

    accepted: int
    duplicates: int
    rejected: int
    duplicate_rows: list[int]
    rejected_rows: list[RowProblem]


class FrameIn(Strict):
    """A camera frame (PNG or JPEG, base64) taken at `time`."""

    image: Annotated[str, Field(min_length=1, max_length=6_000_000)]
    time: Timestamp
    seq: U64 = 0


class FramesIn(Strict):
    """Up to 32 camera frames, decoded in one batch."""

    frames: Annotated[list[FrameIn], Field(min_length=1, max_length=32)]


class CheckoutIn(Strict):
    """A check-out: the person's token and when they left. `check_in` names the visit;
    without it, the person's latest check-in at this venue before `time` is closed."""

    token: TokenText
    time: Timestamp
    check_in: Timestamp | None = None
    seq: U64 = 0


# ---- cases -----------------------------------------------------------------------

class CaseIn(Strict):
    """Open a case: the person (personal token, or id as a JSON integer, as a case
    answers it, or as digits), the infectious window [from, to), the purpose (kept in the
    audit log) and the rule's parameters."""

    person: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")] | U64
    window_from: StoredTime = Field(alias="from")
    window_to: StoredTime = Field(alias="to")
    purpose: Annotated[str, Field(min_length=3, max_length=500, pattern=VISIBLE)]
    jurisdiction: Jurisdiction | None = None
    min_overlap_minutes: Minutes = 10
    linger_minutes: Minutes = 0
    depth: Depth = 2


class RuleOut(BaseModel):
    name: str
    min_overlap: int
    linger: int
    depth: int
    default_dwell: int


class CaseOut(BaseModel):
    id: int
    person: int
    window_from: int = Field(serialization_alias="from")
    window_to: int = Field(serialization_alias="to")
    purpose: str
    jurisdiction: str
    opened_by: int
    opened_at: int
    closed_at: int | None = None
    closed_by: int | None = None


class EvidenceOut(BaseModel):
    venue: int
    start: int
    end: int
    minutes: float


class ContactOut(BaseModel):
    person: int
    level: int
    exposed_at: int
    evidence: list[EvidenceOut]


class ZoneOut(BaseModel):
    venue: int
    level: int
    start: int
    end: int
    exposed: int


class VenueOut(BaseModel):
    venue: int
    name: str
    village: str
    commune: str
    district: str
    category: str
    dwell_minutes: int | None


class ExposureOut(BaseModel):
    """F1 and F2 with evidence, the zones, the rule used, and the venues named."""

    case: CaseOut
    rule: RuleOut
    contacts: list[ContactOut]
    contacts_total: int
    offset: int
    zones: list[ZoneOut]
    venues: list[VenueOut]
    counts: dict[str, int]
    comparison: dict


class ZonesOut(BaseModel):
    case: CaseOut
    rule: RuleOut
    zones: list[ZoneOut]
    venues: list[VenueOut]


# ---- admin -----------------------------------------------------------------------

class VenueIn(Strict):
    venue: U64
    name: Name
    village: Place = ""
    commune: Place = ""
    district: Place = ""
    category: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z_]+$")] = "other"
    dwell_minutes: DwellMinutes | None = None


class VenuesIn(Strict):
    venues: Annotated[list[VenueIn], Field(min_length=1, max_length=10_000)]


class DeviceIn(Strict):
    name: Name
    venue: U64


class OfficialIn(Strict):
    name: Name
    jurisdiction: Jurisdiction
    # an official's token reads citizens' movements: it lapses (a new one is issued)
    valid_days: Annotated[int, Field(ge=1, le=3650)] = OFFICIAL_VALID_DAYS


class PrincipalOut(BaseModel):
    id: int
    name: str
    role: str
    jurisdiction: str
    venue: int | None
    created: int
    revoked: int | None
    expires: int | None = None


class PrincipalCreated(BaseModel):
    """A new principal and its bearer token: shown this once, stored only hashed; and
    what the admin should know of it (an official's jurisdiction that no venue lies in)."""

    principal: PrincipalOut
    token: str
    warning: str | None = None


class TokenIn(Strict):
    kind: Literal["person", "venue"]
    id: U64
    expires_day: ExpiresDay | None = None


class TokenOut(BaseModel):
    kind: str
    id: int
    key_id: int
    token: str
    qr_png: str = Field(description="the path of the token's QR code as PNG")
    qr_svg: str = Field(description="the path of the token's QR code as SVG")


class RevokeIn(Strict):
    kind: Literal["person", "venue"]
    id: U64


class KeysOut(BaseModel):
    active: int
    keys: list[int]
    retired: list[int]


class AuditEntryOut(BaseModel):
    seq: int
    time: int
    actor: str
    role: str
    action: str
    case: int | None
    purpose: str | None
    detail: dict
    prev: str
    hash: str


class AuditVerifyOut(BaseModel):
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None
    reason: str | None


class Problem(BaseModel):
    """An error: what is wrong, naming the field or value; some errors also name their
    `reason` in a word (a refused case, a report's days not held) for clients to act on
    or translate."""

    detail: str | list | dict
    reason: str | None = None
