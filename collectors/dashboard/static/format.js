// Numbers, dates and CSV for people: pure functions, no DOM.

const LOCALE = undefined; // the browser's

const integer = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 2, minimumFractionDigits: 0 });
const compactFmt = new Intl.NumberFormat(LOCALE, { notation: "compact", maximumFractionDigits: 1 });

// How each API metric reads. Units follow the API: rates are percentages (0–100),
// apdex is 0–1, durations are seconds, latencies and Web Vitals are milliseconds.
export const METRICS = {
  visitors: { label: "Visitors", kind: "count" },
  visits: { label: "Visits", kind: "count" },
  pageviews: { label: "Pageviews", kind: "count" },
  events: { label: "Events", kind: "count" },
  views_per_visit: { label: "Views per visit", kind: "decimal" },
  bounce_rate: { label: "Bounce rate", kind: "percent", lowerIsBetter: true },
  visit_duration: { label: "Visit duration", kind: "duration" },
  conversion_rate: { label: "Conversion rate", kind: "percent" },
  percentage: { label: "%", kind: "percent" },
  requests: { label: "Requests", kind: "count" },
  error_rate: { label: "Error rate", kind: "percent", lowerIsBetter: true },
  latency_p50: { label: "p50 latency", kind: "ms", lowerIsBetter: true },
  latency_p75: { label: "p75 latency", kind: "ms", lowerIsBetter: true },
  latency_p95: { label: "p95 latency", kind: "ms", lowerIsBetter: true },
  latency_p99: { label: "p99 latency", kind: "ms", lowerIsBetter: true },
  apdex: { label: "Apdex", kind: "apdex" },
  lcp_p75: { label: "LCP p75", kind: "ms", lowerIsBetter: true },
  inp_p75: { label: "INP p75", kind: "ms", lowerIsBetter: true },
  cls_p75: { label: "CLS p75", kind: "cls", lowerIsBetter: true },
  fcp_p75: { label: "FCP p75", kind: "ms", lowerIsBetter: true },
  ttfb_p75: { label: "TTFB p75", kind: "ms", lowerIsBetter: true },
  engaged_time: { label: "Engaged time", kind: "duration" },
  scroll_depth: { label: "Scroll depth", kind: "percent" },
  beacon_coverage: { label: "Beacon coverage", kind: "percent" },
  ttfb_network_p75: { label: "TTFB network p75", kind: "ms", lowerIsBetter: true },
  ttfb_proxy_p75: { label: "TTFB proxy p75", kind: "ms", lowerIsBetter: true },
  ttfb_origin_p75: { label: "TTFB origin p75", kind: "ms", lowerIsBetter: true },
  engaged_sessions: { label: "Engaged sessions", kind: "count" },
  engagement_rate: { label: "Engagement rate", kind: "percent" },
  abandonment_rate: { label: "Abandoned", kind: "percent", lowerIsBetter: true },
};

export function label(metric) {
  return (METRICS[metric] || { label: metric }).label;
}

export function duration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), rest = s % 60;
  return h ? `${h}h ${m}m` : `${m}m ${rest}s`;
}

export function ms(value) {
  if (value >= 10000) return `${decimal.format(Math.round(value / 100) / 10)} s`;
  if (value >= 100) return `${integer.format(value)} ms`;
  if (value >= 10) return `${decimal.format(Math.round(value * 10) / 10)} ms`;
  return `${decimal.format(Math.round(value * 100) / 100)} ms`;
}

/** One metric value as people read it; null (no data) is an en dash. */
export function fmt(metric, value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  switch ((METRICS[metric] || {}).kind) {
    case "percent": return `${decimal.format(Math.round(value * 10) / 10)}%`;
    case "duration": return duration(value);
    case "ms": return ms(value);
    case "apdex": return value.toFixed(2);
    case "cls": return value.toFixed(3);
    case "decimal": return decimal.format(Math.round(value * 100) / 100);
    default: return integer.format(value);
  }
}

