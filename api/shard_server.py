"""`qrtrace shard`: one worker's index answering a sharded trace's questions over HTTP.

With Kafka, each worker indexes a shard of the venues into its own data folder. A shard
server runs beside a worker, reads that folder through a read-only follower (the worker
keeps the lock and goes on writing), and answers the three questions of a sharded trace
(tracing/shards.py) for a coordinator elsewhere (`qrtrace trace --shard URL`, `qrtrace
serve --shard URL`):

    POST /v1/shard/presences   persons, lows, hi           -> the persons' visits
    POST /v1/shard/overlaps    venues, starts, ends, need  -> visits overlapping those
    POST /v1/shard/ends        persons, venues, times      -> those visits' check-outs
                                                              and next check-ins
    POST /v1/shard/counts      t_from, t_to, tz_offset_s   -> check-ins per venue and day
    POST /v1/shard/checkins    venues, t_from, t_to        -> those venues' check-ins
    POST /v1/shard/persons     venues, t_from, t_to        -> persons seen at those venues
    GET  /healthz

The last three serve the adoption report and the lockdown comparison over shards
(tracing/adoption.py). Bodies are messages of numpy columns (api/shard_wire.py), each
question of a trace with the rule's default dwell. Least privilege: the questions need
the token of QRTRACE_SHARD_TOKEN (a bearer token, compared by hash in constant time),
and answer nothing but rows of ids and times for the ids and venues asked, and counts
per venue and day; no case or name lives here. The coordinator audits the official's
query, and the shard records every question it answers in its own folder's audit log
(who asked, from where, how many ids, the first persons): a holder of the shard token
who traced through a coordinator of their own, with an audit log of their choosing,
left no trace on the shard. Each question reads the newest snapshot, so the questions
of one trace may see check-ins that arrived between them.
"""

from __future__ import annotations

import hashlib
import hmac
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.audit import AuditError, AuditLog
from api.shard_wire import MEDIA_TYPE, QUESTIONS, ShardWireError, pack, unpack
from tracing.adoption import venue_checkins, venue_day_counts, window_person_ids
from tracing.follower import IndexFollower
from tracing.shards import LocalShard

MAX_BODY = 64 * 1024 * 1024
AUDIT_PERSONS = 10  # persons named in a question's audit entry


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _answer(follower: IndexFollower, question: str, columns: dict):
    """The shard's answer to one question, as a tuple of columns."""
    snapshot = follower.snapshot()
    if question == "counts":
        counts = venue_day_counts(snapshot, columns["t_from"], columns["t_to"],
                                  columns["tz_offset_s"])
        return counts.venue, counts.day, counts.checkins
    if question == "checkins":
        return venue_checkins(snapshot, columns["venues"], columns["t_from"], columns["t_to"])
    if question == "persons":
        return (window_person_ids(snapshot, columns["venues"], columns["t_from"],
                                  columns["t_to"]),)
    shard = LocalShard(snapshot, columns.pop("default_dwell"))
    if question == "presences":
        return shard.presence_rows(columns["persons"], columns["lows"], columns["hi"])
    if question == "overlaps":
        return shard.overlap_rows(columns["venues"], columns["starts"], columns["ends"],
                                  columns["need"])
    return shard.visit_ends(columns["persons"], columns["venues"], columns["times"])


def create_shard_app(index_folder: Path, token: str, audit_log: Path) -> Starlette:
    """The shard server's ASGI app over the index in `index_folder` (followed from
    start-up to shutdown), answering only requests with `token`, each recorded in the
    audit log at `audit_log` before it is answered."""
    digest = token_digest(token)
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app):
        # written at once, fsynced within milliseconds (a trace asks a few questions a
        # level; each waiting for its own fsync would add that to the trace)
        state["audit"] = AuditLog(audit_log, sync_wait=False)
        state["follower"] = IndexFollower.open(index_folder)
        try:
            yield
        finally:
            state["follower"].close()
            state["audit"].close()

    def refused(request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            return _unauthorised("a shard token is required (Authorization: Bearer TOKEN, "
                                 "the QRTRACE_SHARD_TOKEN the shard was started with)")
        if not hmac.compare_digest(token_digest(given), digest):
            return _unauthorised("wrong shard token: not the QRTRACE_SHARD_TOKEN this shard "
                                 "was started with")
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return JSONResponse({"detail": f"body over {MAX_BODY} bytes"}, status_code=413)
        return None

    async def ask(request: Request) -> Response:
        question = request.path_params["question"]
        if question not in QUESTIONS:
            return JSONResponse({"detail": f"no question {question!r}; ask one of "
                                           f"{', '.join(QUESTIONS)}"}, status_code=404)
        problem = refused(request)
        if problem is not None:
            return problem
        spec, same, answer_spec = QUESTIONS[question]
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"detail": f"body over {MAX_BODY} bytes"}, status_code=413)
        try:
            columns = unpack(body, spec, same)
        except ShardWireError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        try:  # recorded before it is answered, as an official's query is
            await state["audit"].record_async(**_audit_fields(request, question, columns))
        except (AuditError, OSError) as exc:
            return JSONResponse({"detail": f"the audit log cannot be written, so the "
                                           f"question is refused: {exc}"}, status_code=503)
        answer = await run_in_threadpool(_answer, state["follower"], question, columns)
        return Response(pack(**dict(zip(answer_spec, answer, strict=True))), media_type=MEDIA_TYPE)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/v1/shard/{question}", ask, methods=["POST"]),
                             Route("/healthz", healthz)], lifespan=lifespan)


def _audit_fields(request: Request, question: str, columns: dict) -> dict:
    """The audit entry of one question: the peer, the question, how many ids it names and
    the first persons among them (AUDIT_PERSONS; a trace's first question names the case)."""
    peer = f"{request.client.host}:{request.client.port}" if request.client else "unknown"
    detail: dict = {"peer": peer}
    for name in ("persons", "venues"):
        if name in columns:
            ids = columns[name]
            detail[name] = len(ids)
            if name == "persons":
                detail["first_persons"] = [int(p) for p in ids[:AUDIT_PERSONS]]
    for name in ("t_from", "t_to", "hi"):
        if name in columns:
            detail[name] = int(columns[name])
    return dict(actor=f"shard peer {peer}", role="shard", action=f"shard_{question}",
                detail=detail)


def _unauthorised(detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})
