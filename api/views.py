"""Shaping service results into response bodies: cases, exposures, venues, graphs.

Route handlers stay thin: they call the service, then one of these.
"""

from __future__ import annotations

import numpy as np

from api.registry import Case
from tracing.model import TraceResult
from tracing.venues import Venue, VenueTable


def case_out(case: Case) -> dict:
    """A case as the API shows it (CaseOut)."""
    return {"id": case.id, "person": case.person, "window_from": case.t_from,
            "window_to": case.t_to, "purpose": case.purpose,
            "jurisdiction": case.jurisdiction, "opened_by": case.opened_by,
            "opened_at": case.opened_at, "closed_at": case.closed_at,
            "closed_by": case.closed_by}


def venues_out(venues: VenueTable, ids) -> list[dict]:
    """The named venues among `ids`, by id (unknown ones with empty names)."""
    return [(venues.get(venue) or Venue(venue)).to_dict()
            for venue in sorted(int(v) for v in ids)]


def exposure_view(service, case: Case, result: TraceResult, offset: int = 0,
                  limit: int | None = None) -> dict:
    """ExposureOut: the trace (contacts[offset:offset + limit]), the venues it names,
    counts per level, and the narrow zones compared with locking down the villages they
    lie in."""
    from tracing.adoption import lockdown_comparison

    # only the page's contacts are built: a town's F2 runs to tens of thousands
    page = result.contacts_slice(offset, None if limit is None else offset + limit)
    levels = result.contact_levels
    counts: dict[str, int] = {"f1": 0, "f2": 0, "zones": len(result.zones)}
    for level, n in zip(*np.unique(levels, return_counts=True), strict=True):
        counts[f"f{level}"] = int(n)
    named = {z.venue for z in result.zones}
    for contact in page:
        named.update(e.venue for e in contact.evidence)
    comparison = lockdown_comparison(service.cases.snapshot(), service.venues, result,
                                     service.cases.shards)
    shown = case_out(case)  # sent as is (no response model): use the API's field names
    shown["from"], shown["to"] = shown.pop("window_from"), shown.pop("window_to")
    return {"case": shown, "rule": result.rule.to_dict(),
            "contacts": [c.to_dict() for c in page],
            "contacts_total": int(levels.shape[0]), "offset": offset,
            "zones": [z.to_dict() for z in result.zones],
            "venues": venues_out(service.venues, named), "counts": counts,
            "comparison": comparison}


def exposure_json(service, case: Case, result: TraceResult, offset: int = 0,
                  limit: int | None = None) -> bytes:
    """`exposure_view` serialised (orjson): what GET .../exposure sends."""
    import orjson

    return orjson.dumps(exposure_view(service, case, result, offset, limit))


def graph_document(venues: VenueTable, result: TraceResult, format: str,
                   presences=None) -> bytes:
    """The contact graph of `result` as a document of `format` (tracing.graph.FORMATS);
    `presences` as tracing.graph.contact_graph takes them."""
    from tracing.graph import contact_graph, document

    g = contact_graph(result, {v.venue: v.name for v in venues}, presences=presences)
    return document(g, format)
