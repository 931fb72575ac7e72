// The dashboard: state in the URL, one round of API queries per state, panels drawn
// as their answers arrive. <body data-ready="…"> is set once every panel has settled
// (tests and load_tests/bench_dashboard.py wait for it).

import { base, getJSON, postJSON, query } from "./api.js";
import { PRESETS, change, csv, dateRange, fmt, label } from "./format.js";
import { PANELS, TTFB_SPLIT, VITALS, activatable, conversionQuery, download, el, empty, funnel, head, list, resultsCsv, table,
  tabQuery, vitals } from "./panels.js";
import { drawChart } from "./chart.js";

export const KPIS = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration",
  "requests", "error_rate", "latency_p75", "apdex"];
const COUNTS = new Set(["visitors", "visits", "pageviews", "requests"]);
const DIM_LABELS = {
  "visit:source": "Source", "visit:channel": "Channel", "visit:utm_campaign": "Campaign", "visit:utm_medium": "Medium",
  "visit:utm_source": "UTM source", "event:page": "Page", "visit:entry_page": "Entry page", "visit:exit_page": "Exit page",
  "visit:country": "Country", "visit:device": "Device", "visit:browser": "Browser", "visit:os": "OS", "event:goal": "Goal",
};
const REALTIME_MS = 30000;

let config = { sites: [], goals: [], funnels: [] };
let state = null;
let generation = 0;
const cache = { chart: null };

// ---- state <-> URL --------------------------------------------------------------------

function readState() {
  const q = new URLSearchParams(location.search);
  const filters = q.getAll("f").map((f) => {
    const at = f.indexOf("=");
    if (at < 1) return null;
    let dim = f.slice(0, at);
    const op = dim.endsWith("!") ? "is_not" : "is";
    dim = dim.replace(/!$/, "");
    return [op, dim, [f.slice(at + 1)]];
  }).filter(Boolean);
  const tabs = {};
  for (const p of PANELS) tabs[p.id] = q.get(`t.${p.id}`) || p.tabs[0].key;
  return {
    site: q.get("site") || (config.sites[0] && config.sites[0].host) || "",
    period: q.get("period") || "30d",
    compare: q.get("compare") === "year_over_year" ? "year_over_year" : "previous_period",
    from: q.get("from") || "", to: q.get("to") || "",
    metric: KPIS.includes(q.get("metric")) ? q.get("metric") : "visitors",
    funnel: q.get("funnel") || "",
    filters, tabs,
  };
}

function writeState(replace = false) {
  const q = new URLSearchParams();
  q.set("site", state.site);
  q.set("period", state.period);
  if (state.compare !== "previous_period") q.set("compare", state.compare);
  if (state.period === "custom") { q.set("from", state.from); q.set("to", state.to); }
  if (state.metric !== "visitors") q.set("metric", state.metric);
  if (state.funnel) q.set("funnel", state.funnel);
  for (const [op, dim, values] of state.filters) q.append("f", `${dim}${op === "is_not" ? "!" : ""}=${values[0]}`);
  for (const p of PANELS) if (state.tabs[p.id] !== p.tabs[0].key) q.set(`t.${p.id}`, state.tabs[p.id]);
  const url = `${location.pathname}?${q}`;
  if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
}

/** What the comparison line and deltas are against. */
function compareLabel(capital = false) {
  const text = state.compare === "year_over_year" ? "a year before" : "previous period";
  return capital ? text[0].toUpperCase() + text.slice(1) : text;
}

function siteInfo() {
  return config.sites.find((s) => s.host === state.site) || null;
}

function range() {
  const tz = (siteInfo() || {}).timezone || "UTC";
  return dateRange(state.period, tz, state.from, state.to);
}

function update(changes, { replace = false } = {}) {
  Object.assign(state, changes);
  writeState(replace);
  load();
}

function addFilter(dimension, value) {
  const filters = state.filters.filter((f) => f[1] !== dimension);
  filters.push(["is", dimension, [value]]);
  update({ filters });
}

