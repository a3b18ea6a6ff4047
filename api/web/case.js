// One case: counts, the narrow zones against a village lockdown, the zones on a
// timeline, the contact graph, F1 and F2 with their evidence, exports, and the printable
// order (shown only by the print stylesheet). Uses the helpers of app.js (window.QrApp).
"use strict";

(function () {
  const App = window.QrApp;
  const { state, t, h, label, table } = App;
  const ROWS = 100;            // contacts listed before "show all"
  const GRAPH_PERSONS = 400;   // persons drawn in the graph (the GraphML file has all)
  const $ = (id) => document.getElementById(id);

  const view = { id: null, exposure: null, graph: null, showAll: {}, venues: new Map() };

  function venueOf(id) {
    return view.venues.get(id) || { venue: id, name: "", village: "", commune: "", district: "" };
  }
  function venueLabel(id) {
    const v = venueOf(id);
    const name = v.name || `#${id}`;
    return v.village ? `${name} (${v.village})` : name;
  }

  async function openCase(id) {
    if (view.id !== id) {
      view.id = id;
      view.exposure = null;
      view.graph = null;
      view.showAll = {};
      $("case-body").hidden = true;
      $("case-meta").replaceChildren();
      label($("case-heading"), "case_title", { id });
    } else if (view.exposure) {
      render();
    }
    App.setStatus("loading");
    try {
      const exposure = await App.getJson(`/v1/cases/${id}/exposure?limit=50000`);
      if (view.id !== id) return;
      view.exposure = exposure;
      view.venues = new Map(exposure.venues.map((v) => [v.venue, v]));
      render();
      // The graph after the exposure: the server traces once and both share it.
      const graph = await App.getJson(`/v1/cases/${id}/graph?format=json`);
      if (view.id !== id) return;
      view.graph = graph;
      renderGraph();
      App.setStatus("loaded");
    } catch (err) {
      if (view.id === id) App.fail(err);
    }
  }

  function render() {
    if (!view.exposure) return;
    const { case: c, counts, rule } = view.exposure;
    label($("case-heading"), "case_title", { id: c.id });
    $("case-meta").replaceChildren(
      h("li", { text: t("case_person", { person: c.person }) }),
      h("li", { text: t("case_window", { from: App.fmtTime(c.from), to: App.fmtTime(c.to) }) +
        ` (${App.tzName()})` }),
      h("li", { text: t("case_purpose", { purpose: c.purpose }) }),
      h("li", { text: t("case_jurisdiction", { jurisdiction: c.jurisdiction }) }),
      // no zone of the case's own presence: the trace is empty because the person was
      // seen nowhere in the window, not because nobody met them
      ...(view.exposure.zones.some((z) => z.level === 0) ? []
        : [h("li", { id: "case-unseen", class: "warning", text: t("case_unseen") })]));
    $("count-f1").textContent = App.fmtNumber(counts.f1 || 0);
    $("count-f2").textContent = App.fmtNumber(beyondF1(counts).total);
    $("count-f2-levels").textContent = beyondF1(counts).levels;
    $("count-zones").textContent = App.fmtNumber(counts.zones || 0);
    $("rule-line").textContent = t("rule_line", { min: Math.round(rule.min_overlap / 60),
      linger: Math.round(rule.linger / 60), depth: rule.depth });
    renderComparison();
    renderZones();
    renderContacts(1, $("f1"));
    renderContacts(2, $("f2"));
    renderOrder();
    $("case-body").hidden = false;
    if (view.graph) renderGraph();
  }

  // Contacts below F1 (F2, and F3... with a deeper rule): all of them are tested, in one
  // box and one list; `levels` names each level's count when there are several.
  function beyondF1(counts) {
    const levels = Object.keys(counts).filter((k) => /^f\d+$/.test(k) && k !== "f1")
      .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
    const total = levels.reduce((sum, k) => sum + counts[k], 0);
    const named = levels.filter((k) => counts[k] > 0);
    return { total, levels: named.length > 1 ? named.map((k) =>
      `${k.toUpperCase()}: ${App.fmtNumber(counts[k])}`).join(", ") : "" };
  }

  function renderComparison() {
    const { narrow, village } = view.exposure.comparison;
    const dash = "—";
    const persons = narrow.quarantine + narrow.test;
    const rows = [
      [t("cmp_persons"), App.fmtNumber(persons), App.fmtNumber(village.persons)],
      [t("cmp_quarantine"), App.fmtNumber(narrow.quarantine), dash],
      [t("cmp_test"), App.fmtNumber(narrow.test), dash],
      [t("cmp_venues"), App.fmtNumber(narrow.venues), App.fmtNumber(village.venues)],
      [t("cmp_villages"), dash, village.villages.join(", ") || dash],
      [t("cmp_zone_hours"), App.fmtNumber(narrow.zone_hours), dash],
    ];
    table($("comparison"), [{ key: "cmp_measure" }, { key: "cmp_narrow", num: true },
      { key: "cmp_village", num: true }], rows, (i) => (i === 0 ? "total" : null));
    const saved = village.persons - persons;
    $("compare-saved").textContent = saved > 0 ? t("cmp_saved", { n: App.fmtNumber(saved) }) : "";
  }

  function zonesInOrder() {
    return [...view.exposure.zones].sort((a, b) => a.level - b.level || a.start - b.start ||
      a.venue - b.venue);
  }

  function renderZones() {
    const zones = view.exposure.zones;
    const box = $("timeline");
    if (!zones.length) {
      box.replaceChildren(h("p", { text: t("zones_empty") }));
      $("zones-table").replaceChildren();
      return;
    }
    box.replaceChildren(window.QrCharts.timeline(zones, venueOf, App.fmt()));
    table($("zones-table"), [{ key: "col_venue" }, { key: "col_village" }, { key: "col_level" },
      { key: "col_from" }, { key: "col_to" }, { key: "col_exposed", num: true }],
    zonesInOrder().map((z) => [venueOf(z.venue).name || `#${z.venue}`, venueOf(z.venue).village,
      t(z.level === 0 ? "order_action0" : "order_action1"), App.fmtTime(z.start),
      App.fmtTime(z.end), App.fmtNumber(z.exposed)]));
  }

  function evidenceList(evidence) {
    return h("ul", {}, ...evidence.map((e) => h("li", {
      text: `${venueLabel(e.venue)}: ${App.fmtRange(e.start, e.end)}, ` +
        t("minutes", { n: App.fmtNumber(Math.round(e.minutes)) }) })));
  }

  function renderContacts(level, box) {
    const list = view.exposure.contacts
      .filter((c) => (level === 1 ? c.level === 1 : c.level >= 2))
      .sort((a, b) => a.level - b.level || a.exposed_at - b.exposed_at ||
        App.compareIds(a.person, b.person));
    if (!list.length) {
      box.replaceChildren(h("p", { text: t("contacts_empty") }));
      return;
    }
    const shown = view.showAll[level] ? list : list.slice(0, ROWS);
    const el = h("table", { class: "data contacts-table", "data-level": level });
    table(el, [{ key: "col_contact" }, { key: "col_exposed_at" }, { key: "col_evidence" }],
      shown.map((c) => [
        h("span", {}, t("person_label", { id: c.person }),
          c.level > 2 ? h("span", { class: "badge l2", text: ` F${c.level}` }) : null),
        App.fmtTime(c.exposed_at), evidenceList(c.evidence)]));
    const parts = [h("div", { class: "scroll" }, el)];
    if (shown.length < list.length) {
      const more = h("button", { type: "button", class: "link",
        text: t("show_all", { n: App.fmtNumber(list.length) }) });
      more.addEventListener("click", () => {
        view.showAll[level] = true;
        renderContacts(level, box);
      });
      parts.push(more);
    }
    box.replaceChildren(...parts);
  }

  function renderGraph() {
    if (!view.graph) return;
    const drawn = window.QrCharts.graph(view.graph, App.fmt(), GRAPH_PERSONS);
    $("graph").replaceChildren(drawn.svg);
    const note = $("graph-note");
    if (drawn.shown < drawn.total) {
      label(note, "graph_too_big", { shown: App.fmtNumber(drawn.shown),
        total: App.fmtNumber(drawn.total) });
      note.hidden = false;
    } else {
      note.hidden = true;
    }
  }

  // ---- the printable order ----------------------------------------------------------------

  function placeOf(c) {
    const [district, commune] = c.jurisdiction.split("/");
    const zoneVenue = view.exposure.zones.length ? venueOf(view.exposure.zones[0].venue) : {};
    return { district: district || zoneVenue.district || "",
      commune: commune || zoneVenue.commune || "" };
  }

  function orderTable(zones, first) {
    const el = h("table", { class: "order-zones" });
    table(el, [{ key: "col_no" }, { key: "col_venue" }, { key: "col_village" },
      { key: "col_level" }, { key: "col_from" }, { key: "col_to" },
      { key: "col_exposed", num: true }],
    zones.map((z, i) => [String(first + i), venueOf(z.venue).name || `#${z.venue}`,
      venueOf(z.venue).village, t(z.level === 0 ? "order_action0" : "order_action1"),
      App.fmtTime(z.start), App.fmtTime(z.end), App.fmtNumber(z.exposed)]));
    return el;
  }

  function renderOrder() {
    const { case: c, counts } = view.exposure;
    const place = placeOf(c);
    const tz = App.tzName();
    const zones = zonesInOrder();
    const close = zones.filter((z) => z.level === 0);
    const test = zones.filter((z) => z.level > 0);
    const sign = (key) => h("div", {}, h("p", { class: "strong", text: t(key) }),
      h("p", { class: "hint", text: t("order_sign_hint") }));
    $("print-order").replaceChildren(
      h("div", { class: "order-head" },
        h("div", {},
          h("p", { class: "authority", text: t("order_authority", { commune: place.commune }) }),
          h("p", { class: "authority strong", text: t("order_station") })),
        h("div", {},
          h("p", { class: "nation", text: t("order_nation") }),
          h("p", { class: "motto", text: t("order_motto") }))),
      h("h1", { text: t("order_title") }),
      place.commune ? h("p", { text: t("order_commune", { commune: place.commune }) }) : null,
      place.district ? h("p", { text: t("order_district", { district: place.district }) }) : null,
      h("p", { text: t("order_case", { id: c.id, person: c.person }) }),
      h("p", { text: t("order_window", { from: App.fmtTime(c.from), to: App.fmtTime(c.to), tz }) }),
      h("p", { text: t("order_counts", { f1: App.fmtNumber(counts.f1 || 0),
        f2: App.fmtNumber(beyondF1(counts).total) }) +
        (beyondF1(counts).levels ? ` (${beyondF1(counts).levels})` : "") }),
      h("p", { text: $("rule-line").textContent }),
      h("h2", { text: t("order_part0", { n: close.length }) }),
      close.length ? orderTable(close, 1) : h("p", { text: t("zones_empty") }),
      test.length ? h("h2", { text: t("order_part1", { n: test.length }) }) : null,
      test.length ? orderTable(test, close.length + 1) : null,
      h("p", { text: t("order_made", { time: App.fmtTime(Math.floor(Date.now() / 1000)), tz }) }),
      h("div", { class: "signatures" }, sign("order_sign_maker"), sign("order_sign_health"),
        sign("order_sign_chair")));
  }

  function wireExports() {
    const exportButton = (id, path, name) => {
      $(id).addEventListener("click", (event) => App.busy(event.currentTarget,
        () => App.download(`/v1/cases/${view.id}/${path}`, `case-${view.id}-${name}`)));
    };
    exportButton("export-contacts", "export.csv?part=contacts", "contacts.csv");
    exportButton("export-zones", "export.csv?part=zones", "zones.csv");
    exportButton("export-graphml", "graph?format=graphml", "graph.graphml");
    $("close-case-button").addEventListener("click", (event) => {
      if (!view.id || !window.confirm(t("close_case_confirm", { id: view.id }))) return;
      const id = view.id;
      App.busy(event.currentTarget, async () => {
        await App.request(`/v1/cases/${id}/close`, { method: "POST" });
        state.cases = null;
        App.setStatus("case_closed", { id });
        view.id = null;  // shown again from the server: a closed case shows nothing more
        openCase(id);
      });
    });
    $("print-order-button").addEventListener("click", () => {
      if (!view.exposure) return;
      renderOrder();
      window.print();
    });
  }

  state.renderers.openCase = openCase;
  state.renderers.case = () => { render(); renderGraph(); };
  state.resets.push(() => {
    Object.assign(view, { id: null, exposure: null, graph: null, showAll: {}, venues: new Map() });
    $("case-body").hidden = true;
    $("print-order").replaceChildren();
  });
  document.addEventListener("DOMContentLoaded", wireExports);
})();
