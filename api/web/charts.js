// Drawings of the officials' page, as SVG elements built from the API's JSON:
//   QrCharts.timeline(zones, venueOf, fmt)  the zones on a timeline, one row per venue
//   QrCharts.graph(doc, fmt, maxPersons)    the contact graph in rings around the case
//   QrCharts.adoption(report, fmt)          check-ins per day by village (lines)
// `fmt` gives the labels and times in the page's language and time zone (see app.js).
// Only presentation attributes are set (never a style attribute): the page's
// Content-Security-Policy allows no inline style, and a downloaded SVG stays standalone.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  // The colours of tracing/graph.py: the case, F1, F2, F3, F4; venues grey.
  const LEVEL_COLOURS = ["#d62728", "#ff7f0e", "#c9a400", "#2ca02c", "#1f77b4"];
  const VENUE_COLOUR = "#7f7f7f";
  const ZONE_COLOURS = ["#d62728", "#ff9a3c"];
  const SERIES = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
  const HOUR = 3600;

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function shorten(text, max) {
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  function root(width, height, label) {
    const el = svg("svg", {
      xmlns: NS, width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": label, "font-family": "system-ui, 'Segoe UI', Roboto, Arial, sans-serif",
      "font-size": 12,
    });
    el.append(svg("title", {}, label));
    el.append(svg("rect", { x: 0, y: 0, width, height, fill: "#ffffff" }));
    return el;
  }

  // ---- the zones on a timeline ---------------------------------------------------

  // Two drawings of one width: the axis (dates, hours) and the rows, so that the page
  // can keep the axis in view while the rows scroll under it.
  function timeline(zones, venueOf, fmt) {
    const byVenue = new Map();
    for (const z of zones) {
      if (!byVenue.has(z.venue)) byVenue.set(z.venue, []);
      byVenue.get(z.venue).push(z);
    }
    // Venues where the case itself was come first, each group by its earliest hour.
    const rows = [...byVenue.entries()].map(([venue, list]) => ({
      venue, list,
      level: Math.min(...list.map((z) => z.level)),
      first: Math.min(...list.map((z) => z.start)),
    })).sort((a, b) => a.level - b.level || a.first - b.first || a.venue - b.venue);
    const off = fmt.offset;
    const t0 = Math.floor((Math.min(...zones.map((z) => z.start)) + off) / HOUR) * HOUR - off;
    const t1 = Math.ceil((Math.max(...zones.map((z) => z.end)) + off) / HOUR) * HOUR - off;
    const hours = Math.max(1, (t1 - t0) / HOUR);
    const perHour = Math.min(40, Math.max(4, 960 / hours));
    const labelW = 240, axisH = 42, rowH = 24, pad = 28;
    const width = Math.round(labelW + hours * perHour + pad);
    const height = rows.length * rowH + 8;
    const x = (t) => labelW + ((t - t0) / HOUR) * perHour;
    const axis = root(width, axisH, fmt.t("timeline_label"));
    axis.setAttribute("class", "timeline-axis");
    axis.setAttribute("aria-hidden", "true");
    const el = root(width, height, fmt.t("timeline_label"));
    el.setAttribute("class", "timeline");
    rows.forEach((row, i) => {
      if (i % 2 === 1) {
        el.append(svg("rect", { x: 0, y: i * rowH, width, height: rowH, fill: "#f3f5f7" }));
      }
    });
    // Hour ticks; labelled every `step` hours; days marked by a line and their date.
    const step = [1, 2, 3, 6, 12, 24].find((s) => s * perHour >= 34) || 24;
    const firstMidnight = Math.ceil((t0 + off) / 86400) * 86400 - off;
    for (let t = t0; t <= t1; t += HOUR) {
      const hour = Math.round((((t + off) % 86400) + 86400) % 86400 / HOUR);
      const xx = x(t);
      const day = hour === 0;
      const line = { x1: xx, x2: xx, stroke: day ? "#8a949e" : "#e1e5ea",
        "stroke-width": day ? 1.2 : 0.6 };
      axis.append(svg("line", { ...line, y1: day ? 2 : axisH - 6, y2: axisH }));
      el.append(svg("line", { ...line, y1: 0, y2: height }));
      // the first partial day is named too, unless the next date would overlap it
      if (day || (t === t0 && x(firstMidnight) - xx > 48)) {
        axis.append(svg("text", { x: xx + 3, y: 13, fill: "#222", "font-weight": "bold" },
          fmt.day(t)));
      }
      if (hour % step === 0) {
        axis.append(svg("text", { x: xx, y: axisH - 10, fill: "#444", "text-anchor": "middle",
          "font-size": 10 }, String(hour).padStart(2, "0") + "h"));
      }
    }
    rows.forEach((row, i) => {
      const y = i * rowH;
      const venue = venueOf(row.venue);
      const name = venue.name || `#${row.venue}`;
      const label = venue.village ? `${name} (${venue.village})` : name;
      el.append(svg("text", { x: 6, y: y + 16, fill: "#111", class: "venue-label" },
        svg("title", {}, label), shorten(label, 34)));
      for (const z of row.list) {
        const lane = Math.min(z.level, 1);
        const x0 = x(z.start);
        const tip = fmt.t("zone_tip", { venue: label, from: fmt.time(z.start),
          to: fmt.time(z.end), exposed: z.exposed }) + " — " +
          fmt.t(lane === 0 ? "zone_level0" : "zone_level1");
        el.append(svg("rect", {
          x: x0, y: y + 3 + lane * 9, width: Math.max(2, x(z.end) - x0), height: 8, rx: 2,
          fill: ZONE_COLOURS[lane], class: `bar l${lane}`,
        }, svg("title", {}, tip)));
      }
    });
    for (const part of [axis, el]) {
      part.append(svg("line", { x1: labelW, x2: labelW, y1: part === axis ? axisH - 6 : 0,
        y2: part === axis ? axisH : height, stroke: "#8a949e" }));
    }
    const box = document.createElement("div");
    box.className = "timeline-box";
    const head = document.createElement("div");
    head.className = "timeline-head";
    head.append(axis);
    box.append(head, el);
    return box;
  }

  // ---- the contact graph -----------------------------------------------------------

  function personLevel(node) {
    return node.level === undefined ? 0 : node.level;
  }

  // Keep the case, then contacts by level and by their minutes of contact, up to `max`
  // persons; venues stay when a kept person is linked to them.
  function prune(doc, max) {
    const persons = doc.nodes.filter((n) => n.kind === "person");
    if (persons.length <= max) return { nodes: doc.nodes, links: doc.links, total: persons.length };
    const minutes = new Map();
    for (const l of doc.links) {
      for (const id of [l.source, l.target]) {
        minutes.set(id, (minutes.get(id) || 0) + (l.minutes || 0));
      }
    }
    persons.sort((a, b) => personLevel(a) - personLevel(b) ||
      (minutes.get(b.id) || 0) - (minutes.get(a.id) || 0));
    const kept = new Set(persons.slice(0, max).map((n) => n.id));
    const isVenue = new Set(doc.nodes.filter((n) => n.kind === "venue").map((n) => n.id));
    const links = doc.links.filter((l) => (kept.has(l.source) || isVenue.has(l.source)) &&
      (kept.has(l.target) || isVenue.has(l.target)));
    const linkedVenues = new Set();
    for (const l of links) {
      if (isVenue.has(l.source) && kept.has(l.target)) linkedVenues.add(l.source);
      if (isVenue.has(l.target) && kept.has(l.source)) linkedVenues.add(l.target);
    }
    const nodes = doc.nodes.filter((n) => kept.has(n.id) || linkedVenues.has(n.id));
    const ids = new Set(nodes.map((n) => n.id));
    return { nodes, links: links.filter((l) => ids.has(l.source) && ids.has(l.target)),
      total: persons.length };
  }

  // Ring of a node: the case 0, venues of level-k zones 2k+1, level-k persons 2k.
  function rings(nodes, neighbours) {
    const ring = new Map();
    for (const n of nodes) {
      if (n.kind === "person") ring.set(n.id, 2 * personLevel(n));
    }
    for (const n of nodes) {
      if (n.kind !== "venue") continue;
      if (n.zone_level >= 0) {
        ring.set(n.id, 2 * n.zone_level + 1);
      } else {
        const levels = (neighbours.get(n.id) || []).map((m) => ring.get(m))
          .filter((r) => r !== undefined);
        ring.set(n.id, Math.max(1, (levels.length ? Math.min(...levels) : 2) - 1));
      }
    }
    return ring;
  }

  // A radial tree: each node hangs from one neighbour of the ring inside (its parent:
  // the neighbour with the most minutes together), and every parent gets a wedge of the
  // circle growing with the leaves below it, so that a venue's contacts sit beyond it.
  function layout(nodes, links) {
    const neighbours = new Map(nodes.map((n) => [n.id, []]));
    for (const l of links) {
      neighbours.get(l.source).push([l.target, l.minutes || 0]);
      neighbours.get(l.target).push([l.source, l.minutes || 0]);
    }
    const ring = rings(nodes, new Map([...neighbours].map(([k, v]) => [k, v.map((e) => e[0])])));
    // A venue of a level-1 zone has no line to the F1 who was there (the graph joins a
    // person only to the venues of their own exposure), but an F1-to-F2 exposure names
    // its venue: that F1 is the venue's parent.
    for (const l of links) {
      const venue = `v${l.venue}`;
      if (l.kind !== "exposure" || !neighbours.has(venue)) continue;
      const upper = ring.get(l.source) < ring.get(l.target) ? l.source : l.target;
      neighbours.get(venue).push([upper, l.minutes || 0]);
    }
    const rootNode = nodes.find((n) => ring.get(n.id) === 0);
    const children = new Map(nodes.map((n) => [n.id, []]));
    for (const n of nodes) {
      if (n === rootNode) continue;
      const r = ring.get(n.id);
      let parent = null, best = -1, parentRing = -1;
      for (const [m, minutes] of neighbours.get(n.id)) {
        const mr = ring.get(m);
        if (mr >= r) continue;
        // the nearest ring inside first, then the longest time together
        if (mr > parentRing || (mr === parentRing && minutes > best)) {
          parent = m; best = minutes; parentRing = mr;
        }
      }
      children.get(parent === null ? rootNode.id : parent).push(n.id);
    }
    const leaves = new Map();
    const countLeaves = (id) => {
      const kids = children.get(id);
      const n = kids.length ? kids.reduce((sum, k) => sum + countLeaves(k), 0) : 1;
      leaves.set(id, n);
      return n;
    };
    countLeaves(rootNode.id);
    const perRing = new Map();
    for (const n of nodes) perRing.set(ring.get(n.id), (perRing.get(ring.get(n.id)) || 0) + 1);
    const radii = new Map([[0, 0]]);
    let radius = 0;
    for (const r of [...perRing.keys()].filter((k) => k > 0).sort((a, b) => a - b)) {
      const spacing = r % 2 === 1 ? 15 : 11;
      // a ring of leaves needs room for each; a ring of parents only a clear gap
      radius = Math.max(radius + (r === 1 ? 150 : 80), (perRing.get(r) * spacing) / (2 * Math.PI));
      radii.set(r, radius);
    }
    const pos = new Map();
    const place = (id, from, to) => {
      const a = (from + to) / 2;
      const r = radii.get(ring.get(id));
      pos.set(id, [r * Math.cos(a), r * Math.sin(a)]);
      let start = from;
      const kids = children.get(id).sort((p, q) => leaves.get(q) - leaves.get(p) || (p < q ? -1 : 1));
      const total = kids.reduce((sum, k) => sum + leaves.get(k), 0);
      // Half the wedge by leaves, half shared equally among the children on the next ring
      // (a small branch keeps some room); nodes that hang here only for want of a line
      // inward (a venue whose F1 is not named) get room by leaves alone.
      const direct = kids.filter((k) => ring.get(k) === ring.get(id) + 1).length;
      for (const k of kids) {
        const equal = ring.get(k) === ring.get(id) + 1 ? 1 / direct : 0;
        const share = direct ? 0.5 * (leaves.get(k) / total) + 0.5 * equal : leaves.get(k) / total;
        const width = (to - from) * share;
        place(k, start, start + width);
        start += width;
      }
    };
    place(rootNode.id, -Math.PI / 2, (3 * Math.PI) / 2);
    return { pos, radius };
  }

  function graph(doc, fmt, maxPersons) {
    const { nodes, links, total } = prune(doc, maxPersons || 400);
    const { pos, radius } = layout(nodes, links);
    const margin = 40;
    const size = Math.round(2 * (radius + margin));
    const c = size / 2;
    const persons = nodes.filter((n) => n.kind === "person").length;
    const venues = nodes.length - persons;
    const el = root(size, size, fmt.t("graph_label", { persons: total, venues }));
    el.setAttribute("class", "contact-graph");
    el.setAttribute("width", "100%");
    el.removeAttribute("height");
    const levelOf = new Map(nodes.map((n) => [n.id, n.kind === "person" ? personLevel(n) : -1]));
    // Lines join a person to the venues they shared (coloured by the person's level); the
    // person-to-person exposures run through those venues, so they are not drawn twice.
    const edges = svg("g", { class: "edges", "stroke-width": 0.8 });
    for (const l of links) {
      if (l.kind === "exposure") continue;
      const [x1, y1] = pos.get(l.source);
      const [x2, y2] = pos.get(l.target);
      const level = Math.max(levelOf.get(l.source), levelOf.get(l.target));
      edges.append(svg("line", {
        x1: x1 + c, y1: y1 + c, x2: x2 + c, y2: y2 + c,
        stroke: LEVEL_COLOURS[Math.min(level, 4)], "stroke-opacity": level === 0 ? 0.7 : 0.3,
        class: "edge visit",
      }));
    }
    el.append(edges);
    const drawn = svg("g", { class: "nodes" });
    const labels = svg("g", { class: "labels" });
    const namedVenues = nodes.filter((n) => n.kind === "venue" && n.zone_level === 0).length;
    for (const n of nodes) {
      const [px, py] = pos.get(n.id);
      const x = px + c, y = py + c;
      if (n.kind === "person") {
        const level = personLevel(n);
        const name = level === 0 ? fmt.t("legend_f0") : `F${level}`;
        drawn.append(svg("circle", {
          cx: x, cy: y, r: level === 0 ? 11 : 5, fill: LEVEL_COLOURS[Math.min(level, 4)],
          stroke: "#ffffff", "stroke-width": 1, class: `node person level-${level}`,
          "data-person": n.person,
        }, svg("title", {}, `${name} · ${fmt.t("person_label", { id: n.person })}`)));
        if (level === 0) {
          labels.append(svg("text", { x, y: y + 4, "text-anchor": "middle", fill: "#ffffff",
            "font-weight": "bold", "font-size": 10 }, "F0"));
        }
      } else {
        const name = n.name || `#${n.venue}`;
        drawn.append(svg("rect", {
          x: x - 5, y: y - 5, width: 10, height: 10, fill: VENUE_COLOUR,
          stroke: n.zone_level === 0 ? LEVEL_COLOURS[0] : "#ffffff",
          "stroke-width": n.zone_level === 0 ? 2 : 1, class: "node venue",
        }, svg("title", {}, name)));
        if (n.zone_level === 0 && namedVenues <= 24) {
          // the name on the outer side of the square, away from the case
          const right = px >= 0;
          labels.append(svg("text", { x: right ? x + 9 : x - 9, y: y + (py >= 0 ? 14 : -6),
            fill: "#333", "font-size": 11, "text-anchor": right ? "start" : "end" },
          shorten(name, 26)));
        }
      }
    }
    el.append(drawn, labels);
    return { svg: el, shown: persons, total };
  }

  // ---- adoption: check-ins per day by village ---------------------------------------

  function niceMax(value) {
    if (value <= 5) return 5;
    const p = 10 ** Math.floor(Math.log10(value));
    return [1, 2, 2.5, 5, 10].map((m) => m * p).find((m) => m >= value);
  }

  function adoption(report, fmt) {
    const villages = report.villages;
    const days = report.dates;
    const legendRows = Math.ceil(villages.length / 3);
    const width = 920, left = 64, right = 20, top = 48, plotH = 260;
    const height = top + plotH + 44 + legendRows * 20 + 12;
    const plotW = width - left - right;
    const label = fmt.t("ad_chart_label", { from: fmt.date(report.date_from),
      to: fmt.date(report.date_to) });
    const el = root(width, height, label);
    el.setAttribute("class", "adoption-chart");
    el.append(svg("text", { x: left, y: 22, "font-size": 15, "font-weight": "bold",
      fill: "#111" }, fmt.t("ad_chart_title") + ` (${fmt.date(report.date_from)} – ` +
      `${fmt.date(report.date_to)})`));
    const max = niceMax(Math.max(1, ...villages.flatMap((v) => v.daily)));
    const x = (i) => left + (days.length === 1 ? plotW / 2 : (i / (days.length - 1)) * plotW);
    const y = (v) => top + plotH - (v / max) * plotH;
    for (let k = 0; k <= 5; k++) {
      const value = (max / 5) * k;
      el.append(svg("line", { x1: left, x2: left + plotW, y1: y(value), y2: y(value),
        stroke: k === 0 ? "#555" : "#e1e5ea" }));
      el.append(svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end",
        fill: "#444", "font-size": 11 }, fmt.number(Math.round(value))));
    }
    el.append(svg("text", { x: 14, y: top + plotH / 2, fill: "#444", "font-size": 11,
      transform: `rotate(-90 14 ${top + plotH / 2})`, "text-anchor": "middle" },
    fmt.t("ad_chart_axis")));
    const every = Math.max(1, Math.ceil(days.length / 14));
    days.forEach((d, i) => {
      if (i % every !== 0 && i !== days.length - 1) return;
      el.append(svg("text", { x: x(i), y: top + plotH + 18, "text-anchor": "middle",
        fill: "#444", "font-size": 11 }, fmt.shortDate(d)));
    });
    villages.forEach((v, j) => {
      const colour = SERIES[j % SERIES.length];
      const name = v.village || fmt.t("no_village");
      const points = v.daily.map((n, i) => `${x(i).toFixed(1)},${y(n).toFixed(1)}`);
      const g = svg("g", { class: "series", "data-village": name });
      g.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: colour,
        "stroke-width": 2 }));
      v.daily.forEach((n, i) => {
        g.append(svg("circle", { cx: x(i), cy: y(n), r: 3, fill: colour },
          svg("title", {}, `${name}, ${fmt.date(days[i])}: ${fmt.number(n)}`)));
      });
      el.append(g);
      const lx = left + (j % 3) * (plotW / 3);
      const ly = top + plotH + 40 + Math.floor(j / 3) * 20;
      el.append(svg("rect", { x: lx, y: ly - 9, width: 14, height: 4, fill: colour }));
      el.append(svg("text", { x: lx + 20, y: ly - 3, fill: "#222" },
        `${shorten(name, 28)} (${fmt.number(v.checkins)})`));
    });
    return el;
  }

  window.QrCharts = { timeline, graph, adoption, LEVEL_COLOURS };
})();