// ---- controls -------------------------------------------------------------------------

function renderControls() {
  const site = document.getElementById("site");
  const hosts = config.sites.map((s) => s.host);
  if (state.site && !hosts.includes(state.site)) hosts.push(state.site);
  site.replaceChildren(...hosts.map((h) => el("option", { value: h, text: h })));
  site.value = state.site;
  const period = document.getElementById("period");
  period.replaceChildren(...PRESETS.map(([v, t]) => el("option", { value: v, text: t })),
    el("option", { value: "custom", text: "Custom range…" }));
  period.value = state.period;
  const compare = document.getElementById("compare");
  compare.value = state.compare;
  compare.disabled = state.period === "all";  // nothing before "all"
  const custom = document.getElementById("custom");
  custom.hidden = state.period !== "custom";
  const r = range();
  document.getElementById("from").value = Array.isArray(r.date_range) ? r.date_range[0] : "";
  document.getElementById("to").value = Array.isArray(r.date_range) ? r.date_range[1] : "";
  renderChips();
}

function renderChips() {
  const chips = document.getElementById("chips");
  chips.replaceChildren(...state.filters.map(([op, dim, values], i) => el("span", { class: "chip", "data-filter": dim },
    el("span", { text: `${DIM_LABELS[dim] || dim} ${op === "is_not" ? "is not" : "is"} ${values.join(" or ")}` }),
    el("button", { type: "button", "aria-label": `Remove filter ${DIM_LABELS[dim] || dim}`, text: "×",
      onclick: () => update({ filters: state.filters.filter((_, j) => j !== i) }) }))));
}

function wireControls() {
  document.getElementById("site").addEventListener("change", (e) => update({ site: e.target.value, filters: [], funnel: "" }));
  document.getElementById("period").addEventListener("change", (e) => {
    const changes = { period: e.target.value };
    if (e.target.value === "custom") {
      const r = range();
      if (Array.isArray(r.date_range)) [changes.from, changes.to] = r.date_range;
    }
    update(changes);
  });
  document.getElementById("compare").addEventListener("change", (e) => update({ compare: e.target.value }));
  for (const id of ["from", "to"]) {
    document.getElementById(id).addEventListener("change", () => update({
      period: "custom", from: document.getElementById("from").value, to: document.getElementById("to").value }));
  }
  document.getElementById("export").addEventListener("click", exportView);
  const share = document.getElementById("share");
  share.hidden = Boolean(config.shared);
  share.addEventListener("click", async () => {
    try {
      const { url } = await getJSON(`/api/share?site=${encodeURIComponent(state.site)}`);
      notice(`Read-only link to ${state.site}: ${location.origin}${url}`);
    } catch (err) {
      notice(err.status === 404 ? "Share links need an admin token ([admin] token)." : `No share link: ${err.message}`, "error");
    }
  });
  window.addEventListener("popstate", () => { state = readState(); load(); });
}

// ---- notices and empty states ------------------------------------------------------------

function notice(text, kind = "") {
  const node = document.getElementById("notice");
  node.hidden = !text;
  node.className = `notice ${kind}`;
  node.textContent = text || "";
}

const GOALS_HELP = `[[collectors.goals]]
name = "signup"            # a pageview goal
path = "/signup*"

[[collectors.goals]]
name = "purchase"          # a request goal: POST /checkout answered 2xx or 303
method = "POST"
path = "/checkout"
status = "2xx,303"`;

const FUNNEL_HELP = `[[collectors.funnels]]
name = "checkout"
steps = ["/products/*", "/cart", "/thank-you"]`;

// ---- KPI cards and charts -------------------------------------------------------------------

