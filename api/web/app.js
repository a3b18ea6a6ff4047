// The officials' page: sign in, labels in Vietnamese or English, local times, calls to
// the API with the bearer token, downloads, and the routes between the views:
//   #/cases        the jurisdiction's cases and the form to open one
//   #/case/<id>    one case (case.js)
//   #/adoption     QR adoption report (adoption.js)
// The sign-in token lives in sessionStorage only (this tab; never in a URL). The
// language and time zone are preferences, kept in localStorage.
// Text from the server is always set as text (textContent), never parsed as HTML.
"use strict";

(function () {
  const I18N = window.QRTRACE_I18N;
  const TOKEN_KEY = "qrtrace.token";
  const LANG_KEY = "qrtrace.lang";
  const TZ_KEY = "qrtrace.tzHours";
  const VIEWS = ["signin", "cases", "case", "adoption"];
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
    "Nov", "Dec"];

  function stored(storage, key) {
    try { return window[storage].getItem(key); } catch (e) { return null; }
  }
  function store(storage, key, value) {
    try {
      if (value === null) window[storage].removeItem(key);
      else window[storage].setItem(key, value);
    } catch (e) { /* storage switched off: the setting lasts until reload */ }
  }

  const savedTz = parseFloat(stored("localStorage", TZ_KEY));
  const state = {
    token: stored("sessionStorage", TOKEN_KEY),
    lang: stored("localStorage", LANG_KEY) === "en" ? "en" : "vi",
    tzHours: Number.isFinite(savedTz) && Math.abs(savedTz) <= 14 ? savedTz : 7,
    view: null,
    cases: null,
    renderers: {},   // set by case.js and adoption.js: openCase, openAdoption, case, adoption
    resets: [],      // forget what a view holds when the official signs out
  };

  const $ = (id) => document.getElementById(id);

  // ---- labels -------------------------------------------------------------------

  function t(key, vars) {
    const dict = I18N[state.lang];
    let text = key in dict ? dict[key] : (key in I18N.vi ? I18N.vi[key] : key);
    if (vars) {
      text = text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
    }
    return text;
  }

  // Give `el` a label by key: kept on the element so that a language switch redraws it.
  function label(el, key, vars) {
    el.dataset.i18n = key;
    if (vars) el.dataset.i18nVars = JSON.stringify(vars);
    else delete el.dataset.i18nVars;
    el.textContent = t(key, vars);
    return el;
  }

  function applyLabels() {
    document.documentElement.lang = state.lang;
    for (const el of document.querySelectorAll("[data-i18n]")) {
      const vars = el.dataset.i18nVars ? JSON.parse(el.dataset.i18nVars) : undefined;
      el.textContent = t(el.dataset.i18n, vars);
    }
    for (const el of document.querySelectorAll("[data-i18n-aria]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nAria));
    }
    for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
      el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
    }
    const lang = $("lang");
    lang.textContent = t("lang_switch");
    lang.setAttribute("aria-label", t("lang_switch_label"));
    lang.setAttribute("lang", state.lang === "vi" ? "en" : "vi");
    document.title = t("app_title") + " · qrtrace";
  }

  // ---- times: integer seconds UTC inside, the chosen offset on screen -------------

  const p2 = (n) => String(n).padStart(2, "0");
  const offset = () => Math.round(state.tzHours * 3600);

  function parts(epoch) {
    const d = new Date((epoch + offset()) * 1000);
    return { y: d.getUTCFullYear(), m: d.getUTCMonth() + 1, d: d.getUTCDate(),
      H: d.getUTCHours(), M: d.getUTCMinutes() };
  }
  function dateText(p) {
    return state.lang === "vi" ? `${p2(p.d)}/${p2(p.m)}/${p.y}` : `${p.y}-${p2(p.m)}-${p2(p.d)}`;
  }
  function fmtTime(epoch) {
    const p = parts(epoch);
    return `${dateText(p)} ${p2(p.H)}:${p2(p.M)}`;
  }
  function fmtRange(start, end) {
    const a = parts(start), b = parts(end);
    const sameDay = a.y === b.y && a.m === b.m && a.d === b.d;
    return `${fmtTime(start)} – ${sameDay ? `${p2(b.H)}:${p2(b.M)}` : fmtTime(end)}`;
  }
  function fmtDayOf(epoch) {
    const p = parts(epoch);
    return state.lang === "vi" ? `${p2(p.d)}/${p2(p.m)}` : `${p.d} ${MONTHS[p.m - 1]}`;
  }
  function fmtDate(iso) {
    const [y, m, d] = iso.split("-").map(Number);
    return dateText({ y, m, d });
  }
  function shortDate(iso) {
    const [, m, d] = iso.split("-").map(Number);
    return state.lang === "vi" ? `${p2(d)}/${p2(m)}` : `${d} ${MONTHS[m - 1]}`;
  }
  function tzName(hours) {
    const h = hours === undefined ? state.tzHours : hours;
    const sign = h < 0 ? "−" : "+";
    const abs = Math.abs(h);
    const whole = Math.floor(abs);
    const minutes = Math.round((abs - whole) * 60);
    return `UTC${sign}${whole}${minutes ? ":" + p2(minutes) : ""}`;
  }
  function fmtNumber(n) {
    return Number(n).toLocaleString(state.lang === "vi" ? "vi-VN" : "en-GB");
  }
  function toLocalInput(epoch) {
    const p = parts(epoch);
    return `${p.y}-${p2(p.m)}-${p2(p.d)}T${p2(p.H)}:${p2(p.M)}`;
  }
  function fromLocalInput(value) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || "");
    if (!m) return NaN;
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) / 1000 - offset();
  }
  function todayLocal() {
    return toLocalInput(Math.floor(Date.now() / 1000)).slice(0, 10);
  }
  function addDays(iso, days) {
    const [y, m, d] = iso.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
  }

  // What charts.js needs to label a drawing.
  function fmt() {
    return { t, offset: offset(), time: fmtTime, day: fmtDayOf, date: fmtDate, shortDate,
      number: fmtNumber };
  }

  // ---- messages ---------------------------------------------------------------------

  function setStatus(key, vars) {
    const el = $("status");
    if (!key) { delete el.dataset.i18n; el.textContent = ""; return; }
    label(el, key, vars);
  }
  function showMessage(el, key, vars) {
    label(el, key, vars);
    el.hidden = false;
  }
  function hideMessage(el) {
    el.hidden = true;
    delete el.dataset.i18n;
    el.textContent = "";
  }

  // ---- the API ------------------------------------------------------------------------

  class ApiError extends Error {
    // reason: the word some errors name their problem by (a case refused, a bad window),
    // shown in the page's language where i18n.js has `err_reason_<reason>`
    constructor(status, detail, reason) {
      super(`${status}: ${detail}`);
      this.status = status;
      this.detail = detail;
      this.reason = reason || null;
    }
  }

  function describeDetail(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => {
        const where = (d.loc || []).filter((p) => p !== "body").join(".");
        return where ? `${where}: ${d.msg}` : d.msg;
      }).join("; ");
    }
    return JSON.stringify(detail);
  }

  async function request(path, options) {
    const { method = "GET", body, token = state.token } = options || {};
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, cache: "no-store", credentials: "omit",
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError(0, "network");
    }
    if (!response.ok) {
      let detail = response.statusText, reason = null;
      try {
        const problem = await response.json();
        detail = describeDetail(problem.detail);
        reason = typeof problem.reason === "string" ? problem.reason : null;
      } catch (e) { /* not JSON */ }
      throw new ApiError(response.status, detail, reason);
    }
    return response;
  }

  // JSON with ids above 2^53 kept exact: the API's person ids reach 2^64 - 1, and a
  // JavaScript number would show 9007199254740993 as ...992, another person. Such an
  // integer is kept as the text of its digits (the reviver's source; Chromium 114+).
  function parseJson(text) {
    return JSON.parse(text, (key, value, context) =>
      typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value) &&
        context && typeof context.source === "string" ? context.source : value);
  }

  async function readJson(response) {
    return parseJson(await response.text());
  }

  async function getJson(path) {
    return readJson(await request(path));
  }

  // Order of two ids that may be numbers or (above 2^53) texts of digits.
  function compareIds(a, b) {
    const x = BigInt(a), y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }

  // The message (key and values) for a failed call.
  function errorMessage(err) {
    if (!(err instanceof ApiError)) return ["err_generic", { status: "?", detail: String(err) }];
    if (err.status === 0) return ["err_network"];
    if (err.reason && `err_reason_${err.reason}` in I18N.vi) return [`err_reason_${err.reason}`];
    if (err.status === 401) return ["err_401"];
    if (err.status === 403) return ["err_403"];
    if (err.status === 404) return ["err_404"];
    if (err.status === 410) return ["err_410"];
    return ["err_generic", { status: err.status, detail: err.detail }];
  }

  // Show a failed call's message; a token that stopped working signs the official out.
  function fail(err, where) {
    if (err instanceof ApiError && err.status === 401 && state.token) {
      signOut("session_expired");
      return;
    }
    const [key, vars] = errorMessage(err);
    setStatus(null);
    showMessage(where || $("alert"), key, vars);
  }

  function saveBlob(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  function filenameOf(response, fallback) {
    const header = response.headers.get("Content-Disposition") || "";
    const m = /filename="?([^";]+)"?/.exec(header);
    return m ? m[1] : fallback;
  }

  // Fetch with the bearer token, then save through a blob URL (a link cannot carry it).
  async function download(path, fallbackName) {
    setStatus("downloading", { name: fallbackName });
    const response = await request(path);
    const name = filenameOf(response, fallbackName);
    saveBlob(await response.blob(), name);
    setStatus("downloaded", { name });
  }

  // Run `work` for a button: the button waits, a failure shows its message.
  async function busy(button, work) {
    button.disabled = true;
    hideMessage($("alert"));
    try {
      await work();
    } catch (err) {
      fail(err);
    } finally {
      button.disabled = false;
    }
  }

  // ---- small DOM builders ------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      el.append(typeof child === "string" || typeof child === "number" ?
        document.createTextNode(String(child)) : child);
    }
    return el;
  }

  // A table from column keys (labels) and rows of cells; a cell is text or a node.
  function table(el, columns, rows, rowClass) {
    const head = h("tr", {}, ...columns.map((c) => h("th", {
      scope: "col", class: c.num ? "num" : null, text: c.key ? t(c.key) : "" })));
    const body = h("tbody");
    rows.forEach((cells, i) => {
      const tr = h("tr", { class: rowClass ? rowClass(i) : null });
      cells.forEach((cell, j) => {
        tr.append(h("td", { class: columns[j].num ? "num" : null }, cell));
      });
      body.append(tr);
    });
    el.replaceChildren(h("thead", {}, head), body);
  }

  // ---- views and routes -----------------------------------------------------------------

  function show(view) {
    state.view = view;
    for (const name of VIEWS) $(`view-${name}`).hidden = name !== view;
    const signedIn = view !== "signin";
    $("nav").hidden = !signedIn;
    $("signout").hidden = !signedIn;
    const current = view === "adoption" ? "nav-adoption" : "nav-cases";
    for (const id of ["nav-cases", "nav-adoption"]) {
      if (signedIn && id === current) $(id).setAttribute("aria-current", "page");
      else $(id).removeAttribute("aria-current");
    }
  }

  function focusHeading(view) {
    const heading = $(`view-${view}`).querySelector("h2");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: false });
    }
  }

  function route() {
    hideMessage($("alert"));
    if (!state.token) {
      show("signin");
      $("token").focus();
      return;
    }
    const hash = location.hash || "#/cases";
    const match = /^#\/case\/(\d+)$/.exec(hash);
    const before = state.view;
    if (match) {
      show("case");
      state.renderers.openCase(Number(match[1]));
    } else if (hash === "#/adoption") {
      show("adoption");
      state.renderers.openAdoption();
    } else {
      show("cases");
      loadCases();
    }
    if (before !== state.view) focusHeading(state.view);
  }

  function rerender() {
    applyLabels();
    if (state.view === "cases") renderCases();
    const render = state.renderers[state.view];
    if (render) render();
  }

  // ---- sign in and out -----------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const error = $("signin-error");
    const token = $("token").value.trim();
    hideMessage(error);
    if (!token) { showMessage(error, "err_token_empty"); return; }
    const button = $("signin-button");
    button.disabled = true;
    setStatus("signing_in");
    try {
      const cases = await readJson(await request("/v1/cases", { token }));
      state.token = token;
      state.cases = cases;
      store("sessionStorage", TOKEN_KEY, token);
      $("token").value = "";
      setStatus(null);
      if (!location.hash || location.hash === "#/") location.hash = "#/cases";
      else route();
    } catch (err) {
      setStatus(null);
      const key = err.status === 401 ? "err_401" : err.status === 403 ? "err_403_role" : null;
      if (key) showMessage(error, key);
      else showMessage(error, ...errorMessage(err));
    } finally {
      button.disabled = false;
    }
  }

  function signOut(reason) {
    state.token = null;
    state.cases = null;
    store("sessionStorage", TOKEN_KEY, null);
    for (const reset of state.resets) reset();
    history.replaceState(null, "", location.pathname);
    show("signin");
    hideMessage($("alert"));
    if (reason === "session_expired") showMessage($("signin-error"), reason);
    else setStatus("signed_out");
    $("token").focus();
  }

  // ---- cases: the list and the form -------------------------------------------------------

  async function loadCases() {
    fillCaseForm();
    if (state.cases) renderCases();
    setStatus("loading");
    try {
      state.cases = await getJson("/v1/cases");
      renderCases();
      setStatus(null);
    } catch (err) {
      fail(err);
    }
  }

  function renderCases() {
    const cases = state.cases || [];
    $("cases-empty").hidden = cases.length > 0;
    $("cases-table").hidden = cases.length === 0;
    const body = $("cases-table").tBodies[0];
    body.replaceChildren(...cases.map((c) => h("tr", {},
      h("td", {}, h("a", { href: `#/case/${c.id}`, class: "case-link",
        text: t("open_case", { id: c.id }) })),
      h("td", { text: t("person_label", { id: c.person }) }),
      h("td", { text: fmtRange(c.from, c.to) }),
      h("td", { text: c.purpose }),
      h("td", { text: c.jurisdiction }),
      h("td", { text: fmtTime(c.opened_at) + (c.closed_at == null ? "" :
        ` · ${t("case_closed_at", { time: fmtTime(c.closed_at) })}`) }))));
  }

  function fillCaseForm() {
    const now = Math.floor(Date.now() / 60000) * 60;
    if (!$("f-from").value) $("f-from").value = toLocalInput(now - 5 * 86400);
    if (!$("f-to").value) $("f-to").value = toLocalInput(now);
  }

  async function submitCase(event) {
    event.preventDefault();
    const error = $("case-form-error");
    hideMessage(error);
    const person = $("f-person").value.trim();
    const from = fromLocalInput($("f-from").value);
    const to = fromLocalInput($("f-to").value);
    const refuse = (key, field, vars) => {
      showMessage(error, key, vars);
      $(field).focus();
    };
    // what the server would refuse, said here in the page's language and time zone
    if (!person) return refuse("err_field_person", "f-person");
    if (!/^[0-9]+$/.test(person) && !/^QT/i.test(person)) {
      return refuse("err_field_person_form", "f-person");
    }
    if (!(to > from)) return refuse("err_field_window", "f-to");
    const latest = Math.floor(Date.now() / 1000) + 86400;  // the server's bound: a day ahead
    if (to > latest) return refuse("err_field_ahead", "f-to", { max: fmtTime(latest) });
    if (to - from > 60 * 86400) return refuse("err_field_span", "f-from");
    if ($("f-purpose").value.trim().length < 3) return refuse("err_field_purpose", "f-purpose");
    const body = {
      person, from, to, purpose: $("f-purpose").value.trim(),
      min_overlap_minutes: parseInt($("f-min-overlap").value, 10) || 0,
      linger_minutes: parseInt($("f-linger").value, 10) || 0,
      depth: parseInt($("f-depth").value, 10) || 2,
    };
    const button = $("case-submit");
    button.disabled = true;
    setStatus("f_opening");
    try {
      const opened = await readJson(await request("/v1/cases", { method: "POST", body }));
      state.cases = null;
      $("f-person").value = "";
      setStatus("case_opened", { id: opened.id });
      location.hash = `#/case/${opened.id}`;
    } catch (err) {
      // a refusal names its reason (err_reason_*): said in the page's language
      if (err instanceof ApiError && err.status === 401) fail(err);
      else fail(err, error);
    } finally {
      button.disabled = false;
    }
  }

  // ---- settings ------------------------------------------------------------------------------

  function buildTzSelect() {
    const select = $("tz");
    for (let hours = -12; hours <= 14; hours++) {
      const text = hours === 7 ? `${tzName(hours)} (Việt Nam)` : tzName(hours);
      select.append(h("option", { value: hours, text }));
    }
    if (!Number.isInteger(state.tzHours)) {
      select.append(h("option", { value: state.tzHours, text: tzName(state.tzHours) }));
    }
    select.value = String(state.tzHours);
    select.addEventListener("change", () => {
      // The form's local times keep naming the same instants.
      const from = fromLocalInput($("f-from").value);
      const to = fromLocalInput($("f-to").value);
      state.tzHours = parseFloat(select.value);
      store("localStorage", TZ_KEY, String(state.tzHours));
      if (Number.isFinite(from)) $("f-from").value = toLocalInput(from);
      if (Number.isFinite(to)) $("f-to").value = toLocalInput(to);
      rerender();
    });
  }

  function switchLanguage() {
    state.lang = state.lang === "vi" ? "en" : "vi";
    store("localStorage", LANG_KEY, state.lang);
    rerender();
  }

  function init() {
    buildTzSelect();
    applyLabels();
    $("lang").addEventListener("click", switchLanguage);
    $("signout").addEventListener("click", () => signOut());
    $("signin-form").addEventListener("submit", signIn);
    $("case-form").addEventListener("submit", submitCase);
    window.addEventListener("hashchange", route);
    route();
  }

  window.QrApp = {
    state, t, label, h, table, fmt, fmtTime, fmtRange, fmtDate, tzName, fmtNumber, todayLocal,
    addDays, request, getJson, readJson, compareIds, download, saveBlob, busy, fail, setStatus,
    showMessage, hideMessage, ApiError,
  };
  document.addEventListener("DOMContentLoaded", init);
})();
