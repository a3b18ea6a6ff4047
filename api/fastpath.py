"""The two hot routes, served in front of the FastAPI application: one scan, and a case's
exposure (which officials' screens poll).

POST /v1/scan is what every check-in point calls for every person at its door. Through
FastAPI, the request cost about 1 ms of the event loop; py-spy showed two thirds of it in
the routing, dependency solving and six layers of middleware (telemetry, body limits,
errors, exceptions), not in qrtrace. `ScanFastPath` wraps the app as plain ASGI and
answers that one route itself, doing the same work: the same authentication
(api.deps.bearer_principal), the same validation (the pydantic model `ScanIn`, parsed
from the raw bytes by pydantic-core), the same error bodies, and the scan goes to the
same batcher (api/batcher.py). The exposure of a case likewise: same checks, same
cached page (CaseService.page), ~2 ms of CPU through FastAPI at 400 requests/s; here a page
already made is answered from the event loop and its audit entry shares one fsync round
with the other requests waiting (AuditLog.record_async): no thread hop per request.
Every other request, and the lifespan, pass to the app,
whose FastAPI route for /v1/scan documents the contract in the OpenAPI schema;
tests/api/test_serve.py checks both answer alike.
"""

from __future__ import annotations

import asyncio
import re
import time
from functools import partial
from urllib.parse import parse_qs

import orjson
from fastapi import HTTPException
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError

from api.cases import CaseError
from api.deps import bearer_principal
from api.intake import token_bytes
from api.ratelimit import RateLimited
from api.routes.cases import DEFAULT_PAGE, MAX_PAGE
from api.schemas import ROW_ID_MAX, ScanIn
from api.views import exposure_json
from api.writer import WriterGone
from tracing.errors import ShardUnavailable

PATH = "/v1/scan"
EXPOSURE = re.compile(r"/v1/cases/([0-9]{1,19})/exposure")
EXPOSURE_ROUTE = "/v1/cases/{case_id}/exposure"
MAX_SCAN_BODY = 4096
_JSON_HEADERS = [(b"content-type", b"application/json")]
_VARY_HEADERS = [(b"vary", b"accept-encoding")]
_GZIP_HEADERS = [(b"content-encoding", b"gzip"), *_VARY_HEADERS]