function renderKpis(row) {
  const box = document.getElementById("kpis");
  const values = row ? row.metrics : KPIS.map(() => null);
  const before = row && row.comparison ? row.comparison.metrics : null;
  const changes = row && row.comparison ? row.comparison.change : null;
  box.replaceChildren(...KPIS.map((m, i) => {
    const d = before ? change(m, values[i], before[i], changes ? changes[i] : undefined) : null;
    const card = el("div", { class: "kpi", "data-metric": m, "aria-pressed": String(m === state.metric) },
      el("span", { class: "name", text: label(m) }),
      el("span", { class: "value", "data-raw": values[i] ?? "", text: fmt(m, values[i]) }),
      d ? el("span", { class: `delta ${d.dir === 0 ? "flat" : d.good ? "good" : "bad"}`, "data-delta": d.delta,
        title: `${compareLabel()}: ${fmt(m, before[i])}`, text: d.dir === 0 ? "no change" : d.text }) : null,
);
    card.setAttribute("aria-label", `${label(m)}: ${fmt(m, values[i])}. Show over time`);
    // Every KPI is already in the timeseries: switching the chart asks nothing new.
    return activatable(card, () => {
      state.metric = m;
      writeState(true);
      box.querySelectorAll(".kpi").forEach((k) => k.setAttribute("aria-pressed", String(k.dataset.metric === m)));
      renderMainChart();
    });
  }));
}

function renderMainChart() {
  const data = cache.chart;
  document.getElementById("chart-title").textContent = label(state.metric);
  document.getElementById("chart-legend").replaceChildren(el("i"), document.createTextNode("this period"),
    data && data.hasPrevious ? el("i", { class: "prev" }) : null, data && data.hasPrevious ? document.createTextNode(compareLabel()) : null);
  const node = document.getElementById("chart");
  if (!data || !data.labels.length) { node.replaceChildren(empty("No data for this period.")); return; }
  const i = KPIS.indexOf(state.metric);
  drawChart(node, data.labels, [
    { label: label(state.metric), values: data.current.map((r) => r[i]), metric: state.metric },
    data.hasPrevious ? { label: compareLabel(true), values: data.previous.map((r) => (r ? r[i] : null)), metric: state.metric, previous: true } : null,
  ].filter(Boolean));
}

function renderApdexChart() {
  const data = cache.chart;
  const node = document.getElementById("apdex-chart");
  if (!data || !data.labels.length) { node.replaceChildren(empty("No requests in this period.")); return; }
  const a = KPIS.indexOf("apdex"), p = KPIS.indexOf("latency_p75");
  drawChart(node, data.labels, [
    { label: "Apdex", values: data.current.map((r) => r[a]), metric: "apdex", scale: "apdex" },
    { label: "p75 latency", values: data.current.map((r) => r[p]), metric: "latency_p75", scale: "ms", secondary: true },
  ], 180);
}

/** Timeseries rows keyed by time label, filled to every label of the period. */
function series(response) {
  const labels = (response.meta && response.meta.time_labels) || response.results.map((r) => r.dimensions[0]);
  const byLabel = new Map(response.results.map((r) => [r.dimensions[0], r]));
  // An empty bucket is zero visitors/pageviews/requests; rates and latencies stay undefined.
  const none = KPIS.map((m) => (COUNTS.has(m) ? 0 : null));
  const current = labels.map((l) => (byLabel.get(l) ? byLabel.get(l).metrics : none));
  const hasPrevious = response.results.some((r) => r.comparison);
  const previous = labels.map((l) => {
    const r = byLabel.get(l);
    return r && r.comparison ? r.comparison.metrics : none;
  });
  return { labels, current, previous, hasPrevious, results: response.results };
}

function exportView() {
  const data = cache.chart;
  if (!data) return;
  const rows = data.labels.map((l, i) => [l, ...data.current[i]]);
  download(`footfall-${state.site}-${state.period}.csv`, csv(["time", ...KPIS], rows));
}

// ---- panels ----------------------------------------------------------------------------------

