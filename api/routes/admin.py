"""Admin: venues, devices, officials, personal and venue tokens with their QR images,
key rotation, and the audit log (read and verify)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import AUTH_RESPONSES, AdminCaller, ServiceDep
from api.registry import NotFound, in_jurisdiction
from api.revocations import export_revocations
from api.schemas import (
    ROW_ID_MAX,
    AuditEntryOut,
    AuditVerifyOut,
    DeviceIn,
    KeysOut,
    OfficialIn,
    PrincipalCreated,
    PrincipalOut,
    Problem,
    RevokeIn,
    TokenIn,
    TokenOut,
    VenueOut,
    VenuesIn,
)
from decoder.tokens import MAX_KEY_ID

router = APIRouter(prefix="/v1/admin", tags=["admin"])
NOT_FOUND = {**AUTH_RESPONSES, 404: {"model": Problem, "description": "no such item"}}
UNKNOWN_VENUE = {**AUTH_RESPONSES,
                 409: {"model": Problem, "description": "the venue is not registered"}}
# Principal ids are SQLite rowids.
PrincipalId = Annotated[int, Path(ge=1, le=ROW_ID_MAX)]


def _audit(service, admin, action: str, **detail) -> None:
    service.audit.record(actor=admin.name, role=admin.role, action=action,
                         detail={"principal": admin.id, **detail})


@router.get("/venues", response_model=list[VenueOut], responses=AUTH_RESPONSES)
def list_venues(admin: AdminCaller, service: ServiceDep) -> list[dict]:
    """Every venue, by id."""
    return [v.to_dict() for v in service.venues]


@router.put("/venues", response_model=list[VenueOut], responses=AUTH_RESPONSES)
def put_venues(body: VenuesIn, admin: AdminCaller, service: ServiceDep) -> list[dict]:
    """Add or replace venues (name, village, commune, district, category, dwell)."""
    from tracing.venues import Venue

    venues = [Venue(**v.model_dump()) for v in body.venues]
    service.save_venues(venues)
    _audit(service, admin, "put_venues", venues=len(venues))
    return [v.to_dict() for v in venues]


@router.get("/devices", response_model=list[PrincipalOut], responses=AUTH_RESPONSES)
def list_devices(admin: AdminCaller, service: ServiceDep) -> list[dict]:
    """Every device, revoked ones included."""
    return [p.to_dict() for p in service.registry.principals("device")]


@router.post("/devices", status_code=201, response_model=PrincipalCreated,
             responses=UNKNOWN_VENUE)
def add_device(body: DeviceIn, admin: AdminCaller, service: ServiceDep) -> dict:
    """Register a check-in point bound to one venue; its token is shown this once."""
    if body.venue not in service.venues:
        raise HTTPException(409, f"venue {body.venue} is not registered; add it first")
    principal, token = service.registry.add_principal(body.name, "device", venue=body.venue)
    _audit(service, admin, "add_device", device=principal.id, venue=body.venue)
    return {"principal": principal.to_dict(), "token": token}


@router.delete("/devices/{device_id}", response_model=PrincipalOut, responses=NOT_FOUND)
def revoke_device(device_id: PrincipalId, admin: AdminCaller, service: ServiceDep) -> dict:
    """Revoke a device's token at once."""
    return _revoke(service, admin, device_id, "device")


@router.get("/officials", response_model=list[PrincipalOut], responses=AUTH_RESPONSES)
def list_officials(admin: AdminCaller, service: ServiceDep) -> list[dict]:
    """Every official, revoked ones included."""
    return [p.to_dict() for p in service.registry.principals("official")]


@router.post("/officials", status_code=201, response_model=PrincipalCreated,
             responses=AUTH_RESPONSES)
def add_official(body: OfficialIn, admin: AdminCaller, service: ServiceDep) -> dict:
    """Register an official of a jurisdiction ("District" or "District/Commune") whose
    token lapses after `valid_days` (default 90; the official is then issued a new one),
    spelled
    as the venue table spells it when they differ in letter case only; `warning` says
    when no venue lies in it yet (the official would see no case and no venue)."""
    jurisdiction, warning = _known_spelling(body.jurisdiction, service.venues)
    principal, token = service.registry.add_principal(
        body.name, "official", jurisdiction=jurisdiction,
        valid_s=body.valid_days * 86400)
    _audit(service, admin, "add_official", official=principal.id,
           jurisdiction=principal.jurisdiction)
    return {"principal": principal.to_dict(), "token": token, "warning": warning}


def _known_spelling(jurisdiction: str, venues) -> tuple[str, str | None]:
    """`jurisdiction` as the venues' districts and communes spell it (compared without
    letter case), and a warning when no venue lies in it."""
    places = {p for v in venues for p in (v.district, v.jurisdiction) if p}
    if any(in_jurisdiction(p, jurisdiction) for p in places):
        return jurisdiction, None
    folded = {p.casefold(): p for p in places}
    if jurisdiction.casefold() in folded:
        return folded[jurisdiction.casefold()], None
    return jurisdiction, (f"no venue lies in {jurisdiction!r} yet: this official sees no "
                          "case and no venue until venues of it are registered")


