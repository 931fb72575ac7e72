// Breakdown panels: what each asks the API and how its answer is drawn.
// Every row is a button (Enter or click) that adds "dimension is value" as a filter.

import { fmt, label, csv } from "./format.js";

export const PERF_METRICS = ["requests", "latency_p50", "latency_p75", "latency_p95", "error_rate"];
export const PAGEVIEWS = [["is", "event:kind", ["pageview"]]];
export const VITALS = ["lcp_p75", "inp_p75", "cls_p75", "fcp_p75", "ttfb_p75"];
const VITALS_REPORTS = [["is", "event:kind", ["vitals"]]];
// where each page view's TTFB went (the API's definitions: README, "Metric definitions")
export const TTFB_SPLIT = ["ttfb_network_p75", "ttfb_proxy_p75", "ttfb_origin_p75"];

// A panel has tabs; a tab is one query: a dimension and its metrics (the first one
// draws the bar and orders the rows).
export const PANELS = [
  { id: "sources", title: "Sources", tabs: [
    { key: "sources", label: "Sources", dimension: "visit:source", metrics: ["visitors"] },
    { key: "channels", label: "Channels", dimension: "visit:channel", metrics: ["visitors"] },
    { key: "campaigns", label: "Campaigns", dimension: "visit:utm_campaign", metrics: ["visitors"] },
    { key: "mediums", label: "Mediums", dimension: "visit:utm_medium", metrics: ["visitors"] },
  ] },
  { id: "pages", title: "Pages", tabs: [
    { key: "pages", label: "Top pages", dimension: "event:page", metrics: ["visitors", "pageviews"], where: PAGEVIEWS },
    { key: "entry", label: "Entry pages", dimension: "visit:entry_page", metrics: ["visitors", "visits"] },
    { key: "exit", label: "Exit pages", dimension: "visit:exit_page", metrics: ["visitors", "visits"] },
  ] },
  { id: "locations", title: "Locations", tabs: [
    { key: "countries", label: "Countries", dimension: "visit:country", metrics: ["visitors"] },
  ] },
  { id: "devices", title: "Devices", tabs: [
    { key: "devices", label: "Devices", dimension: "visit:device", metrics: ["visitors"] },
    { key: "browsers", label: "Browsers", dimension: "visit:browser", metrics: ["visitors"] },
    { key: "os", label: "OS", dimension: "visit:os", metrics: ["visitors"] },
  ] },
  { id: "goals", title: "Goals", kind: "goals", tabs: [
    { key: "goals", label: "Goals", dimension: "event:goal", metrics: ["visitors", "events", "conversion_rate"] },
  ] },
  // Latency and errors of the page views themselves, beside the conversion rate of the
  // visits that landed there (conversions: a second query, joined on the row's value).
  { id: "perf-pages", title: "Performance by page", kind: "table", tabs: [
    { key: "perf-pages", label: "Page", dimension: "event:page", metrics: [...PERF_METRICS, "abandonment_rate"],
      where: PAGEVIEWS,
      conversions: "visit:entry_page", conversionLabel: "Conv. rate (landing)" },
    // what the browsers measured on those pages (the beacon's vitals reports; worst LCP first)
    { key: "vitals-pages", label: "Web Vitals", dimension: "event:page", metrics: VITALS, where: VITALS_REPORTS },
  ] },
  { id: "perf-campaigns", title: "Performance by campaign", kind: "table", tabs: [
    { key: "perf-campaigns", label: "Campaign", dimension: "visit:utm_campaign", metrics: PERF_METRICS,
      conversions: "visit:utm_campaign", conversionLabel: "Conv. rate" },
    { key: "vitals-campaigns", label: "Web Vitals", dimension: "visit:utm_campaign", metrics: VITALS,
      where: VITALS_REPORTS },
  ] },
];

export const ROW_LIMIT = 10;

/** The API query of a panel tab: ``common`` (site, period, filter chips) plus the tab's
 * dimension, metrics and own conditions. */
export function tabQuery(tab, common) {
  const filters = [...(common.filters || []), ...(tab.where || [])];
  const out = { ...common, metrics: tab.metrics, dimensions: [tab.dimension],
    order_by: [[tab.metrics[0], "desc"]], pagination: { limit: ROW_LIMIT } };
  if (filters.length) out.filters = filters;
  return out;
}

/** Conversion rate by ``tab.conversions`` (visitors who converted any goal / all visitors). */
export function conversionQuery(tab, common, goals) {
  return { ...common, metrics: ["visitors", "conversion_rate"], dimensions: [tab.conversions],
    filters: [...(common.filters || []), ["is", "event:goal", goals]], pagination: { limit: 1000 } };
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** Rows activate on click and on Enter/Space, like buttons. */
export function activatable(node, action) {
  node.setAttribute("tabindex", "0");
  node.setAttribute("role", "button");
  node.addEventListener("click", action);
  node.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); action(); }
  });
  return node;
}

