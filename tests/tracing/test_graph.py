"""The contact graph is built from a TraceResult (and the contacts' presences) and exports
cleanly."""

from __future__ import annotations

import json

import networkx as nx

from tracing import graph
from tracing.model import Contact, ContactRule, Evidence, TraceResult, Zone

T = 1_638_318_600  # 2021-12-01 07:30 +07:00


def _result() -> TraceResult:
    # Case 1 at venue 10 from T to T+1h; persons 2 and 3 there (F1). Person 4 met some
    # F1 at venue 20 later (the result cannot say whom); person 5 was at venue 10 while
    # 2 and 3 were (their evidence intervals meet 5's).
    return TraceResult(
        case=1, window_from=T - 3600, window_to=T + 86400, rule=ContactRule(),
        contacts=(
            Contact(2, 1, T + 600, (Evidence(10, T + 600, T + 3600),)),
            Contact(3, 1, T, (Evidence(10, T, T + 1800),)),
            Contact(4, 2, T + 7200, (Evidence(20, T + 7200, T + 9000),)),
            Contact(5, 2, T + 1200, (Evidence(10, T + 1200, T + 2400),)),
        ),
        zones=(Zone(10, 0, T, T + 3600, 2), Zone(20, 1, T + 7000, T + 9000, 1),
               Zone(10, 1, T, T + 3600, 1)),
    )


def test_nodes_have_levels_and_the_case_its_venues():
    g = graph.contact_graph(_result(), venue_names={10: "Chợ 10"})
    assert g.nodes["p1"]["level"] == 0
    assert {g.nodes[f"p{p}"]["level"] for p in (2, 3)} == {1}
    assert {g.nodes[f"p{p}"]["level"] for p in (4, 5)} == {2}
    assert g.nodes["v10"]["name"] == "Chợ 10"
    assert g.nodes["v10"]["zone_level"] == 0 and g.nodes["v20"]["zone_level"] == 1
    assert g.edges["p1", "v10"]["kind"] == "visit"
    assert g.edges["p1", "v10"]["minutes"] == 60
    assert g.edges["p2", "v10"]["minutes"] == 50


def test_exposure_edges_only_where_the_evidence_proves_them():
    g = graph.contact_graph(_result())
    assert g.edges["p1", "p2"]["kind"] == "exposure"
    assert g.edges["p1", "p3"]["kind"] == "exposure"
    # 5's evidence at venue 10 (T+20..T+40 min) meets 2's and 3's evidence there.
    assert g.has_edge("p3", "p5") and g.has_edge("p2", "p5")
    assert g.edges["p3", "p5"]["minutes"] == 10  # T+20..T+30 min
    # Nobody's evidence at venue 20 names who exposed 4: it hangs from the venue.
    assert not any(g.edges[e]["kind"] == "exposure" for e in g.edges("p4"))
    assert g.has_edge("p4", "v20")


def test_clusters_leave_the_case_out():
    g = graph.contact_graph(_result())
    groups = graph.clusters(g)
    assert groups == [{2, 3, 5}, {4}]
    assert set().union(*graph.clusters(g, "louvain")) == {2, 3, 4, 5}


def test_empty_result_is_the_case_alone():
    empty = TraceResult(case=7, window_from=0, window_to=10, rule=ContactRule(),
                        contacts=(), zones=())
    g = graph.contact_graph(empty)
    assert list(g.nodes) == ["p7"]
    assert graph.clusters(g) == []


def test_exports_round_trip(tmp_path):
    g = graph.contact_graph(_result(), venue_names={10: "Chợ <10> & co"})
    graph.write(g, tmp_path / "g.graphml", "graphml")
    back = nx.read_graphml(tmp_path / "g.graphml")
    assert set(back.nodes) == set(g.nodes) and back.number_of_edges() == g.number_of_edges()
    graph.write(g, tmp_path / "g.json", "json")
    data = json.loads((tmp_path / "g.json").read_text(encoding="utf-8"))
    assert {n["id"] for n in data["nodes"]} == set(g.nodes)
    graph.write(g, tmp_path / "g.svg", "svg")
    svg = (tmp_path / "g.svg").read_text(encoding="utf-8")
    assert svg.startswith("<svg") and "Chợ &lt;10&gt; &amp; co" in svg


def test_exports_are_readable_by_their_owner_only(tmp_path):
    """A contact graph names persons and where they were: its files are 0600, also when
    they replace a file others could read."""
    g = graph.contact_graph(_result())
    for format in graph.FORMATS:
        path = tmp_path / f"g.{format}"
        path.write_text("old")
        path.chmod(0o644)
        graph.write(g, path, format)
        assert path.stat().st_mode & 0o777 == 0o600, format
        assert path.read_text(encoding="utf-8") != "old"


