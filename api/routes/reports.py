"""Reports: QR adoption per venue and village (the commune's own complaint: QR points
created that nobody scans), as JSON, CSV, or a chart."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import AUTH_RESPONSES, ReaderCaller, ServiceDep
from api.reports import adoption_chart_svg, adoption_for, check_days
from api.schemas import Problem

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.get("/adoption", responses={
    **AUTH_RESPONSES, 422: {"model": Problem, "description": "a bad date range"},
    200: {"content": {"application/json": {}, "text/csv": {}, "image/svg+xml": {}},
          "description": "the report"}},
    response_class=Response, summary="QR adoption by venue, village and day")
async def adoption(reader: ReaderCaller, service: ServiceDep,
                   day_from: Annotated[date, Query(alias="from")],
                   day_to: Annotated[date, Query(alias="to")],
                   format: Annotated[Literal["json", "csv", "svg"], Query()] = "json",
                   part: Annotated[Literal["venues", "villages"], Query()] = "venues"
                   ) -> Response:
    """Per venue of your jurisdiction over [from, to] (local days, inclusive): QR points
    posted, check-ins, days without check-ins; venues with QR points and no check-ins
    first. `part=villages` gives the per-village summary a commune sends its district;
    `format=svg` draws it."""
    check_days(service.settings, day_from, day_to)  # ReportRangeError: 422 with its reason
    # audited before it runs, as every official query (and without blocking the loop)
    await service.audit.record_async(actor=reader.name, role=reader.role,
                                     action="adoption_report",
                                     detail={"principal": reader.id, "from": str(day_from),
                                             "to": str(day_to), "format": format})
    report = await run_in_threadpool(adoption_for, service, reader, day_from, day_to)
    if format == "json":
        import json
        return Response(json.dumps(report.to_dict(), ensure_ascii=False),
                        media_type="application/json")
    if format == "svg":
        return Response(adoption_chart_svg(report), media_type="image/svg+xml")
    from api.exports import adoption_csv, village_csv

    text = (adoption_csv if part == "venues" else village_csv)(report)
    name = f"adoption-{part}-{day_from}-{day_to}.csv"
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

