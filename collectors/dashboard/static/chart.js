// Time charts with uPlot (vendored, MIT). Labels are the API's local time labels
// ("2026-11-03" or "2026-11-03 14:00:00" in the site's zone); they are plotted as if
// UTC and drawn in UTC, so the axis shows exactly the site's local times.

import { compact, fmt } from "./format.js";

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export function labelSeconds(label) {
  const iso = label.length === 10 ? `${label}T00:00:00Z` : `${label.replace(" ", "T")}Z`;
  return Date.parse(iso) / 1000;
}

const charts = new WeakMap();

/** The indices of values with no value on either side (null when there are none). */
export function isolated(values) {
  const out = [];
  values.forEach((v, i) => {
    if (v != null && values[i - 1] == null && values[i + 1] == null) out.push(i);
  });
  return out.length ? out : null;
}

/** Draw ``lines`` ({label, values, metric, previous?, scale?, secondary?}) over ``labels`` into ``node``. */
export function drawChart(node, labels, lines, height = 260) {
  const old = charts.get(node);
  if (old) old.destroy();
  node.replaceChildren();
  if (typeof uPlot === "undefined") return; // the deferred library has not loaded (never in practice)
  const accent = css("--accent"), prev = css("--prev"), muted = css("--muted"), grid = css("--line");
  const xs = labels.map(labelSeconds);
  const hourly = labels.length && labels[0].length > 10;
  const axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  const scales = { x: { time: true } };
  const axes = [{ ...axis, space: hourly ? 70 : 60 }];
  const series = [{ value: (u, v) => (v == null ? "" : labels[xs.indexOf(v)] || "") }];
  const order = [...lines].sort((a, b) => Number(Boolean(b.previous)) - Number(Boolean(a.previous)));
  for (const line of order) {
    const scale = line.scale || "y";
    if (!scales[scale]) {
      scales[scale] = { auto: true, range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] };
      axes.push({ ...axis, scale, side: line.secondary ? 1 : 3, size: 64,
        grid: line.secondary ? { show: false } : axis.grid,
        values: (u, ticks) => ticks.map((t) => compact(line.metric, t)) });
    }
    const color = line.previous ? prev : line.secondary ? muted : accent;
    series.push({
      label: line.label, scale, stroke: color, width: line.previous ? 1.5 : 2,
      dash: line.previous ? [5, 4] : undefined,
      fill: line.previous || line.secondary ? undefined : css("--accent-soft"),
      // a value with no value on either side draws no line: a dot shows it (e.g. Apdex on
      // the one day of a month that had traffic)
      points: {
        show: labels.length <= 3, size: 7, fill: color,
        filter: (u, i, shown) => (shown ? null : isolated(line.values)),
      },
      value: (u, v) => fmt(line.metric, v),
      spanGaps: false,
    });
  }
  const width = Math.max(200, node.clientWidth || node.parentElement.clientWidth - 32);
  const chart = new uPlot({
    width, height, scales, axes, series,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    hooks: { setCursor: [(u) => tooltip(u, node, labels, lines)] },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
  }, [xs, ...order.map((l) => l.values)], node);
  charts.set(node, chart);
  return chart;
}

/** The hovered bucket's label and each line's value, beside the cursor (role=tooltip). */
function tooltip(u, node, labels, lines) {
  let tip = node.querySelector(".tooltip");
  const i = u.cursor.idx;
  if (i == null || u.cursor.left < 0) { if (tip) tip.hidden = true; return; }
  if (!tip) {
    tip = document.createElement("div");
    tip.className = "tooltip";
    tip.setAttribute("role", "tooltip");
    node.append(tip);
  }
  const rows = lines.map((line) => `<div><i class="${line.previous ? "prev" : ""}"></i>${line.label}: <b>${
    fmt(line.metric, line.values[i])}</b></div>`);
  tip.innerHTML = `<div class="when">${labels[i]}</div>${rows.join("")}`;
  tip.hidden = false;
  const left = u.cursor.left + u.over.offsetLeft;
  tip.style.left = `${Math.min(left + 12, node.clientWidth - tip.offsetWidth - 4)}px`;
  tip.style.top = `${Math.max(0, u.cursor.top + u.over.offsetTop - tip.offsetHeight - 8)}px`;
}
