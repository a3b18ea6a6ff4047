"""Check-in points: scans (JSON or packed batches), camera frames, check-outs.

A device token is bound to one venue: the venue of every scan comes from it, never from
the request. Every scan gets a result (accepted, duplicate, rejected with its reason);
a retried upload gives `duplicate` for what was already stored. Over a rate limit: 429
with Retry-After, and nothing of the request is written; a batch that can never pass as it
is (over a burst: 413; a person more often than the hourly limit: 422) says so, without
Retry-After.
"""

from __future__ import annotations

import base64
import binascii
from functools import cache

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import AUTH_RESPONSES, DeviceCaller, ServiceDep
from api.intake import IntakeOutcome, token_bytes
from api.schemas import (
    CheckoutIn,
    FrameScanResult,
    FramesIn,
    FramesOut,
    PackedScansOut,
    ScanBatchIn,
    ScanBatchOut,
    ScanIn,
    ScanResult,
    rfc3339_utc,
)
from ingest.events import TOKEN_DTYPE, ScanBatch
from ingest.wire import decode_packed
from tracing.checkins import MAX_VISIT

router = APIRouter(prefix="/v1", tags=["check-in points"])

PACKED_TYPE = "application/vnd.qrtrace.packed-v1"
# A check-in point's camera frame is a 4K one at the most; the decoder's own cap (40 MP)
# would let one request of 32 tiny PNGs of blank 6,300 px squares take 6 s of the
# server's CPU.
FRAME_MAX_PIXELS = 3840 * 2160
SCAN_RESPONSES = {
    **AUTH_RESPONSES,
    413: {"description": "the body or the batch is too large (a batch over a device's or "
                          "venue's burst can never pass: split it)"},
    429: {"description": "over a rate limit; nothing was written; see Retry-After"},
}


def _batch(tokens: list[str], t_in: list[int], t_out: list[int], seq: list[int]
           ) -> ScanBatch:
    n = len(tokens)
    raw = [token_bytes(t) for t in tokens]
    return ScanBatch(np.zeros(n, np.uint64), np.zeros(n, np.uint64),
                     np.array(seq, np.uint64), np.array(t_in, np.int64),
                     np.array(t_out, np.int64), np.array(raw, dtype=TOKEN_DTYPE))


def _submit(service, device, batch: ScanBatch) -> IntakeOutcome:
    outcome = service.intake.submit(device.id, device.venue, batch)
    service.metrics.count_scans(outcome)
    return outcome


@router.post("/scans", response_model=ScanBatchOut, responses=SCAN_RESPONSES,
             summary="post a batch of scans (JSON)")
async def post_scans(body: ScanBatchIn, device: DeviceCaller,
                     service: ServiceDep) -> ScanBatchOut:
    """Store up to 10,000 scans in one durable write; a result per scan, in order."""
    scans = body.scans
    batch = _batch([s.token for s in scans], [s.time for s in scans],
                   [s.check_out or 0 for s in scans], [s.seq for s in scans])
    outcome = await run_in_threadpool(_submit, service, device, batch)
    counts = outcome.counts()
    return ScanBatchOut(accepted=counts["accepted"], duplicates=counts["duplicate"],
                        rejected=counts["rejected"],
                        results=[ScanResult(**r) for r in outcome.items(batch.seq)])


@router.post("/scan", response_model=ScanResult, responses=SCAN_RESPONSES,
             summary="post one scan")
async def post_scan(body: ScanIn, device: DeviceCaller, service: ServiceDep) -> ScanResult:
    """Store one scan; durable when the answer comes. Concurrent scans are stored together
    (api/batcher.py): one verification, one append and one fsync for all of them."""
    result = await service.batcher.submit(device.id, device.venue, token_bytes(body.token),
                                          body.time,
                                          body.check_out or 0, body.seq)
    return ScanResult(**result)