export function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** CSV of one API response: the dimension(s), then each metric, raw values. */
export function resultsCsv(dimensions, metrics, results) {
  return csv([...dimensions, ...metrics], results.map((r) => [...r.dimensions, ...r.metrics]));
}

export function empty(message, detail) {
  return el("div", { class: "empty" }, el("p", { text: message }), detail ? el("pre", { text: detail }) : null);
}

/** The head of a panel: title, tabs, CSV button. */
export function head(title, tabs, active, onTab, onCsv) {
  const tools = el("div", { class: "tools" });
  if (tabs.length > 1) {
    const list = el("div", { class: "tabs", role: "tablist" });
    for (const tab of tabs) {
      list.append(el("button", {
        type: "button", class: "tab", role: "tab", "aria-selected": String(tab.key === active.key),
        "data-tab": tab.key, text: tab.label, onclick: () => onTab(tab.key),
      }));
    }
    tools.append(list);
  }
  tools.append(el("button", { type: "button", class: "ghost csv", "data-csv": "", text: "CSV", title: "Download this panel as CSV", onclick: onCsv }));
  return el("div", { class: "card-head" }, el("h2", { text: tabs.length > 1 ? active.label : title }), tools);
}

/** Bars behind rows: a list panel (name, main metric, secondary metrics). */
export function list(tab, results, onPick) {
  const max = Math.max(1, ...results.map((r) => r.metrics[0] || 0));
  const cols = el("div", { class: "cols" }, el("span", { text: tab.label }),
    el("span", { text: tab.metrics.map(label).join(" · ") }));
  const rows = el("ul", { class: "rows" });
  for (const r of results) {
    const value = r.dimensions[0];
    const row = el("li", { class: "row", "data-dimension": tab.dimension, "data-value": value,
      "aria-label": `Filter by ${value}` },
      el("span", { class: "bar", style: `width:${(100 * (r.metrics[0] || 0)) / max}%` }),
      el("span", { class: "name", text: value, title: value }),
      el("span", { class: "nums" }, ...r.metrics.map((m, i) =>
        el("span", { class: i ? "sub" : "main", "data-metric": tab.metrics[i], "data-raw": m ?? "", text: fmt(tab.metrics[i], m) }))));
    rows.append(activatable(row, () => onPick(tab.dimension, value)));
  }
  return [cols, rows];
}

/** A table for the performance view: every metric side by side. */
export function table(tab, results, onPick) {
  const optional = new Set(["latency_p50", "latency_p95"]); // hidden on narrow screens
  const thead = el("tr", {}, el("th", { text: tab.label }),
    ...tab.metrics.map((m) => el("th", { class: optional.has(m) ? "opt" : null,
      text: m === "conversion_rate" && tab.conversionLabel ? tab.conversionLabel : label(m) })));
  const body = el("tbody");
  for (const r of results) {
    const value = r.dimensions[0];
    const tr = el("tr", { class: "row-t", "data-dimension": tab.dimension, "data-value": value },
      el("td", { text: value, title: value }),
      ...r.metrics.map((m, i) => el("td", { class: optional.has(tab.metrics[i]) ? "opt" : null,
        "data-metric": tab.metrics[i], "data-raw": m ?? "", text: fmt(tab.metrics[i], m) })));
    body.append(activatable(tr, () => onPick(tab.dimension, value)));
  }
  return el("div", { class: "table-wrap" }, el("table", { class: "perf" }, el("thead", {}, thead), body));
}

/** Funnel steps: visitors per step, drop-off between steps. */
export function funnel(steps) {
  const max = Math.max(1, ...steps.map((s) => s.visitors));
  const box = el("div", { class: "funnel" });
  steps.forEach((s, i) => {
    const prev = i ? steps[i - 1].visitors : null;
    const drop = prev ? Math.round(100 * (1 - s.visitors / prev)) : null;
    box.append(el("div", { class: "step" },
      el("div", { class: "row" },
        el("span", { class: "bar", style: `width:${(100 * s.visitors) / max}%` }),
        el("span", { class: "name", text: `${i + 1}. ${s.step}` }),
        el("span", { class: "nums" }, el("span", { class: "main", "data-raw": s.visitors, text: fmt("visitors", s.visitors) }),
          el("span", { class: "sub", text: i ? fmt("conversion_rate", s.conversion_rate ?? (100 * s.visitors) / steps[0].visitors) : "" }))),
      drop !== null && drop > 0 ? el("div", { class: "drop", text: `▼ ${drop}% dropped off` }) : null));
  });
  return box;
}

export function vitals(values, split = null) {
  const cell = (m, v) => el("div", { class: "vital", "data-metric": m },
    el("small", { text: label(m) }), el("b", { "data-raw": v ?? "", text: fmt(m, v) }));
  const box = el("div", { class: "vitals" }, ...VITALS.map((m, i) => cell(m, values[i])));
  if (!split || split.every((v) => v === null)) return box;
  return el("div", {}, box, el("div", { class: "vitals split", title: "p75 of each part of the TTFB, per page view" },
    ...TTFB_SPLIT.map((m, i) => cell(m, split[i]))));
}
