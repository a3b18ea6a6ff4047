// The adoption page: over a date range (the last 14 whole days by default), venues with QR
// points that nobody scans first and highlighted, check-ins per day by village as a
// chart, and the downloads: venues CSV, the village report CSV and the chart as SVG.
"use strict";

(function () {
  const App = window.QrApp;
  const { state, t, h, table } = App;
  const $ = (id) => document.getElementById(id);

  const view = { report: null, range: null };

  function range() {
    return { from: $("ad-from").value, to: $("ad-to").value };
  }

  function openAdoption() {
    if (!$("ad-from").value || !$("ad-to").value) {
      // the last 14 whole days: today has only begun, and would read as a day nobody scanned
      const yesterday = App.addDays(App.todayLocal(), -1);
      $("ad-to").value = yesterday;
      $("ad-from").value = App.addDays(yesterday, -13);
    }
    const wanted = range();
    if (view.report && view.range && view.range.from === wanted.from &&
        view.range.to === wanted.to) {
      render();
      return;
    }
    load();
  }

  async function load() {
    const error = $("adoption-error");
    App.hideMessage(error);
    const { from, to } = range();
    if (!from || !to || to < from) {
      App.showMessage(error, "err_dates");
      return;
    }
    App.setStatus("loading");
    try {
      const query = new URLSearchParams({ from, to });
      view.report = await App.getJson(`/v1/reports/adoption?${query}`);
      view.range = { from, to };
      render();
      App.setStatus("loaded");
    } catch (err) {
      // the report of other dates must not stay on screen under the dates just refused
      view.report = null;
      view.range = null;
      $("adoption-body").hidden = true;
      App.fail(err, err.status === 401 ? undefined : error);
    }
  }

  function status(row) {
    if (row.silent) return h("span", { class: "badge silent", text: t("status_silent") });
    if (!row.qr_points) return h("span", { class: "badge no-qr", text: t("status_no_qr") });
    return h("span", { class: "badge ok", text: t("status_ok") });
  }

  function render() {
    const report = view.report;
    if (!report) return;
    const s = report.summary;
    $("ad-summary").textContent = t("ad_summary", {
      venues: App.fmtNumber(s.venues), with_qr: App.fmtNumber(s.venues_with_qr_points),
      silent: App.fmtNumber(s.silent_venues), checkins: App.fmtNumber(s.checkins) });
    $("ad-chart").replaceChildren(window.QrCharts.adoption(report, App.fmt()));
    table($("ad-villages"), [{ key: "col_village" }, { key: "col_venues", num: true },
      { key: "col_with_qr", num: true }, { key: "col_silent", num: true },
      { key: "col_checkins", num: true }, { key: "col_rate", num: true }],
    report.villages.map((v) => [v.village || t("no_village"), App.fmtNumber(v.venues),
      App.fmtNumber(v.venues_with_qr_points), App.fmtNumber(v.silent_venues),
      App.fmtNumber(v.checkins), App.fmtNumber(v.checkins_per_venue_day)]),
    (i) => (report.villages[i].silent_venues > 0 ? "has-silent" : null));
    const venues = report.venues;
    table($("ad-venues"), [{ key: "col_venue" }, { key: "col_village" },
      { key: "col_category" }, { key: "col_status" }, { key: "col_qr_points", num: true },
      { key: "col_checkins", num: true }, { key: "col_days_without", num: true }],
    venues.map((v) => [v.name || `#${v.venue}`, v.village || t("no_village"),
      t(`cat_${v.category}`) === `cat_${v.category}` ? v.category : t(`cat_${v.category}`),
      status(v), App.fmtNumber(v.qr_points), App.fmtNumber(v.checkins),
      App.fmtNumber(v.days_without_checkins)]),
    (i) => (venues[i].silent ? "silent" : null));
    $("adoption-body").hidden = false;
  }

  function downloadCsv(part) {
    const { from, to } = view.range;
    const query = new URLSearchParams({ from, to, format: "csv", part });
    return App.download(`/v1/reports/adoption?${query}`, `adoption-${part}-${from}-${to}.csv`);
  }

  // The chart as drawn, in the page's language, as a standalone SVG file.
  function downloadChart() {
    const chart = $("ad-chart").querySelector("svg");
    if (!chart) return;
    const text = '<?xml version="1.0" encoding="UTF-8"?>\n' +
      new XMLSerializer().serializeToString(chart);
    const name = `adoption-chart-${view.range.from}-${view.range.to}.svg`;
    App.saveBlob(new Blob([text], { type: "image/svg+xml;charset=utf-8" }), name);
    App.setStatus("downloaded", { name });
  }

  function wire() {
    $("adoption-form").addEventListener("submit", (event) => {
      event.preventDefault();
      load();
    });
    $("dl-venues").addEventListener("click", (event) =>
      App.busy(event.currentTarget, () => downloadCsv("venues")));
    $("dl-villages").addEventListener("click", (event) =>
      App.busy(event.currentTarget, () => downloadCsv("villages")));
    $("dl-chart").addEventListener("click", downloadChart);
  }

  state.renderers.openAdoption = openAdoption;
  state.renderers.adoption = render;
  state.resets.push(() => {
    view.report = null;
    view.range = null;
    $("adoption-body").hidden = true;
  });
  document.addEventListener("DOMContentLoaded", wire);
})();