/** Axis ticks: short forms (12.3k, 420 ms, 45%). */
export function compact(metric, value) {
  const kind = (METRICS[metric] || {}).kind;
  if (kind === "count") return compactFmt.format(value);
  return fmt(metric, value);
}

/** Change against the previous period: the API's ``change`` when it gave one (percent
 * for counts, the difference for rates), else computed the same way. ``good`` says
 * whether the direction is an improvement for this metric. */
export function change(metric, now, before, given) {
  const info = METRICS[metric] || {};
  const byPoints = info.kind === "percent" || info.kind === "apdex";
  // From nothing to something is not "+100%" (the API's convention): say it is new.
  if (!byPoints && before === 0 && now > 0) {
    return { delta: given ?? null, text: "▲ new", dir: 1, good: !info.lowerIsBetter };
  }
  let delta = given;
  if (delta === undefined || delta === null) {
    if (now === null || before === null || now === undefined || before === undefined) return null;
    if (byPoints) delta = now - before;
    else if (before === 0) return now === 0 ? { delta: 0, text: "0%", dir: 0, good: true } : null;
    else delta = ((now - before) / before) * 100;
  }
  const rounded = info.kind === "apdex" ? Math.round(delta * 100) / 100 : Math.round(delta);
  const dir = Math.sign(rounded);
  const arrow = dir > 0 ? "▲" : dir < 0 ? "▼" : "";
  const size = Math.abs(rounded);
  let text;
  if (info.kind === "apdex") text = `${arrow}${size.toFixed(2)}`;
  else if (byPoints) text = `${arrow}${integer.format(size)} pp`;
  else text = `${arrow}${integer.format(size)}%`;
  const good = dir === 0 || (dir > 0) !== Boolean(info.lowerIsBetter);
  return { delta: rounded, text, dir, good };
}

// ---- dates in the site's time zone -----------------------------------------------

/** Today's date (YYYY-MM-DD) in ``tz``. */
export function today(tz, now = new Date()) {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" })
    .formatToParts(now);
  const get = (t) => parts.find((p) => p.type === t).value;
  return `${get("year")}-${get("month")}-${get("day")}`;
}

function addDays(iso, days) {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

function monthStart(iso, back = 0) {
  const d = new Date(`${iso.slice(0, 7)}-01T00:00:00Z`);
  d.setUTCMonth(d.getUTCMonth() - back);
  return d.toISOString().slice(0, 10);
}

export const PRESETS = [
  ["day", "Today"], ["yesterday", "Yesterday"], ["7d", "Last 7 days"], ["30d", "Last 30 days"],
  ["month", "Month to date"], ["lastmonth", "Last month"], ["12mo", "Last 12 months"], ["all", "All time"],
];

/** A preset (or ``custom`` with from/to) → the API's date_range plus the time bucket
 * that fits it. Explicit dates everywhere but "all", so "today" is the site's today. */
export function dateRange(period, tz, from, to, now = new Date()) {
  const t = today(tz, now);
  let range;
  switch (period) {
    case "day": range = [t, t]; break;
    case "yesterday": range = [addDays(t, -1), addDays(t, -1)]; break;
    case "7d": range = [addDays(t, -6), t]; break;
    case "30d": range = [addDays(t, -29), t]; break;
    case "month": range = [monthStart(t), t]; break;
    case "lastmonth": range = [monthStart(t, 1), addDays(monthStart(t), -1)]; break;
    case "12mo": range = [monthStart(t, 11), t]; break;
    case "custom": range = from && to ? (from <= to ? [from, to] : [to, from]) : [addDays(t, -29), t]; break;
    default: return { date_range: "all", interval: "time:month" };
  }
  const days = Math.round((Date.parse(range[1]) - Date.parse(range[0])) / 86400000) + 1;
  const interval = days <= 2 ? "time:hour" : days <= 93 ? "time:day" : days <= 370 ? "time:week" : "time:month";
  return { date_range: range, interval };
}

// ---- CSV ----------------------------------------------------------------------------

function cell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** RFC 4180 text: a header row, then raw values (numbers unformatted, as the API gave them). */
export function csv(header, rows) {
  return [header, ...rows].map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
}