@router.post(
    "/scans/packed", response_model=PackedScansOut,
    responses={**SCAN_RESPONSES, 400: {"description": "the body is not a packed-v1 batch"}},
    summary="post a packed binary batch of scans",
    openapi_extra={"requestBody": {"required": True, "content": {
        PACKED_TYPE: {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "packed-v1 (see the README): venue and device columns are ignored "
                       "(the device token's binding is used)"}})
async def post_packed(request: Request, device: DeviceCaller,
                      service: ServiceDep) -> PackedScansOut:
    """The fast path: a packed-v1 batch of up to 400,000 scans in one durable write."""
    body = await request.body()
    decoded = decode_packed(body)
    if not decoded.ok:
        raise HTTPException(400, decoded.reason)
    if len(decoded.batch) > service.settings.limits.max_packed_rows:
        raise HTTPException(413, f"{len(decoded.batch)} rows; at most "
                                 f"{service.settings.limits.max_packed_rows} in one batch")
    if len(decoded.batch) == 0:
        return PackedScansOut(accepted=0, duplicates=0, rejected=0, duplicate_rows=[],
                              rejected_rows=[])
    outcome = await run_in_threadpool(_submit, service, device, decoded.batch)
    counts = outcome.counts()
    rejected = np.flatnonzero(outcome.status > 1)
    return PackedScansOut(
        accepted=counts["accepted"], duplicates=counts["duplicate"],
        rejected=counts["rejected"],
        duplicate_rows=np.flatnonzero(outcome.status == 1).tolist(),
        rejected_rows=[{"row": r, "reason": outcome.reason[r]} for r in rejected.tolist()])


@router.post("/frames", response_model=FramesOut, responses=SCAN_RESPONSES,
             summary="post camera frames (PNG or JPEG) to decode and store")
async def post_frames(body: FramesIn, device: DeviceCaller,
                      service: ServiceDep) -> FramesOut:
    """Decode up to 32 frames in one batch (decoder.decode_frames), then store a scan for
    each personal code they show (a frame may show several people's); a frame without
    one gets one rejected result with the reason. Each result names its frame."""
    images, reasons = [], []
    for frame in body.frames:
        try:
            images.append(base64.b64decode(frame.image, validate=True))
            reasons.append(None)
        except (binascii.Error, ValueError):
            images.append(b"")
            reasons.append("frame: image is not base64")
    found = await run_in_threadpool(_frame_tokens, images, reasons)
    # a row per token found, or one (with no token) for a frame without one
    rows = [(i, text) for i, texts in enumerate(found) for text in texts or [""]]
    frame_of = [i for i, _ in rows]
    batch = _batch([text for _, text in rows], [body.frames[i].time for i in frame_of],
                   [0] * len(rows), [body.frames[i].seq for i in frame_of])
    outcome = await run_in_threadpool(_submit, service, device, batch)
    for row, i in enumerate(frame_of):  # the frame's own problem says more than
        if reasons[i] is not None:      # "token: malformed" of its empty slot
            outcome.reason[row] = reasons[i]
    counts = outcome.counts()
    return FramesOut(accepted=counts["accepted"], duplicates=counts["duplicate"],
                     rejected=counts["rejected"],
                     results=[FrameScanResult(**r, frame=i) for r, i in
                              zip(outcome.items(batch.seq), frame_of, strict=True)])


@cache
def _frames_decoder():
    from decoder import FrameDecoder

    return FrameDecoder(max_pixels=FRAME_MAX_PIXELS)


def _frame_tokens(images: list[bytes], reasons: list[str | None]) -> list[list[str]]:
    """The token texts of each image ([] where none), filling in `reasons`."""
    from decoder import frame_tokens

    found: list[list[str]] = [[] for _ in images]
    todo = [i for i, r in enumerate(reasons) if r is None]
    for i, (texts, reason) in zip(todo, frame_tokens([images[i] for i in todo],
                                                     _frames_decoder()), strict=True):
        found[i], reasons[i] = texts, reason
    return found


@router.post("/checkouts", response_model=ScanResult,
             responses={**SCAN_RESPONSES, 404: {"description": "no check-in to close"}},
             summary="post a check-out")
async def post_checkout(body: CheckoutIn, device: DeviceCaller,
                        service: ServiceDep) -> ScanResult:
    """Close a visit at this device's venue: the check-in at `check_in`, or else the
    person's latest check-in here before `time`."""
    from decoder import Kind, verify_token

    checked = verify_token(body.token, service.keyring(), revoked=service.revoked())
    if not checked.ok or checked.kind is not Kind.PERSON:
        reason = checked.reason if not checked.ok else "not a person token"
        return ScanResult(seq=body.seq, status="rejected", reason=f"token: {reason}")
    at = body.time if body.check_in is None else body.check_in
    found = service.index.last_checkin(checked.id, device.venue, at)
    if body.check_in is None and (found is None or found[0] < body.time - MAX_VISIT):
        # a visit lasts a day at the most: an older check-in is not this check-out's
        raise HTTPException(404, "no check-in of this person at this venue in the day before "
                                 f"{rfc3339_utc(body.time)}")
    if body.check_in is not None and (found is None or found[0] != body.check_in):
        # a check-out stores its visit: one naming a check-in never made would make one
        raise HTTPException(404, "no check-in of this person at this venue at "
                                 f"{rfc3339_utc(body.check_in)}")
    t_in, t_out = found
    if t_out >= body.time:  # a later (or the same) check-out is kept: this one changes nothing
        return ScanResult(seq=body.seq, status="duplicate",
                          reason=f"the visit was checked out at {rfc3339_utc(t_out)} already")
    batch = _batch([body.token], [t_in], [body.time], [body.seq])
    outcome: IntakeOutcome = await run_in_threadpool(_submit, service, device, batch)
    item = outcome.items(batch.seq)[0]
    if item["status"] == "duplicate":
        item["status"] = "accepted"  # the visit existed; its check-out is now stored
    return ScanResult(**item)