def test_a_crowded_venue_gives_each_contact_its_longest_sources_only():
    # 60 F1s and 60 F2s in one market hall, arriving a minute apart: every F2 met dozens
    # of F1s there; its exposure edges come from the MAX_SOURCES it spent longest with.
    f1 = [Contact(100 + i, 1, T + 60 * i, (Evidence(10, T + 60 * i, T + 60 * i + 3600),))
          for i in range(60)]
    f2 = [Contact(500 + j, 2, T + 3700 + 60 * j,
                  (Evidence(10, T + 3700 + 60 * j, T + 5400 + 60 * j),
                   Evidence(10, T + 3900 + 60 * j, T + 5000 + 60 * j)))  # one overlaps
          for j in range(60)]
    result = TraceResult(case=1, window_from=T, window_to=T + 86400, rule=ContactRule(),
                         contacts=(*f1, *f2), zones=(Zone(10, 0, T, T + 3600, 1),))
    g = graph.contact_graph(result)
    for c in f2:
        (start, end), = {(min(e.start for e in c.evidence), max(e.end for e in c.evidence))}
        together = {a.person: min(end, a.evidence[0].end) - max(start, a.evidence[0].start)
                    for a in f1}
        expected = sorted((p for p, s in together.items() if s > 0),
                          key=lambda p: (-together[p], p))[:graph.MAX_SOURCES]
        sources = {int(n[1:]) for n in g.neighbors(f"p{c.person}")
                   if g.edges[n, f"p{c.person}"]["kind"] == "exposure"}
        assert sources == set(expected)
        for p in expected:
            assert g.edges[f"p{p}", f"p{c.person}"]["minutes"] == round(together[p] / 60, 2)
        # the visit counts the overlapping evidence once
        assert g.edges[f"p{c.person}", "v10"]["minutes"] == round((end - start) / 60, 2)
        assert g.edges[f"p{c.person}", "v10"]["overlaps"] == 2


def test_with_the_contacts_presences_every_f2_hangs_from_the_f1_it_met(tmp_path):
    """A review's hand example: F2 persons met an F1 at another venue after the F1's
    exposure, where no evidence meets evidence; only the F1's presences say whom."""
    import numpy as np

    from tracing import CheckinIndex
    from tracing.shards import contact_presences

    rows = [  # person, venue, check-in, check-out (seconds after T)
        (1, 1, 0, 3600),          # the case
        (2, 1, 3000, 5400),       # F1: 10 minutes with the case
        (4, 1, 3600, 6000),       # F2 through 2 at venue 1, after the case left
        (2, 2, 7200, 10800),      # 2 at a shop later
        (8, 2, 9000, 12000),      # F2 through 2 at the shop
        (9, 2, 9000, 12000),      # and another
    ]
    person, venue, t_in, t_out = (np.array(c, np.int64) for c in zip(*rows, strict=True))
    with CheckinIndex.open(tmp_path / "index") as index:
        index.append(person.astype(np.uint64), venue.astype(np.uint64), T + t_in, T + t_out)
        result = index.trace(1, T, T + 86400, ContactRule(depth=2))
        presences = contact_presences([index.snapshot()], result)
    assert {(c.person, c.level) for c in result.contacts} == {(2, 1), (4, 2), (8, 2), (9, 2)}
    alone = graph.contact_graph(result)
    g = graph.contact_graph(result, presences=presences)
    exposures = {(a, b) if g.edges[a, b]["source"] == a else (b, a)
                 for a, b in g.edges if g.edges[a, b]["kind"] == "exposure"}
    assert exposures == {("p1", "p2"), ("p2", "p4"), ("p2", "p8"), ("p2", "p9")}
    assert g.edges["p2", "p8"]["venue"] == 2 and g.edges["p2", "p8"]["minutes"] == 30
    assert not alone.has_edge("p2", "p8")  # evidence alone cannot say it


def test_a_large_graph_is_drawn_in_part_and_says_so():
    """A case of 3,568 persons drew as a grey disc of lines. The picture keeps the case,
    then contacts by level and minutes, up to MAX_DRAWN persons, and says so."""
    g = nx.Graph()
    g.add_node("p0", kind="person", person=0, level=0)
    g.add_node("v1", kind="venue", venue=1, name="Chợ", zone_level=0)
    g.add_edge("p0", "v1", kind="visit", minutes=60)
    for p in range(1, 1001):
        g.add_node(f"p{p}", kind="person", person=p, level=1 if p <= 300 else 2)
        g.add_edge(f"p{p}", "v1", kind="visit", minutes=p % 50)
    part = graph.drawn_part(g)
    levels = [d["level"] for _, d in part.nodes(data=True) if d["kind"] == "person"]
    assert len(levels) == graph.MAX_DRAWN and levels.count(0) == 1 and levels.count(1) == 300
    svg = graph.svg_text(g)
    assert f"{graph.MAX_DRAWN:,} of 1,001 persons shown" in svg and ">Chợ</text>" in svg
    assert svg.count("<circle") == graph.MAX_DRAWN
    assert "persons shown" not in graph.svg_text(graph.drawn_part(g))  # small enough: whole
