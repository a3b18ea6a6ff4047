"""The FastAPI application: `create_app(settings)`.

    app = create_app(Settings(data=Path("data")))
    uvicorn.run(app, host="127.0.0.1", port=8080)

Routers (api/routes/): health (no token), scans (device tokens), cases (officials),
reports (officials and admins), admin. The service's parts are opened in the lifespan
and closed at shutdown. Errors of the layers below map to HTTP here, in one place:

    RateLimited        429 with Retry-After (nothing of the request was written)
    CaseNotFound       404
    OutOfJurisdiction  403
    BadCase            422 naming the field
    RegistryError      409
    body too large     413 (before the body is read)
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.cases import BadCase, CaseNotFound, OutOfJurisdiction
from api.ratelimit import RateLimited
from api.registry import RegistryError
from api.routes import admin, cases, health, reports, scans
from api.service import Service
from api.settings import Settings


def create_app(settings: Settings, service: Service | None = None) -> FastAPI:
    """The API over `settings.data` (or over an already opened `service`, which the
    caller then closes)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = service is None
        app.state.service = Service(settings) if own else service
        try:
            yield
        finally:
            if own:
                app.state.service.close()

    app = FastAPI(title="qrtrace", version="0.5.0", lifespan=lifespan,
                  description="QR check-in ingestion and contact tracing: check-in points "
                              "post scans; officials open cases and read exposures, zones "
                              "and adoption reports; every official query is audited.")
    if service is not None:
        app.state.service = service
    for router in (health.router, scans.router, cases.router, reports.router, admin.router):
        app.include_router(router)
    _add_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_body_bytes)
    app.add_middleware(RequestMetrics)
    return app


def _problem(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, exc: RateLimited):
        request.app.state.service.metrics.rate_limited.labels(exc.scope).inc()
        return _problem(429, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(CaseNotFound)
    async def not_found(request: Request, exc: CaseNotFound):
        return _problem(404, str(exc))

    @app.exception_handler(OutOfJurisdiction)
    async def forbidden(request: Request, exc: OutOfJurisdiction):
        return _problem(403, str(exc))

    @app.exception_handler(BadCase)
    async def bad_case(request: Request, exc: BadCase):
        return _problem(422, str(exc))

    @app.exception_handler(RegistryError)
    async def conflict(request: Request, exc: RegistryError):
        return _problem(409, str(exc))


class BodyLimit:
    """Refuse a request body over `max_bytes` with 413: at once when Content-Length says
    so, else as soon as the streamed body passes the limit (pure ASGI, no buffering)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    return await _send_413(send, self.max_bytes)
                break
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _send_413(send, self.max_bytes)


class _TooLarge(Exception):
    pass


async def _send_413(send, limit: int) -> None:
    body = f'{{"detail":"the request body is larger than {limit} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RequestMetrics:
    """Count every answered request by route template, method and status (pure ASGI)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def observed(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            service = getattr(scope["app"].state, "service", None)
            if service is not None:
                m = service.metrics
                m.requests.labels(path, scope["method"], str(status)).inc()
                m.latency.labels(path).observe(time.perf_counter() - started)