class ScanFastPath:
    """ASGI: POST /v1/scan and GET /v1/cases/{id}/exposure answered here, everything else
    by `app`."""

    def __init__(self, app) -> None:
        self.app = app
        self._counted: dict[tuple, tuple] = {}  # (route, method, status) -> metric children

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if path == PATH and method == "POST":
            handler, route = self._scan, PATH
        elif method == "GET" and (match := EXPOSURE.fullmatch(path)) is not None:
            handler, route = partial(self._exposure, int(match.group(1))), EXPOSURE_ROUTE
        else:
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        service = self.app.state.service
        try:
            status, body, headers = await handler(service, scope, receive)
        except HTTPException as exc:
            status, body = exc.status_code, {"detail": exc.detail}
            headers = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
        except RateLimited as exc:
            service.metrics.rate_limited.labels(exc.scope).inc()
            status, body = 429, {"detail": str(exc)}
            headers = [(b"retry-after", str(exc.retry_after).encode())]
        except (WriterGone, ShardUnavailable) as exc:
            status, body = 503, {"detail": str(exc)}
            headers = [(b"retry-after", b"5")]
        except CaseError as exc:
            from api.app import error_status

            status, body, headers = error_status(exc), {"detail": str(exc)}, []
        payload = body if isinstance(body, bytes) else orjson.dumps(body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_JSON_HEADERS, *headers,
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
        counted = self._counted.get((route, method, status))
        if counted is None:  # prometheus_client's labels() costs more than the counting
            metrics = service.metrics
            counted = self._counted[route, method, status] = (
                metrics.requests.labels(route, method, str(status)),
                metrics.latency.labels(route))
        counted[0].inc()
        counted[1].observe(time.perf_counter() - started)

    async def _exposure(self, case_id: int, service, scope, receive):
        """GET /v1/cases/{id}/exposure (see api/routes/cases.py for the contract)."""
        official = bearer_principal(service, _header(scope, b"authorization"), "official")
        if not 1 <= case_id <= ROW_ID_MAX:
            return 422, {"detail": [{"type": "less_than_equal", "loc": ["path", "case_id"],
                                     "msg": f"case_id must be from 1 to {ROW_ID_MAX}"}]}, []
        query = _query(scope["query_string"])
        try:
            offset = _bounded(query, "offset", 0, 0, 100_000_000)
            limit = _bounded(query, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        except ValueError as exc:
            return 422, {"detail": [{"type": "value_error", "loc": ["query", str(exc)],
                                     "msg": f"{exc} is not an integer in its range"}]}, []
        cases, loop = service.cases, asyncio.get_running_loop()
        case = service.registry.case_in_memory(case_id)
        if case is None:
            case = await loop.run_in_executor(None, service.registry.get_case, case_id)
        try:
            case = cases.visible(official, case, case_id, "exposure")
        except CaseError as exc:
            await service.audit.record_async(
                **cases.refusal_fields(official, "exposure", case_id, exc))
            raise
        await cases.audit_async(official, "exposure", case)
        # the page made on the current snapshot answers from the loop; only a new page
        # (a trace and its rendering) goes to a thread
        kind = f"exposure:{offset}:{limit}"

        def render(case, result):
            return exposure_json(service, case, result, offset, limit)

        gzipped = _accepts_gzip(_header(scope, b"accept-encoding"))
        body = cases.page_if_ready(case, kind, render, gzipped)
        if body is None:
            body = await loop.run_in_executor(None, cases.page, case, kind, render, gzipped)
        return 200, body, _GZIP_HEADERS if gzipped else _VARY_HEADERS

    async def _scan(self, service, scope, receive):
        device = bearer_principal(service, _header(scope, b"authorization"), "device")
        body = await _read_body(receive)
        try:
            scan = ScanIn.model_validate_json(body)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            return 422, {"detail": jsonable_encoder(errors)}, []
        result = await service.batcher.submit(device.id, device.venue,
                                              token_bytes(scan.token), scan.time,
                                              scan.check_out or 0, scan.seq)
        return 200, result, []


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header value accepts gzip (RFC 9110: "gzip", "*", not
    with q=0)."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and q[2:].strip().rstrip("0").rstrip(".") in
                        ("", "0"))
    return False


def _query(raw: bytes) -> dict[str, list[str]]:
    """parse_qs of a query string (blank values kept: `offset=` is not a number, and is
    refused as the schema says, not read as the default), without its cost for the plain
    `a=1&b=2` kind."""
    if not raw:
        return {}
    text = raw.decode("latin-1")
    if "%" in text or "+" in text or ";" in text:
        return parse_qs(text, keep_blank_values=True)
    query: dict[str, list[str]] = {}
    for pair in text.split("&"):
        name, _, value = pair.partition("=")
        if name:
            query.setdefault(name, []).append(value)
    return query


_INTEGER = re.compile(r"-?[0-9]{1,18}")


def _bounded(query: dict, name: str, default: int, low: int, high: int) -> int:
    """The integer query parameter `name` in [low, high]; ValueError(name) otherwise."""
    values = query.get(name)
    if not values:
        return default
    text = values[-1]
    # ASCII digits only (str.isdigit() also says yes to "²", which int() refuses), one
    # sign at most ("--5") and no more digits than a bound has (int() of 5,000 digits
    # raises a message of its own)
    if _INTEGER.fullmatch(text) is None or not low <= int(text) <= high:
        raise ValueError(name)
    return int(text)


async def _read_body(receive) -> bytes:
    """The request body; HTTPException 413 past MAX_SCAN_BODY bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPException(400, "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_SCAN_BODY:
            raise HTTPException(413, f"one scan is at most {MAX_SCAN_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
