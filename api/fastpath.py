"""The single-scan route, served in front of the FastAPI application.

POST /v1/scan is what every check-in point calls for every person at its door. Through
FastAPI, the request cost about 1 ms of the event loop; py-spy showed two thirds of it in
the routing, dependency solving and six layers of middleware (telemetry, body limits,
errors, exceptions), not in qrtrace. `ScanFastPath` wraps the app as plain ASGI and
answers that one route itself, doing the same work: the same authentication
(api.deps.bearer_principal), the same validation (the pydantic model `ScanIn`, parsed
from the raw bytes by pydantic-core), the same error bodies, and the scan goes to the
same batcher (api/batcher.py). Every other request, and the lifespan, pass to the app,
whose FastAPI route for /v1/scan documents the contract in the OpenAPI schema;
tests/api/test_serve.py checks both answer alike.
"""

from __future__ import annotations

import time

import orjson
from fastapi import HTTPException
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError

from api.deps import bearer_principal
from api.ratelimit import RateLimited
from api.schemas import ScanIn

PATH = "/v1/scan"
MAX_SCAN_BODY = 4096
_JSON_HEADERS = [(b"content-type", b"application/json")]


class ScanFastPath:
    """ASGI: POST /v1/scan answered here, everything else by `app`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        service = self.app.state.service
        try:
            status, body, headers = await self._scan(service, scope, receive)
        except HTTPException as exc:
            status, body = exc.status_code, {"detail": exc.detail}
            headers = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
        except RateLimited as exc:
            service.metrics.rate_limited.labels(exc.scope).inc()
            status, body = 429, {"detail": str(exc)}
            headers = [(b"retry-after", str(exc.retry_after).encode())]
        payload = orjson.dumps(body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_JSON_HEADERS, *headers,
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
        metrics = service.metrics
        metrics.requests.labels(PATH, "POST", str(status)).inc()
        metrics.latency.labels(PATH).observe(time.perf_counter() - started)

    async def _scan(self, service, scope, receive):
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        device = bearer_principal(service, authorization, "device")
        body = await _read_body(receive)
        try:
            scan = ScanIn.model_validate_json(body)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            return 422, {"detail": jsonable_encoder(errors)}, []
        token = scan.token.encode("ascii") if len(scan.token) == 43 and scan.token.isascii() \
            else b""
        result = await service.batcher.submit(device.id, device.venue, token, scan.time,
                                              scan.check_out or 0, scan.seq)
        return 200, result, []


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
