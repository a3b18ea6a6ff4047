"""Officials: open a case, read its exposure (F1, F2, evidence), zones, graph, exports.

Every route here writes an audit entry (who, which case, purpose, when) before it
answers. An official sees only the cases of their own jurisdiction; another's is
answered 404, as a case that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.cases import CaseRequest
from api.deps import AUTH_RESPONSES, OfficialCaller, ServiceDep
from api.schemas import ROW_ID_MAX, CaseIn, CaseOut, ExposureOut, Problem, ZonesOut
from api.views import case_out, exposure_json, graph_document, venues_out

router = APIRouter(prefix="/v1/cases", tags=["officials"])
DEFAULT_PAGE, MAX_PAGE = 500, 50_000
CASE_RESPONSES = {
    **AUTH_RESPONSES,
    404: {"model": Problem, "description": "no case with this id in your jurisdiction"},
    410: {"model": Problem, "description": "the case was closed"}}
# Case ids are SQLite rowids.
CaseId = Annotated[int, Path(ge=1, le=ROW_ID_MAX)]


@router.post("", status_code=201, response_model=CaseOut,
             responses={**AUTH_RESPONSES, 422: {
                 "model": Problem, "description": "the request names a bad field: its value "
                 "breaks the schema, or the person, window or jurisdiction cannot be used"}},
             response_model_by_alias=True, summary="open a case")
def open_case(body: CaseIn, official: OfficialCaller, service: ServiceDep) -> CaseOut:
    """Open a case for a confirmed person (F0) with an infectious window and a purpose."""
    case = service.cases.open(official, CaseRequest(
        person=body.person, t_from=body.window_from, t_to=body.window_to,
        purpose=body.purpose, jurisdiction=body.jurisdiction,
        min_overlap=body.min_overlap_minutes * 60, linger=body.linger_minutes * 60,
        depth=body.depth))
    return case_out(case)


@router.get("", response_model=list[CaseOut], responses=AUTH_RESPONSES,
            response_model_by_alias=True, summary="the cases of your jurisdiction")
def list_cases(official: OfficialCaller, service: ServiceDep) -> list[CaseOut]:
    """Cases inside the official's jurisdiction, newest first."""
    return [case_out(c) for c in service.cases.list(official)]


@router.get("/{case_id}", response_model=CaseOut, responses=CASE_RESPONSES,
            response_model_by_alias=True, summary="one case")
def get_case(case_id: CaseId, official: OfficialCaller, service: ServiceDep) -> CaseOut:
    """The case as opened."""
    return case_out(service.cases.get(official, case_id))


@router.post("/{case_id}/close", response_model=CaseOut, responses=CASE_RESPONSES,
             response_model_by_alias=True, summary="close a case")
def close_case(case_id: CaseId, official: OfficialCaller, service: ServiceDep) -> CaseOut:
    """Close the case when its tracing is done: from then on its exposure, zones, graph
    and exports answer 410 to every official (the case itself stays listed, with when
    and by whom it was closed). Closing a closed case changes nothing."""
    return case_out(service.cases.close_case(official, case_id))


@router.get("/{case_id}/exposure", response_model=ExposureOut, responses=CASE_RESPONSES,
            response_model_by_alias=True, summary="F1 and F2 with evidence, and zones")
async def exposure(case_id: CaseId, official: OfficialCaller, service: ServiceDep,
                   offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
                   limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE
                   ) -> Response:
    """Who was exposed (F1), who was exposed by them afterwards (F2), with the evidence,
    the zones, the rule used, and the narrow zones compared with village lockdowns.
    Contacts come a page at a time (`offset`, `limit`; ordered by level, exposed_at,
    person); `counts` and `contacts_total` count them all. In a town, a case's F2 runs
    to tens of thousands: the CSV export has them all at once."""
    # shaped and serialised once per index snapshot and page (CaseService.rendered),
    # then sent as bytes: FastAPI's response_model validation of thousands of contacts
    # cost more than the trace; the model above still documents the shape
    body = await run_in_threadpool(
        service.cases.rendered, official, case_id, "exposure", f"exposure:{offset}:{limit}",
        lambda case, result: exposure_json(service, case, result, offset, limit))
    return Response(body, media_type="application/json")


@router.get("/{case_id}/zones", response_model=ZonesOut, responses=CASE_RESPONSES,
            response_model_by_alias=True, summary="the narrow zones")
async def zones(case_id: CaseId, official: OfficialCaller, service: ServiceDep) -> ZonesOut:
    """The venues and hours of the case's presence (level 0) and of F1's (level 1)."""
    case, result = await run_in_threadpool(service.cases.trace, official, case_id, "zones")
    rule = result.rule.to_dict()
    return ZonesOut(case=case_out(case), rule=rule,
                    zones=[z.to_dict() for z in result.zones],
                    venues=venues_out(service.venues, {z.venue for z in result.zones}))


GRAPH_TYPES = {"json": "application/json", "graphml": "application/graphml+xml",
               "svg": "image/svg+xml"}


@router.get("/{case_id}/graph", responses={**CASE_RESPONSES, 200: {"content": {
    t: {} for t in GRAPH_TYPES.values()}, "description": "the contact graph"}},
    response_class=Response, summary="the contact graph (JSON, GraphML or SVG)")
async def graph(case_id: CaseId, official: OfficialCaller, service: ServiceDep,
                format: Annotated[Literal["json", "graphml", "svg"], Query()] = "json"
                ) -> Response:
    """Persons and venues from F0 to F2, edges with overlap minutes."""
    case, result = await run_in_threadpool(service.cases.trace, official, case_id,
                                           f"graph_{format}")
    presences = await run_in_threadpool(service.cases.contact_presences, result)
    body = await run_in_threadpool(graph_document, service.venues, result, format, presences)
    headers = {}
    if format == "graphml":
        headers["Content-Disposition"] = f'attachment; filename="case-{case.id}.graphml"'
    return Response(body, media_type=GRAPH_TYPES[format], headers=headers)


@router.get("/{case_id}/export.csv", response_class=Response,
            responses={**CASE_RESPONSES, 200: {"content": {"text/csv": {}},
                                               "description": "the export"}},
            summary="contacts or zones as CSV")
async def export_csv(case_id: CaseId, official: OfficialCaller, service: ServiceDep,
                     part: Annotated[Literal["contacts", "zones"], Query()] = "contacts"
                     ) -> Response:
    """One row per piece of evidence (contacts) or per zone; cells that a spreadsheet
    would run as a formula are neutralised."""
    from api.exports import contacts_csv, zones_csv

    case, result = await run_in_threadpool(service.cases.trace, official, case_id,
                                           f"export_{part}")
    tz = service.settings.tz_offset_s
    text = (contacts_csv if part == "contacts" else zones_csv)(result, service.venues, tz)
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="case-{case.id}-{part}.csv"'})
