"""The FastAPI application: `create_app(settings)`.

    app = create_app(Settings(data=Path("data")))
    uvicorn.run(app, host="127.0.0.1", port=8080)

Routers (api/routes/): health (no token), scans (device tokens), cases (officials),
reports (officials and admins), admin. The service's parts are opened in the lifespan
and closed at shutdown. Errors of the layers below map to HTTP here, in one place:

    RateLimited        429 with Retry-After (nothing of the request was written); a batch
                       that can never pass: 413 (over a burst) or 422 (a person more often
                       than the hourly limit), without Retry-After
    WriterGone         503 with Retry-After (a follower whose writer process is gone)
    SinkError          503 with Retry-After (Kafka did not take the scans)
    CaseNotFound       404
    OutOfJurisdiction  403
    CaseClosed         410 (a closed case shows no more contacts)
    BadCase            422 naming the field
    RegistryError      409
    body too large     413 (FastAPI's max_body_size: the app's, or a route's own)
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.cases import BadCase, CaseClosed, CaseNotFound, OutOfJurisdiction
from api.intake import SinkError
from api.ratelimit import RateLimited
from api.registry import RegistryError
from api.reports import ReportRangeError
from api.routes import admin, cases, docs, health, me, reports, scans, web
from api.schemas import LARGE_BOUNDS, Problem
from api.service import Service
from api.settings import Settings
from api.writer import WriterGone
from tracing.errors import ShardUnavailable


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
                  docs_url=None, redoc_url=None,  # api/routes/docs.py serves /docs
                  max_body_size=settings.limits.max_body_bytes,
                  description="QR check-in ingestion and contact tracing: check-in points "
                              "post scans; officials open cases and read exposures, zones "
                              "and adoption reports; every official query is audited.")
    if service is not None:
        app.state.service = service
    for router in (health.router, me.router, scans.router, cases.router, reports.router,
                   admin.router, web.router, docs.router):
        app.include_router(router)
    _add_error_handlers(app)
    _document_common_responses(app)
    app.add_middleware(RequestMetrics)
    return app


def create_asgi(settings: Settings, service: Service | None = None):
    """What `qrtrace serve` runs: the app behind the single-scan fast path
    (api/fastpath.py)."""
    from api.fastpath import ScanFastPath

    return ScanFastPath(create_app(settings, service))


def _problem(status: int, detail: str, headers: dict | None = None,
             reason: str | None = None) -> JSONResponse:
    """An error answer: {"detail": the message} and, for errors that name one, "reason"
    (a word a client can act on or translate; CaseError.reason)."""
    body = {"detail": detail} if reason is None else {"detail": detail, "reason": reason}
    return JSONResponse(body, status_code=status, headers=headers)


# Errors of the layers below and the status each answers with (the fast path uses it too).
ERROR_STATUS = {CaseNotFound: 404, OutOfJurisdiction: 403, BadCase: 422, RegistryError: 409,
                CaseClosed: 410, ReportRangeError: 422}


def error_status(exc: Exception) -> int:
    """The HTTP status of one of ERROR_STATUS's errors (or a subclass), else 422."""
    return next((status for error, status in ERROR_STATUS.items() if isinstance(exc, error)),
                422)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, exc: RateLimited):
        request.app.state.service.metrics.rate_limited.labels(exc.scope).inc()
        if exc.never:  # waiting will not help: no Retry-After for a client to follow
            return _problem(413 if exc.scope in ("device", "venue") else 422, str(exc))
        return _problem(429, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(WriterGone)
    async def writer_gone(request: Request, exc: WriterGone):
        return _problem(503, str(exc), {"Retry-After": "5"})

    @app.exception_handler(SinkError)
    async def sink_error(request: Request, exc: SinkError):
        return _problem(503, str(exc), {"Retry-After": "5"})

    @app.exception_handler(ShardUnavailable)
    async def shard_unavailable(request: Request, exc: ShardUnavailable):
        return _problem(503, str(exc), {"Retry-After": "5"})

    async def case_error(request: Request, exc: Exception):
        return _problem(error_status(exc), str(exc), reason=getattr(exc, "reason", None))

    for error in ERROR_STATUS:
        app.add_exception_handler(error, case_error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the one route it tried; a path with
            # several routes (GET and POST /v1/cases) must list them all (RFC 9110 15.5.6)
            allow = ", ".join(sorted(_methods_at(request)))
            exc = StarletteHTTPException(405, exc.detail, {**(exc.headers or {}),
                                                           "Allow": allow})
        return await http_exception_handler(request, exc)


def _methods_at(request: Request) -> set[str]:
    """Every method some route serves at the request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return methods


# Answers that come from the framework rather than a route: every route with a body may
# give them. Every error answer is a Problem ({"detail": ...}).
BODY_RESPONSES = {
    "400": "the body cannot be read (not UTF-8, or not the declared content type)",
    "413": "the body is larger than the limit",
}


def _document_common_responses(app: FastAPI) -> None:
    """Make /openapi.json name every answer a route can give: the framework's 400 and
    413 for bodies, and the Problem body of each error that declares none."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version,
                              description=app.description, routes=app.routes)
            problem = {"$ref": "#/components/schemas/Problem"}
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas.setdefault("Problem", Problem.model_json_schema(
                ref_template="#/components/schemas/{model}"))
            _exact_bounds(doc)
            for methods in doc["paths"].values():
                for operation in methods.values():
                    responses = operation["responses"]
                    if "requestBody" in operation:
                        for status, text in BODY_RESPONSES.items():
                            responses.setdefault(status, {"description": text})
                    for status, response in responses.items():
                        if int(status) >= 400 and "content" not in response:
                            response["content"] = {"application/json": {"schema": problem}}
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi


_BOUND_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_EXACT = {float(bound): bound for bound in LARGE_BOUNDS}


def _exact_bounds(node: object) -> None:
    """Integer bounds as integers again, in place: FastAPI's OpenAPI model turns them into
    floats, and 2**64 - 1 as a float is 2**64, a bound the server does not accept."""
    if isinstance(node, dict):
        for key in _BOUND_KEYS:
            value = node.get(key)
            if isinstance(value, float) and value.is_integer():
                node[key] = _EXACT.get(value, int(value))
        for child in node.values():
            _exact_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _exact_bounds(child)


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
