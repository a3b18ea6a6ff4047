"""Liveness, readiness and metrics (no token: for the operator's probes and scrapers).

`/metrics` reveals counts only (no ids, no names); bind the service to an internal
address or put it behind the reverse proxy's access rules if even counts are private.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from api.deps import ServiceDep
from api.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="the process is alive")
def healthz(service: ServiceDep) -> dict:
    """{"status": "ok", "process": ...} while the process answers: "writer", or with
    `qrtrace serve --workers N` the follower that answered ("follower 1", ...)."""
    return {"status": "ok", "process": service.process}


@router.get("/readyz", summary="the service can take scans and queries",
            responses={503: {"description": "not ready (the reason is named)"}})
def readyz(service: ServiceDep) -> JSONResponse:
    """200 when the index is open (and, with Kafka, the producer connected); else 503."""
    problems = service.readiness_problems()
    if problems:
        return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready", "checkins": len(service.index)})


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {}},
                             "description": "Prometheus text format"}})
def metrics(service: ServiceDep) -> Response:
    """Counters of requests, scans by outcome and reason, rate limits, and gauges."""
    return Response(service.metrics.render(service), media_type=CONTENT_TYPE)
