"""Request and response bodies of the HTTP API (pydantic models).

Every request model forbids unknown fields (no mass assignment) and bounds every
string, number and list. Times are integer seconds since the Unix epoch (UTC) or ISO 8601
text with an offset ("2026-11-25T08:30:00+07:00"); a time without an offset is refused.
Ids of persons and venues are integers in [0, 2**64).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
MAX_TIME = 2**32 - 1


def _seconds(value: int | datetime) -> int:
    seconds = value if isinstance(value, int) else int(value.timestamp())
    if not 0 <= seconds <= MAX_TIME:
        raise ValueError(f"a time must lie between 1970 and 2106, got {seconds}")
    return seconds


Timestamp = Annotated[
    Annotated[int, Field(ge=0, le=MAX_TIME)] | AwareDatetime,
    AfterValidator(_seconds),
    Field(description="seconds since the Unix epoch (UTC), or ISO 8601 with an offset"),
]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Place = Annotated[str, Field(max_length=200)]
TokenText = Annotated[str, Field(min_length=1, max_length=64)]


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
    """Open a case: the person (personal token, or id as digits), the infectious
    window [from, to), the purpose (kept in the audit log) and the rule's parameters."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    person: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")]
    window_from: Timestamp = Field(alias="from")
    window_to: Timestamp = Field(alias="to")
    purpose: Annotated[str, Field(min_length=3, max_length=500)]
    jurisdiction: Place | None = None
    min_overlap_minutes: Annotated[int, Field(ge=0, le=1440)] = 10
    linger_minutes: Annotated[int, Field(ge=0, le=1440)] = 0
    depth: Annotated[int, Field(ge=1, le=3)] = 2


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
    dwell_minutes: Annotated[int, Field(ge=1, le=1440)] | None = None


class VenuesIn(Strict):
    venues: Annotated[list[VenueIn], Field(min_length=1, max_length=10_000)]


class DeviceIn(Strict):
    name: Name
    venue: U64


class OfficialIn(Strict):
    name: Name
    jurisdiction: Annotated[str, Field(min_length=1, max_length=200)]


class PrincipalOut(BaseModel):
    id: int
    name: str
    role: str
    jurisdiction: str
    venue: int | None
    created: int
    revoked: int | None


class PrincipalCreated(BaseModel):
    """A new principal and its bearer token: shown this once, stored only hashed."""

    principal: PrincipalOut
    token: str


class TokenIn(Strict):
    kind: Literal["person", "venue"]
    id: U64
    expires_day: Annotated[int, Field(ge=1, le=1_048_575)] | None = None


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
    """An error: what is wrong, naming the field or value."""

    detail: str | list | dict