async function loadPanel(panel, common, gen) {
  const node = document.getElementById(`panel-${panel.id}`);
  const tab = panel.tabs.find((t) => t.key === state.tabs[panel.id]) || panel.tabs[0];
  const q = tabQuery(tab, common);
  const goals = config.goals.map((g) => g.name);
  // A tab is one more question for this panel only.
  const onTab = (key) => {
    state.tabs = { ...state.tabs, [panel.id]: key };
    writeState(true);
    loadPanel(panel, base(state), generation);
  };
  node.classList.add("loading");
  const fail = (message, detail) => {
    node.replaceChildren(head(panel.title, panel.tabs, tab, onTab, () => {}), empty(message, detail));
    node.classList.remove("loading");
  };
  if (panel.kind === "goals" && !goals.length) {
    fail("No goals configured. Add goals to the config file and restart:", GOALS_HELP);
    return;
  }
  let response, conversions = null;
  try {
    [response, conversions] = await Promise.all([
      query(q),
      tab.conversions && goals.length ? query(conversionQuery(tab, common, goals)) : null,
    ]);
  } catch (err) {
    if (gen === generation) fail(`Could not load: ${err.message}`);
    return;
  }
  if (gen !== generation) return;
  const shown = { ...tab, metrics: [...q.metrics] };
  let results = response.results;
  if (conversions) {
    const rate = new Map(conversions.results.map((r) => [r.dimensions[0], r.metrics[1]]));
    shown.metrics.push("conversion_rate");
    results = results.map((r) => ({ ...r, metrics: [...r.metrics, rate.get(r.dimensions[0]) ?? 0] }));
  }
  const onCsv = () => download(`footfall-${state.site}-${tab.key}.csv`, resultsCsv([tab.dimension], shown.metrics, results));
  const body = results.length
    ? (panel.kind === "table" ? [table(shown, results, addFilter)] : list(shown, results, addFilter))
    : [empty(state.filters.length ? "Nothing matches these filters in this period." : "No data for this period yet.")];
  node.replaceChildren(head(panel.title, panel.tabs, tab, onTab, onCsv), ...body);
  node.dataset.rows = String(results.length);
  node.classList.remove("loading");
}

async function loadFunnel(common, gen) {
  const node = document.getElementById("panel-funnels");
  const names = config.funnels.map((f) => f.name);
  const title = el("div", { class: "card-head" }, el("h2", { text: "Funnels" }));
  if (!names.length) {
    node.replaceChildren(title, empty("No funnels configured. Add one to the config file and restart:", FUNNEL_HELP));
    return;
  }
  const name = names.includes(state.funnel) ? state.funnel : names[0];
  const select = el("select", { "aria-label": "Funnel", class: "ghost" }, ...names.map((n) => el("option", { value: n, text: n })));
  select.value = name;
  select.addEventListener("change", () => update({ funnel: select.value }, { replace: true }));
  title.append(select);
  try {
    const response = await postJSON("/api/v2/funnel", { ...common, funnel: name });
    if (gen !== generation) return;
    const steps = response.steps.map((s) => ({ step: s.path, visitors: s.visitors, conversion_rate: s.conversion_rate }));
    node.replaceChildren(title, steps.length && steps[0].visitors ? funnel(steps) : empty("Nobody entered this funnel in this period."));
  } catch (err) {
    if (gen !== generation) return;
    node.replaceChildren(title, empty(`Could not load: ${err.message}`));
  }
}

function renderVitals(values, split = null) {
  const node = document.getElementById("panel-vitals");
  const title = el("div", { class: "card-head" }, el("h2", { text: "Web Vitals (p75)" }));
  node.replaceChildren(title, values.every((v) => v === null)
    ? empty("No Web Vitals in this period. Browsers report them through the first-party beacon: turn it on with "
      + "beacon.enabled = true (or --beacon on), then open a page in a browser. Scripted traffic runs no script "
      + "and reports none (the demo's background visitors report for it).")
    : vitals(values, split));
}

