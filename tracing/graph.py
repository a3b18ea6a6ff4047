"""The contact graph of a traced case: its TraceResult, and the contacts' presences.

Nodes are named `p<id>` for persons and `v<id>` for venues:
- a person has `kind="person"`, `person`, `level` (0 for the case, 1 for F1, ...) and,
  for contacts, `exposed_at`;
- a venue has `kind="venue"`, `venue`, `name` (when known) and `zone_level`, the lowest
  level of presence (zone) there, or -1 when only contacts were there.

Edges:
- person-venue (`kind="visit"`): the case to each venue of its level-0 zones, and every
  contact to the venues of its evidence; `minutes` (the time its evidence intervals there
  cover, overlapping ones counted once, or the zone's length), `start`, `end` (first
  start, last end), `overlaps` (how many evidence intervals);
- person-person (`kind="exposure"`, from the level above to the level below): every F1
  from the case; a level-k+1 person from the level-k persons present with them after
  their own exposure (the presences the trace met them on, when the caller gives them:
  tracing.shards.contact_presences), from the MAX_SOURCES with the longest time together
  at most; `minutes` is that time. Without those presences, only where the result alone
  proves it: their evidence intervals at the same venue intersect; a level-k+1 person
  with no such proof then hangs from the venue alone.

Exports (`document`, `write`): GraphML, JSON node-link and a hand-written SVG drawing
from a NetworkX layout; no plotting library needed.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections import defaultdict
from html import escape

import networkx as nx
import numpy as np

from tracing.model import Contact, TraceResult
from tracing.storage import open_private

# A level-k+1 person's exposure edges come from at most this many level-k persons: those
# with the longest time together. In a crowded venue every pair proves an exposure (a
# market hour of 600 persons: 250 F1s and 250 F2s, 13,000 edges built in 7 s; of 3,000,
# millions of edges, which took a server more than ten minutes): no picture or reader
# can use that, and who else was there is in the contacts' evidence.
MAX_SOURCES = 3
LEVEL_COLOURS = ("#d62728", "#ff7f0e", "#f2c500", "#2ca02c", "#1f77b4")
VENUE_COLOUR = "#7f7f7f"
FORMATS = ("json", "graphml", "svg")
# A picture shows at most this many persons (the page's graph too), and names its venues
# when it has at most MAX_NAMED.
MAX_DRAWN = 400
MAX_NAMED = 40


def person_node(person: int) -> str:
    """The node name of a person."""
    return f"p{person}"


def venue_node(venue: int) -> str:
    """The node name of a venue."""
    return f"v{venue}"


def contact_graph(result: TraceResult, venue_names: dict[int, str] | None = None,
                  presences: tuple[np.ndarray, ...] | None = None) -> nx.Graph:
    """The contact graph of `result` (see the module docstring); an undirected nx.Graph.

    `venue_names` maps venue ids to names for labels. `presences`, the contacts' own
    presences after their exposure (tracing.shards.contact_presences: columns person,
    venue, start, end), names who exposed each contact below F1; without them only
    evidence that meets evidence does. Edge direction of exposure is kept in the `source`
    attribute (the node of the level above).
    """
    names = venue_names or {}
    g = nx.Graph(case=result.case, window_from=result.window_from,
                 window_to=result.window_to, rule=json.dumps(result.rule.to_dict()))
    g.add_node(person_node(result.case), kind="person", person=result.case, level=0)

    def add_venue(venue: int) -> str:
        node = venue_node(venue)
        if node not in g:
            g.add_node(node, kind="venue", venue=venue, name=names.get(venue, ""), zone_level=-1)
        return node

    def add_visit(person: str, venue: int, start: int, end: int, seconds: int,
                  overlaps: int) -> None:
        node = add_venue(venue)
        if g.has_edge(person, node):
            e = g.edges[person, node]
            e["minutes"] = round(e["minutes"] + seconds / 60, 2)
            e["start"], e["end"] = min(e["start"], start), max(e["end"], end)
            e["overlaps"] += overlaps
        else:
            g.add_edge(person, node, kind="visit", minutes=round(seconds / 60, 2),
                       start=start, end=end, overlaps=overlaps)

    for zone in result.zones:
        node = add_venue(zone.venue)
        level = g.nodes[node]["zone_level"]
        g.nodes[node]["zone_level"] = zone.level if level < 0 else min(level, zone.level)
        if zone.level == 0:
            add_visit(person_node(result.case), zone.venue, zone.start, zone.end,
                      zone.end - zone.start, 1)
    spans = {}
    for c in result.contacts:
        node = person_node(c.person)
        g.add_node(node, kind="person", person=c.person, level=c.level,
                   exposed_at=c.exposed_at)
        spans[c.person] = _spans(c.evidence)
        for venue, (merged, count) in spans[c.person].items():
            add_visit(node, venue, merged[0][0], max(end for _, end in merged),
                      sum(end - start for start, end in merged), count)
    _add_exposures(g, result, spans, presences)
    return g


def _add_exposures(g: nx.Graph, result: TraceResult, spans: dict[int, dict],
                   presences: tuple[np.ndarray, ...] | None) -> None:
    """The exposure edges (see the module docstring); `spans`: _spans of each contact's
    evidence, by person; `presences` as contact_graph takes them, or None."""
    by_level: dict[int, list[Contact]] = defaultdict(list)
    for c in result.contacts:
        by_level[c.level].append(c)
    case = person_node(result.case)
    for c in by_level.get(1, []):
        first = min(c.evidence, key=lambda e: e.start) if c.evidence else None
        g.add_edge(case, person_node(c.person), kind="exposure", source=case,
                   venue=first.venue if first else -1,
                   minutes=round(sum(e.minutes for e in c.evidence), 2),
                   start=first.start if first else c.exposed_at)
    for level in sorted(by_level):
        above = by_level.get(level - 1, [])
        if level < 2 or not above:
            continue
        there = _presences(above, spans) if presences is None else \
            _by_venue(presences, {c.person for c in above})
        for c in by_level[level]:
            b = person_node(c.person)
            for person, (seconds, venue, start) in _sources(spans[c.person], there):
                g.add_edge(person_node(person), b, kind="exposure", source=person_node(person),
                           venue=venue, minutes=round(seconds / 60, 2), start=start)


def _spans(evidence) -> dict[int, tuple[list[list[int]], int]]:
    """Per venue, the evidence intervals there with overlapping ones merged (in time
    order), and how many intervals there were. A crowded venue gives a contact an
    interval per presence it met: hundreds that overlap."""
    by_venue: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for e in evidence:
        by_venue[e.venue].append((e.start, e.end))
    merged: dict[int, tuple[list[list[int]], int]] = {}
    for venue, spans in by_venue.items():
        out: list[list[int]] = []
        for start, end in sorted(spans):
            if out and start <= out[-1][1]:
                out[-1][1] = max(out[-1][1], end)
            else:
                out.append([start, end])
        merged[venue] = out, len(spans)
    return merged


def _presences(contacts: list[Contact], spans: dict[int, dict]
               ) -> dict[int, tuple[np.ndarray, ...]]:
    """Per venue, where the contacts provably were (their evidence, merged per person):
    columns start, end (int64) and person (uint64)."""
    columns: dict[int, tuple[list, list, list]] = defaultdict(lambda: ([], [], []))
    for c in contacts:
        for venue, (merged, _) in spans[c.person].items():
            starts, ends, persons = columns[venue]
            for start, end in merged:
                starts.append(start)
                ends.append(end)
                persons.append(c.person)
    return {venue: (np.array(s, np.int64), np.array(e, np.int64), np.array(p, np.uint64))
            for venue, (s, e, p) in columns.items()}


def _by_venue(presences: tuple[np.ndarray, ...], persons: set[int]
              ) -> dict[int, tuple[np.ndarray, ...]]:
    """Per venue, the presences of `persons` (columns start, end, person), as _presences
    gives them."""
    person, venue, start, end = presences
    mine = np.isin(person, np.fromiter(persons, np.uint64, len(persons)))
    person, venue, start, end = person[mine], venue[mine], start[mine], end[mine]
    order = np.argsort(venue, kind="stable")
    venues, first = np.unique(venue[order], return_index=True)
    bounds = [*first.tolist(), len(order)]
    return {int(v): (start[order[a:b]].astype(np.int64), end[order[a:b]].astype(np.int64),
                     person[order[a:b]].astype(np.uint64))
            for v, a, b in zip(venues.tolist(), bounds[:-1], bounds[1:], strict=True)}


def _sources(spans: dict, there: dict[int, tuple[np.ndarray, ...]]
             ) -> list[tuple[int, tuple[int, int, int]]]:
    """The level-above persons whose presences meet a contact's evidence (its `spans`)
    longest, at most MAX_SOURCES: [(person, (seconds together, venue, first common
    second))], longest first (ties: smaller person id first)."""
    found: dict[int, list[int]] = {}
    for venue, (merged, _) in spans.items():
        if venue not in there:
            continue
        starts, ends, persons = there[venue]
        for start, end in merged:
            lo = np.maximum(starts, start)
            common = np.minimum(ends, end) - lo
            hit = np.flatnonzero(common > 0)
            if hit.shape[0] > MAX_SOURCES:
                hit = hit[np.lexsort((persons[hit], -common[hit]))[:MAX_SOURCES]]
            for i in hit.tolist():
                person, seconds = int(persons[i]), int(common[i])
                if person in found:
                    found[person][0] += seconds
                else:
                    found[person] = [seconds, venue, int(lo[i])]
    best = sorted(found.items(), key=lambda item: (-item[1][0], item[0]))[:MAX_SOURCES]
    return [(person, tuple(value)) for person, value in best]


def clusters(g: nx.Graph, method: str = "components") -> list[set[int]]:
    """Groups of contacts (person ids), largest first, with the case left out.

    "components": persons connected through shared venues or exposures once the case is
    removed (the case joins everything). "louvain": Louvain communities of the same graph
    (seeded, so stable). Raises ValueError for another method.
    """
    case = person_node(g.graph["case"])
    rest = g.subgraph(n for n in g if n != case)
    if method == "components":
        groups = nx.connected_components(rest)
    elif method == "louvain":
        groups = nx.community.louvain_communities(rest, weight="minutes", seed=0)
    else:
        raise ValueError(f"unknown clustering method {method!r}")
    found = [{rest.nodes[n]["person"] for n in group if rest.nodes[n]["kind"] == "person"}
             for group in groups]
    return sorted((s for s in found if s), key=lambda s: (-len(s), min(s)))


def to_json(g: nx.Graph) -> dict:
    """The graph as a JSON-ready node-link dict."""
    return nx.node_link_data(g, edges="links")


def document(g: nx.Graph, format: str) -> bytes:
    """`g` as a document of `format` (one of FORMATS): node-link JSON (UTF-8), GraphML,
    or an SVG drawing (`svg_text`)."""
    if format == "json":
        return json.dumps(to_json(g), ensure_ascii=False).encode()
    if format == "graphml":
        buffer = io.BytesIO()
        nx.write_graphml(g, buffer)
        return buffer.getvalue()
    if format == "svg":
        return svg_text(g).encode()
    raise ValueError(f"unknown graph format {format!r} (one of {', '.join(FORMATS)})")


def write(g: nx.Graph, path: str | os.PathLike, format: str) -> None:
    """Write `document(g, format)` to `path`, readable by its owner only (mode 0600)."""
    body = document(g, format)
    with open_private(path) as fh:
        fh.write(body)


def drawn_part(g: nx.Graph, persons: int = MAX_DRAWN) -> nx.Graph:
    """The part of `g` a picture can show: the case, then contacts by level and by their
    minutes of contact, up to `persons` persons, and the venues linked to those kept."""
    people = [n for n, d in g.nodes(data=True) if d["kind"] == "person"]
    if len(people) <= persons:
        return g
    minutes = {n: sum(d.get("minutes", 0) for _, _, d in g.edges(n, data=True))
               for n in people}
    people.sort(key=lambda n: (g.nodes[n]["level"], -minutes[n], n))
    kept = set(people[:persons])
    kept |= {v for n in kept for v in g[n] if g.nodes[v]["kind"] == "venue"}
    return g.subgraph(kept)


def svg_text(g: nx.Graph, size: int = 900) -> str:
    """`g` drawn as a standalone SVG: persons coloured by level, venues as grey squares.

    A graph of more than MAX_DRAWN persons is drawn in part (`drawn_part`), with a line
    saying how many are shown: thousands of dots and their lines made a grey disc. The
    layout is NetworkX's spring layout (seeded) for up to 400 nodes and a shell layout by
    level beyond, where a spring layout is slow and unreadable anyway. Venues are named
    when there are at most MAX_NAMED of them, everything when the graph is small.
    """
    if len(g) == 0:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}"/>'
    total = sum(d["kind"] == "person" for _, d in g.nodes(data=True))
    g = drawn_part(g)
    shown = sum(d["kind"] == "person" for _, d in g.nodes(data=True))
    venues = sum(d["kind"] == "venue" for _, d in g.nodes(data=True))
    if len(g) <= 400:
        pos = nx.spring_layout(g, seed=0, weight=None)
    else:
        shells: dict[int, list[str]] = defaultdict(list)
        for n, data in g.nodes(data=True):
            shells[data.get("level", data.get("zone_level", 0)) * 2 + (data["kind"] == "venue")]\
                .append(n)
        pos = nx.shell_layout(g, [shells[k] for k in sorted(shells)])
    margin = 30
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    left, top = min(xs), min(ys)
    scale = (size - 2 * margin) / max(max(xs) - left, max(ys) - top, 1e-9)

    def at(n: str) -> tuple[float, float]:
        x, y = pos[n]
        return margin + (x - left) * scale, margin + (y - top) * scale

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
           f'viewBox="0 0 {size} {size}" font-family="sans-serif" font-size="10">',
           '<rect width="100%" height="100%" fill="white"/>']
    if shown < total:
        out.append(f'<text x="{margin}" y="18" font-size="12">{shown:,} of {total:,} persons '
                   'shown: the case, then by level and minutes of contact (the GraphML and '
                   'JSON hold all)</text>')
    for a, b, data in g.edges(data=True):
        (x1, y1), (x2, y2) = at(a), at(b)
        style = 'stroke="#444" stroke-width="1.5"' if data["kind"] == "exposure" else \
            'stroke="#bbb" stroke-width="1"'
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" {style}>'
                   f'<title>{data.get("minutes", 0)} min</title></line>')
    r = max(3.0, min(9.0, 200 / math.sqrt(len(g))))
    for n, data in g.nodes(data=True):
        x, y = at(n)
        if data["kind"] == "venue":
            label = data.get("name") or f"venue {data['venue']}"
            out.append(f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:.1f}" '
                       f'height="{2 * r:.1f}" fill="{VENUE_COLOUR}"><title>{escape(label)}'
                       f'</title></rect>')
        else:
            level = data["level"]
            colour = LEVEL_COLOURS[min(level, len(LEVEL_COLOURS) - 1)]
            label = f"F{level} {data['person']}"
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{colour}">'
                       f'<title>{escape(label)}</title></circle>')
        if len(g) <= 60 or (data["kind"] == "venue" and venues <= MAX_NAMED) or \
                data.get("level") == 0:
            out.append(f'<text x="{x + r + 2:.1f}" y="{y + 3:.1f}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)