@router.delete("/officials/{official_id}", response_model=PrincipalOut, responses=NOT_FOUND)
def revoke_official(official_id: PrincipalId, admin: AdminCaller, service: ServiceDep) -> dict:
    """Revoke an official's token at once."""
    return _revoke(service, admin, official_id, "official")


def _revoke(service, admin, principal_id: int, role: str) -> dict:
    try:
        principal = service.registry.revoke_principal(principal_id, role)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    _audit(service, admin, f"revoke_{role}", target=principal_id)
    return principal.to_dict()


@router.post("/tokens", status_code=201, response_model=TokenOut,
             responses=UNKNOWN_VENUE)
def issue(body: TokenIn, admin: AdminCaller, service: ServiceDep) -> dict:
    """Issue a personal or venue token under the active key; a venue token counts as a
    QR point posted at the venue (the adoption report)."""
    from decoder import issue_token

    ring = service.keyring()
    if body.kind == "venue" and body.id not in service.venues:
        raise HTTPException(409, f"venue {body.id} is not registered; add it first")
    token = issue_token(body.kind, body.id, ring, expires_day=body.expires_day)
    if body.kind == "venue":
        service.registry.add_qr_point(body.id, ring.active)
    _audit(service, admin, "issue_token", kind=body.kind, id=body.id)
    return {"kind": body.kind, "id": body.id, "key_id": ring.active, "token": token,
            "qr_png": f"/v1/admin/qr?text={token}&format=png",
            "qr_svg": f"/v1/admin/qr?text={token}&format=svg"}


@router.get("/qr", response_class=Response, responses={
    **AUTH_RESPONSES, 200: {"content": {"image/png": {}, "image/svg+xml": {}},
                            "description": "the QR code"}})
def qr_image(admin: AdminCaller,
             text: Annotated[str, Query(min_length=43, max_length=43, pattern=r"^[0-9A-Z]+$")],
             format: Annotated[Literal["png", "svg"], Query()] = "png") -> Response:
    """A token's QR code (error correction M), to print."""
    from api.qrimage import qr_png, qr_svg

    if format == "svg":
        return Response(qr_svg(text), media_type="image/svg+xml")
    return Response(qr_png(text), media_type="image/png")


@router.post("/tokens/revoke", status_code=204, response_class=Response,
             responses=AUTH_RESPONSES)
def revoke_token(body: RevokeIn, admin: AdminCaller, service: ServiceDep) -> Response:
    """Stop every token of this person or venue id from checking in."""
    # stored by kind name, which the revocation list (decoder.RevocationList) reads
    service.registry.revoke_token_id(body.kind, body.id)
    service.reload_revoked()
    export_revocations(service.settings.data, service.registry)  # for Kafka workers
    _audit(service, admin, "revoke_token", kind=body.kind, id=body.id)
    return Response(status_code=204)


@router.get("/keys", response_model=KeysOut, responses=AUTH_RESPONSES)
def keys(admin: AdminCaller, service: ServiceDep) -> dict:
    """Key ids: the active one (new tokens), every live one, the retired ones."""
    ring = service.keyring()
    return {"active": ring.active, "keys": sorted(ring.keys), "retired": sorted(ring.retired)}


@router.post("/keys/rotate", response_model=KeysOut, responses=AUTH_RESPONSES)
def rotate(admin: AdminCaller, service: ServiceDep) -> dict:
    """A new active key; tokens of the older keys keep verifying until retired."""
    from api.keystore import rotate_key

    rotate_key(service.settings.data)
    service.reload_keyring()
    _audit(service, admin, "rotate_key", active=service.keyring().active)
    return keys(admin, service)


@router.post("/keys/{key_id}/retire", response_model=KeysOut,
             responses={**NOT_FOUND, 409: {"model": Problem,
                                           "description": "the active key cannot retire"}})
def retire(key_id: Annotated[int, Path(ge=0, le=MAX_KEY_ID)], admin: AdminCaller,
           service: ServiceDep) -> dict:
    """Retire a key: its tokens are refused from now on."""
    from api.keystore import KeystoreError, retire_key

    ring = service.keyring()
    if key_id not in ring.keys:
        raise HTTPException(404, f"no live key with id {key_id}")
    if key_id == ring.active:
        raise HTTPException(409, "the active key cannot retire; rotate first")
    try:
        retire_key(service.settings.data, key_id)
    except KeystoreError as exc:
        raise HTTPException(409, str(exc)) from None
    service.reload_keyring()
    _audit(service, admin, "retire_key", key=key_id)
    return keys(admin, service)


@router.get("/audit", response_model=list[AuditEntryOut], responses=AUTH_RESPONSES)
def audit_entries(admin: AdminCaller, service: ServiceDep,
                  after: Annotated[int, Query(ge=0)] = 0,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict]:
    """Audit entries after seq `after`, oldest first. The read is audited itself (the
    entries name persons and purposes), before it runs: its own entry may be among them."""
    _audit(service, admin, "read_audit", after=after, limit=limit)
    return [e.to_dict() for e in service.audit.entries(after, limit)]


@router.get("/audit/verify", response_model=AuditVerifyOut, responses=AUTH_RESPONSES)
async def audit_verify(admin: AdminCaller, service: ServiceDep) -> dict:
    """Recompute the audit log's hash chain: ok, or the first entry that breaks it."""
    return (await run_in_threadpool(service.audit.verify)).to_dict()