async function loadKpisAndCharts(common, gen) {
  const comparisons = state.period === "all" ? {} : { comparisons: { mode: state.compare } };
  const interval = range().interval;
  const [totals, timeseries, split] = await Promise.allSettled([
    // Web Vitals ride along with the totals: one question fewer per page.
    query({ ...common, metrics: [...KPIS, ...VITALS], include: comparisons }),
    query({ ...common, metrics: KPIS, dimensions: [interval], include: { time_labels: true, ...comparisons } }),
    // the TTFB split joins each page view's beacon report: its own question, so the totals do not pay for it
    query({ ...common, metrics: TTFB_SPLIT }),
  ]);
  if (gen !== generation) return;
  if (totals.status === "fulfilled") {
    const row = totals.value.results[0] || null;
    renderKpis(row);
    const parts = split.status === "fulfilled" && split.value.results[0] ? split.value.results[0].metrics : null;
    renderVitals(row ? row.metrics.slice(KPIS.length) : VITALS.map(() => null), parts);
    const quiet = !row || row.metrics.every((v) => !v);
    if (quiet && !state.filters.length) notice(`No data yet for ${state.site} in this period. Traffic through the proxy shows up here within seconds.`);
  } else {
    renderKpis(null);
    renderVitals(VITALS.map(() => null));
    notice(`Could not load the figures: ${totals.reason.message}`, "error");
  }
  cache.chart = timeseries.status === "fulfilled" ? series(timeseries.value) : null;
  renderMainChart();
  renderApdexChart();
}

async function loadRealtime() {
  const node = document.getElementById("realtime");
  if (!state.site || !siteInfo()) { node.textContent = ""; return; }
  try {
    const r = await getJSON(`/api/v2/realtime?site_id=${encodeURIComponent(state.site)}`);
    const n = r.visitors || 0;
    node.textContent = `${fmt("visitors", n)} current visitor${n === 1 ? "" : "s"}`;
    node.dataset.raw = String(n);
  } catch {
    node.textContent = "";
  }
}

export async function load() {
  const gen = ++generation;
  delete document.body.dataset.ready;
  state.range = range();
  renderControls();
  notice("");
  if (!state.site) {
    notice("No sites yet. Send traffic through the proxy (or list sites under [[collectors.sites]]) and they appear here.");
    document.body.dataset.ready = String(gen);
    return;
  }
  if (!siteInfo()) {
    notice(`Unknown site “${state.site}”: no site of that name is configured or has data. Pick one from the list.`, "error");
    for (const id of ["kpis", "chart", "apdex-chart"]) document.getElementById(id).replaceChildren();
    document.querySelectorAll(".panel").forEach((p) => p.replaceChildren());
    document.body.dataset.ready = String(gen);
    return;
  }
  const common = base(state);
  await Promise.allSettled([
    loadKpisAndCharts(common, gen),
    ...PANELS.map((p) => loadPanel(p, common, gen)),
    loadFunnel(common, gen),
  ]);
  if (gen === generation) {
    window.footfallReadyAt = performance.now(); // load_tests/bench_dashboard.py reads it
    document.body.dataset.ready = String(gen);
  }
}

async function start() {
  try {
    config = await getJSON("/dashboard/config.json");
    // A share link opens one site; the full list (with sites that have data) is the admin's.
    const listed = config.shared ? null : await getJSON("/api/v2/sites").catch(() => null);
    // The query API's list adds the sites that have data; configured ones keep their order.
    for (const s of (listed && listed.sites) || []) {
      if (!config.sites.some((c) => c.host === s.site_id)) config.sites.push({ host: s.site_id, timezone: s.timezone });
    }
  } catch (err) {
    notice(`Could not load the configuration: ${err.message}`, "error");
    document.body.dataset.ready = "error";
    return;
  }
  state = readState();
  writeState(true);
  wireControls();
  await load();
  loadRealtime();
  setInterval(loadRealtime, REALTIME_MS);
}

let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (cache.chart) { renderMainChart(); renderApdexChart(); } }, 150);
});

start();
