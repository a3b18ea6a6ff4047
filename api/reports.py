"""The adoption report for a caller's jurisdiction, and its chart.

The report itself is computed in tracing/adoption.py from an index snapshot; this module
limits it to the venues inside the caller's jurisdiction and draws it with matplotlib
(a chart a commune can paste into its report to the district).
"""

from __future__ import annotations

import dataclasses
import io
import time
from datetime import date, timedelta

from api.registry import Principal, in_jurisdiction
from tracing.adoption import (
    AdoptionReport,
    adoption_report,
    day_bounds,
    iso_day,
    venue_day_counts_over,
)
from tracing.venues import VenueTable

_EPOCH = date(1970, 1, 1)
MAX_DAYS = 366


class ReportRangeError(ValueError):
    """Days a report cannot be made for; `reason` names why in a word (days_order,
    days_span, days_ahead, days_deleted), the message in a sentence."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_days(settings, day_from: date, day_to: date) -> None:
    """Raise ReportRangeError unless the index can speak for local days [day_from,
    day_to]: not days to come, nor days before the retention period, whose check-ins
    are deleted (either would show every venue as silent on them)."""
    if day_to < day_from:
        raise ReportRangeError(f"to ({day_to}) is before from ({day_from})", "days_order")
    if (day_to - day_from).days >= MAX_DAYS:
        raise ReportRangeError(f"a report spans at most {MAX_DAYS} days", "days_span")
    local = time.time() + settings.tz_offset_s
    today = _EPOCH + timedelta(days=int(local // 86400))
    # the first whole local day still held: the one after the purge horizon's own day
    oldest = today - timedelta(days=settings.retention_days - 1)
    if day_to > today:
        raise ReportRangeError(f"to ({day_to}) is after today ({today}, local time): a "
                               "report counts days that have begun", "days_ahead")
    if day_from < oldest:
        raise ReportRangeError(
            f"from ({day_from}) is before {oldest}, the first day whose check-ins are all "
            f"kept (retention: {settings.retention_days} days): earlier ones are deleted",
            "days_deleted")


def adoption_for(service, caller: Principal, day_from: date, day_to: date) -> AdoptionReport:
    """The adoption report over local days [day_from, day_to] for the venues inside the
    caller's jurisdiction (an admin: every venue, unknown ones included), over this
    server's index and its shards (`serve --shard`), counting the QR points posted by the
    end of those days. Raises ShardUnavailable when a shard cannot answer."""
    first, last = (day_from - _EPOCH).days, (day_to - _EPOCH).days
    tz = service.settings.tz_offset_s
    bounds = day_bounds(first, last, tz)
    counts = venue_day_counts_over([service.index.snapshot(), *service.cases.shards],
                                   *bounds, tz)
    qr_points = service.registry.qr_points(*bounds)
    venues = service.venues
    if caller.jurisdiction:
        venues = VenueTable(v for v in service.venues
                            if in_jurisdiction(v.jurisdiction, caller.jurisdiction))
        inside = {v.venue for v in venues}
        import numpy as np

        keep = np.isin(counts.venue, np.fromiter(inside, np.uint64, len(inside)))
        counts = dataclasses.replace(counts, venue=counts.venue[keep], day=counts.day[keep],
                                     checkins=counts.checkins[keep])
        qr_points = {k: n for k, n in qr_points.items() if k in inside}
    return adoption_report(venues, qr_points, counts, first, last)


def adoption_chart_svg(report: AdoptionReport) -> str:
    """Check-ins per village and day (lines), and per village the venues with QR points
    that nobody scanned (bars), as one SVG document."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 2))
    dates = [iso_day(d)[5:] for d in report.days]
    for village in report.villages:
        top.plot(dates, village.daily, marker="o", markersize=3,
                 label=village.village or "(no village)")
    top.set_title(f"Check-ins per day by village, {iso_day(report.day_from)} to "
                  f"{iso_day(report.day_to)}")
    top.set_ylabel("check-ins")
    if report.villages:
        top.legend(fontsize=8, ncols=min(4, len(report.villages)))
    top.tick_params(axis="x", labelrotation=60, labelsize=7)
    names = [v.village or "(no village)" for v in report.villages]
    with_qr = [v.venues_with_qr_points for v in report.villages]
    silent = [v.silent_venues for v in report.villages]
    bottom.bar(names, with_qr, color="#9ecae1", label="venues with QR points")
    bottom.bar(names, silent, color="#d62728", label="... of which nobody scanned")
    bottom.set_title("QR points that nobody scans")
    bottom.legend(fontsize=8)
    bottom.tick_params(axis="x", labelrotation=30, labelsize=8)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    return buffer.getvalue()
