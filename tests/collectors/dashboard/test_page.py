"""The dashboard in real headless Chromium against a real Footfall with a known
population: what the page shows equals what the API answers, filters by clicking,
comparisons, CSV, a phone-width viewport, and the credential."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import urllib.error
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from tests.collectors.dashboard.conftest import SITE, TOKEN, TZ, Footfall, local_range

KPIS = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration",
        "requests", "error_rate", "latency_p75", "apdex"]  # fmt: skip
PAGEVIEWS = [["is", "event:kind", ["pageview"]]]
# panel id → (dimension, metrics, own conditions) of its first tab, as panels.js asks
PANELS = {
    "sources": ("visit:source", ["visitors"], []),
    "pages": ("event:page", ["visitors", "pageviews"], PAGEVIEWS),
    "locations": ("visit:country", ["visitors"], []),
    "devices": ("visit:device", ["visitors"], []),
    "goals": ("event:goal", ["visitors", "events", "conversion_rate"], []),
    "perf-pages": ("event:page", ["requests", "latency_p50", "latency_p75", "latency_p95", "error_rate",
                                  "abandonment_rate"], PAGEVIEWS),
    "perf-campaigns": ("visit:utm_campaign",
                       ["requests", "latency_p50", "latency_p75", "latency_p95", "error_rate"], []),
}
Page = Any  # playwright.sync_api.Page
# A real footfall process, its store and a real browser: the first test also pays for
# starting them, and this 2-core machine is shared.
pytestmark = pytest.mark.timeout(180)


def number(text: str) -> float | None:
    return None if text in ("", "None", "null") else float(text)


def numbers(values: list[Any]) -> list[float | None]:
    return [None if v is None else float(v) for v in values]


def open_page(footfall: Footfall, browser: Any, query: str = "", **context: Any) -> tuple[Page, list[str]]:
    """A signed-in page on ``/dashboard?query``, ready; and the list its console errors go to."""
    ctx = browser.new_context(accept_downloads=True, **context)
    ctx.add_cookies([footfall.cookie()])
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{footfall.admin}/dashboard?{query}")
    page.wait_for_selector("body[data-ready]")
    return page, errors


def questions(request: Any) -> list[dict[str, Any]]:
    """The Stats API queries a request of the page carries: the page sends the queries of
    one turn of its event loop as one ``/api/v2/batch`` (api.js), a lone one as ``/query``."""
    if "/api/v2/batch" in request.url:
        return list(json.loads(request.post_data or "{}").get("queries", []))
    if "/api/v2/query" in request.url:
        return [json.loads(request.post_data or "{}")]
    return []


def kpis(page: Page) -> dict[str, float | None]:
    raw = page.eval_on_selector_all(
        ".kpi", "cs => cs.map(c => [c.dataset.metric, c.querySelector('.value').dataset.raw])"
    )
    return {m: number(v) for m, v in raw}


def panel_rows(page: Page, panel: str) -> list[tuple[str, list[float | None]]]:
    raw = page.eval_on_selector_all(
        f"#panel-{panel} [data-value]",
        "rs => rs.map(r => [r.dataset.value, [...r.querySelectorAll('[data-raw]')].map(x => x.dataset.raw)])",
    )
    return [(value, [number(v) for v in vals]) for value, vals in raw]


def api_rows(footfall: Footfall, panel: str, date_range: list[str], filters: list[Any]) -> list[tuple[str, Any]]:
    dimension, metrics, where = PANELS[panel]
    body: dict[str, Any] = {"metrics": metrics, "date_range": date_range, "dimensions": [dimension],
                            "order_by": [[metrics[0], "desc"]], "pagination": {"limit": 10}}  # fmt: skip
    if filters + where:
        body["filters"] = filters + where
    rows = [(r["dimensions"][0], numbers(r["metrics"])) for r in footfall.query(body)["results"]]
    if panel.startswith("perf-"):  # the conversion rate beside the latency: a second question, joined
        goals = ["is", "event:goal", ["buy", "pricing"]]
        landing = "visit:entry_page" if panel == "perf-pages" else dimension  # pages: the visits landing there
        rates = footfall.query({"metrics": ["visitors", "conversion_rate"], "date_range": date_range,
                                "dimensions": [landing], "filters": [*filters, goals]})  # fmt: skip
        by_value = {r["dimensions"][0]: r["metrics"][1] for r in rates["results"]}
        rows = [(v, [*m, float(by_value.get(v, 0))]) for v, m in rows]
    return rows


def api_kpis(footfall: Footfall, date_range: list[str], filters: list[Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"metrics": KPIS, "date_range": date_range,
                            "include": {"comparisons": {"mode": "previous_period"}}}  # fmt: skip
    if filters:
        body["filters"] = filters
    return footfall.query(body)["results"][0]  # type: ignore[no-any-return]


def test_page_loads_without_console_errors_and_shows_the_apis_numbers(footfall: Footfall, browser: Any) -> None:
    page, errors = open_page(footfall, browser, f"site={SITE}&period=30d")
    days30 = local_range(30)
    expected = api_kpis(footfall, days30, [])
    assert kpis(page) == dict(zip(KPIS, numbers(expected["metrics"]), strict=True))
    assert expected["metrics"][KPIS.index("visitors")] > 0
    for panel in PANELS:
        assert panel_rows(page, panel) == api_rows(footfall, panel, days30, []), panel
    # formatted for people: a duration, a percentage, milliseconds with their unit
    text = {m: page.text_content(f'.kpi[data-metric="{m}"] .value') for m in KPIS}
    assert re.fullmatch(r"(\d+m \d+s|\d+s)", text["visit_duration"] or ""), text
    assert re.fullmatch(r"[\d.]+%", text["bounce_rate"] or ""), text
    assert re.fullmatch(r"[\d.,]+ ms", text["latency_p75"] or ""), text
    assert page.text_content("#realtime") is not None
    assert errors == []
    page.context.close()


def test_the_vitals_card_splits_the_ttfb_like_the_api(footfall: Footfall, browser: Any) -> None:
    page, errors = open_page(footfall, browser, f"site={SITE}&period=30d")
    split = ["ttfb_network_p75", "ttfb_proxy_p75", "ttfb_origin_p75"]
    raw = page.eval_on_selector_all(
        "#panel-vitals .split [data-metric]", "cs => cs.map(c => [c.dataset.metric, c.querySelector('b').dataset.raw])"
    )
    expected = footfall.query({"metrics": split, "date_range": local_range(30)})["results"][0]["metrics"]
    assert all(v is not None and v > 0 for v in expected), expected
    assert {m: number(v) for m, v in raw} == dict(zip(split, numbers(expected), strict=True))
    assert errors == []
    page.context.close()


def test_a_comparison_shows_the_apis_change(footfall: Footfall, browser: Any) -> None:
    page, _ = open_page(footfall, browser, f"site={SITE}&period=7d")
    expected = api_kpis(footfall, local_range(7), [])["comparison"]["change"]
    for metric, change in zip(KPIS, expected, strict=True):
        delta = page.get_attribute(f'.kpi[data-metric="{metric}"] .delta', "data-delta")
        if change is None:
            assert delta is None, metric
            continue
        assert delta is not None and float(delta) == pytest.approx(change, abs=0.01 if metric == "apdex" else 0.5)
    visitors = expected[0]
    arrow = "▲" if visitors > 0 else "▼" if visitors < 0 else ""
    shown = page.text_content('.kpi[data-metric="visitors"] .delta') or ""
    assert shown == (f"{arrow}{abs(round(visitors))}%" if visitors else "no change")
    # from an empty previous period: "new", not the API's +100 %; a rate still moves by points
    changed = page.evaluate("""async () => {
        const { change } = await import('/dashboard/static/format.js');
        return [change('visitors', 12, 0, 100), change('bounce_rate', 40, 0, 40), change('visitors', 0, 0, 0)];
    }""")
    assert [c["text"] for c in changed] == ["▲ new", "▲40 pp", "0%"]
    page.context.close()


def test_clicking_a_source_row_filters_the_url_and_every_panel(footfall: Footfall, browser: Any) -> None:
    page, errors = open_page(footfall, browser, f"site={SITE}&period=30d")
    before = kpis(page)
    page.click('#panel-sources [data-value="Google"]')
    page.wait_for_selector("body[data-ready]")
    assert parse_qs(urlsplit(page.url).query)["f"] == ["visit:source=Google"]
    assert page.text_content(".chip span") == "Source is Google"
    filters = [["is", "visit:source", ["Google"]]]
    days30 = local_range(30)
    after = kpis(page)
    assert after == dict(zip(KPIS, numbers(api_kpis(footfall, days30, filters)["metrics"]), strict=True))
    assert after["visitors"] is not None and before["visitors"] is not None and after["visitors"] < before["visitors"]
    for panel in PANELS:
        assert panel_rows(page, panel) == api_rows(footfall, panel, days30, filters), panel
    # a second filter by keyboard (Enter on a focused row) combines with the first
    page.focus('#panel-devices [data-value="mobile"]')
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-ready]")
    assert parse_qs(urlsplit(page.url).query)["f"] == ["visit:source=Google", "visit:device=mobile"]
    both = [*filters, ["is", "visit:device", ["mobile"]]]
    assert kpis(page) == dict(zip(KPIS, numbers(api_kpis(footfall, days30, both)["metrics"]), strict=True))
    # the bookmark opens the same view; removing a chip removes its filter
    bookmarked, _ = open_page(footfall, browser, urlsplit(page.url).query)
    assert kpis(bookmarked) == kpis(page)
    bookmarked.context.close()
    page.click('.chip[data-filter="visit:source"] button')
    page.wait_for_selector("body[data-ready]")
    assert parse_qs(urlsplit(page.url).query)["f"] == ["visit:device=mobile"]
    assert errors == []
    page.context.close()


def _download(page: Page, selector: str) -> list[list[str]]:
    with page.expect_download() as info:
        page.click(selector)
    path = info.value.path()
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(io.StringIO(fh.read())))


def _cells(values: list[Any]) -> list[str]:
    return ["" if v is None else str(v) for v in values]


def test_csv_exports_equal_the_api(footfall: Footfall, browser: Any) -> None:
    page, _ = open_page(footfall, browser, f"site={SITE}&period=30d")
    days30 = local_range(30)
    rows = _download(page, "#panel-sources [data-csv]")
    assert rows[0] == ["visit:source", "visitors"]
    assert [[r[0], float(r[1])] for r in rows[1:]] == [[v, m[0]] for v, m in api_rows(footfall, "sources", days30, [])]
    view = _download(page, "#export")
    series = footfall.query({"metrics": KPIS, "date_range": days30, "dimensions": ["time:day"],
                             "include": {"time_labels": True}})  # fmt: skip
    by_day = {r["dimensions"][0]: r["metrics"] for r in series["results"]}
    assert view[0] == ["time", *KPIS]
    assert [r[0] for r in view[1:]] == series["meta"]["time_labels"]
    for row in view[1:]:
        if row[0] in by_day:
            assert [number(c) for c in row[1:]] == numbers(by_day[row[0]]), row[0]
        else:  # an empty day: zero counts, undefined rates
            assert row[1:4] == ["0", "0", "0"]
    page.context.close()


def test_a_phone_width_viewport_has_no_horizontal_scroll(footfall: Footfall, browser: Any) -> None:
    page, errors = open_page(footfall, browser, f"site={SITE}&period=30d", viewport={"width": 360, "height": 740})
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]")
    assert widths[0] <= 360 and widths[1] <= 360, widths
    assert errors == []
    page.context.close()


def test_an_unknown_site_says_so_instead_of_zeros(footfall: Footfall, browser: Any) -> None:
    page, _ = open_page(footfall, browser, "site=nobody.example&period=30d")
    assert "Unknown site" in (page.text_content("#notice") or "")
    assert page.query_selector_all(".kpi") == []
    page.context.close()


def test_without_the_credential_the_api_says_401_and_the_page_asks_for_it(footfall: Footfall, browser: Any) -> None:
    with pytest.raises(urllib.error.HTTPError) as exc:
        footfall.api("/api/v2/query", {"site_id": SITE, "metrics": ["visitors"], "date_range": "30d"}, token=None)
    assert exc.value.code == 401
    exc.value.close()  # the error is the response: close its connection (an unclosed one warns)
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{footfall.admin}/dashboard?site={SITE}&period=7d")
    assert urlsplit(page.url).path == "/login"
    page.fill("#token", "not-the-token-at-all")
    page.click("button[type=submit]")
    assert "not right" in (page.text_content(".err") or "")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready]")
    assert urlsplit(page.url).path == "/dashboard" and "period=7d" in page.url
    assert page.query_selector_all(".kpi")
    ctx.close()


def test_tabs_and_cards_switch_without_reloading_the_rest(footfall: Footfall, browser: Any) -> None:
    page, errors = open_page(footfall, browser, f"site={SITE}&period=30d")
    asked: list[dict[str, Any]] = []
    page.on("request", lambda r: asked.extend(questions(r)))
    page.click('#panel-sources [data-tab="channels"]')
    page.wait_for_selector('#panel-sources [data-dimension="visit:channel"]')
    body = {"metrics": ["visitors"], "date_range": local_range(30), "dimensions": ["visit:channel"],
            "order_by": [["visitors", "desc"]], "pagination": {"limit": 10}}  # fmt: skip
    expected = [(r["dimensions"][0], numbers(r["metrics"])) for r in footfall.query(body)["results"]]
    assert panel_rows(page, "sources") == expected
    assert parse_qs(urlsplit(page.url).query)["t.sources"] == ["channels"]
    assert len(asked) == 1 and asked[0]["dimensions"] == ["visit:channel"]  # one question, for this panel only
    page.click('.kpi[data-metric="bounce_rate"]')
    assert page.text_content("#chart-title") == "Bounce rate"
    assert page.get_attribute('.kpi[data-metric="bounce_rate"]', "aria-pressed") == "true"
    assert parse_qs(urlsplit(page.url).query)["metric"] == ["bounce_rate"]
    assert len(asked) == 1  # the chart already had every KPI
    assert errors == []
    page.context.close()


def test_a_share_link_shows_one_site_read_only(footfall: Footfall, browser: Any) -> None:
    admin, _ = open_page(footfall, browser, f"site={SITE}&period=30d")
    admin.click("#share")
    admin.wait_for_selector("#notice:has-text('/share/')")  # the link comes back from the API
    link = re.search(r"http://\S+/share/\S+", admin.text_content("#notice") or "")
    assert link is not None
    admin.context.close()
    ctx = browser.new_context()
    guest = ctx.new_page()
    errors: list[str] = []
    guest.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    guest.goto(link.group(0))
    guest.wait_for_selector("body[data-ready]")
    assert urlsplit(guest.url).path == "/dashboard"
    assert guest.eval_on_selector_all("#site option", "os => os.map(o => o.value)") == [SITE]
    assert guest.is_hidden("#share")
    assert kpis(guest)["visitors"] == api_kpis(footfall, local_range(30), [])["metrics"][0]
    assert errors == []
    ctx.close()


def test_hovering_the_chart_shows_the_buckets_numbers(footfall: Footfall, browser: Any) -> None:
    page, errors = open_page(footfall, browser, f"site={SITE}&period=30d")
    over = page.locator("#chart .u-over")
    box = over.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    tip = page.wait_for_selector("#chart .tooltip:not([hidden])")
    when = tip.eval_on_selector(".when", "w => w.textContent")
    shown = tip.eval_on_selector_all("b", "bs => bs.map(b => b.textContent)")
    days = footfall.query({"metrics": ["visitors"], "date_range": local_range(30), "dimensions": ["time:day"],
                           "include": {"comparisons": {"mode": "previous_period"}}})["results"]  # fmt: skip
    row = next(r for r in days if r["dimensions"][0] == when)
    assert [int(re.sub(r"\D", "", s) or 0) for s in shown] == [row["metrics"][0], row["comparison"]["metrics"][0]]
    page.mouse.move(1, 1)  # off the chart: the tooltip goes
    page.wait_for_selector("#chart .tooltip", state="hidden")
    assert errors == []
    page.context.close()


@pytest.mark.parametrize(
    ("panel", "dimension"), [("perf-pages", "event:page"), ("perf-campaigns", "visit:utm_campaign")]
)
def test_web_vitals_per_page_and_campaign_equal_the_api(
    footfall: Footfall, browser: Any, panel: str, dimension: str
) -> None:
    page, errors = open_page(footfall, browser, f"site={SITE}&period=30d")
    page.click(f'#panel-{panel} [data-tab="vitals-{panel.split("-")[1]}"]')
    page.wait_for_selector(f'#panel-{panel}:not(.loading) [data-value]')
    vitals = ["lcp_p75", "inp_p75", "cls_p75", "fcp_p75", "ttfb_p75"]
    body = {"metrics": vitals, "date_range": local_range(30), "dimensions": [dimension],
            "filters": [["is", "event:kind", ["vitals"]]], "order_by": [["lcp_p75", "desc"]],
            "pagination": {"limit": 10}}  # fmt: skip
    expected = [(r["dimensions"][0], numbers(r["metrics"])) for r in footfall.query(body)["results"]]
    assert expected and any(m[0] for _, m in expected), "the population has vitals reports"
    assert panel_rows(page, panel) == expected
    assert errors == []
    page.context.close()


def test_comparing_with_a_year_before_shows_the_apis_year_over_year_change(footfall: Footfall, browser: Any) -> None:
    page, errors = open_page(footfall, browser, f"site={SITE}&period=7d")
    page.select_option("#compare", "year_over_year")
    page.wait_for_function("() => new URL(location.href).searchParams.get('compare') === 'year_over_year'")
    page.wait_for_selector("body[data-ready]")
    page.wait_for_selector("#chart-legend:has-text('a year before')")
    body = {"metrics": KPIS, "date_range": local_range(7), "include": {"comparisons": {"mode": "year_over_year"}}}
    expected = footfall.query(body)["results"][0]["comparison"]
    assert expected["metrics"][KPIS.index("visitors")] == 0, "the sample has no data a year back"
    for metric, change in zip(KPIS, expected["change"], strict=True):
        shown = page.query_selector(f'.kpi[data-metric="{metric}"] .delta')  # none when there is no change to show
        if change is None:
            assert shown is None, metric
            continue
        assert shown is not None and float(shown.get_attribute("data-delta") or "nan") == pytest.approx(change, abs=0.5)
    assert page.text_content('.kpi[data-metric="visitors"] .delta') == "▲ new"
    page.reload()  # the choice is in the URL
    page.wait_for_selector("body[data-ready]")
    assert page.input_value("#compare") == "year_over_year"
    assert errors == []
    page.context.close()


def _preset_range(period: str) -> tuple[list[str] | str, str]:
    """What each preset should ask for, in the site's zone (format.js dateRange), and its bucket."""
    today = dt.datetime.now(ZoneInfo(TZ)).date()
    month = today.replace(day=1)
    back = (month.year * 12 + month.month - 1) - 11
    ranges: dict[str, list[dt.date]] = {
        "day": [today, today], "yesterday": [today - dt.timedelta(days=1)] * 2,
        "7d": [today - dt.timedelta(days=6), today], "30d": [today - dt.timedelta(days=29), today],
        "month": [month, today],
        "lastmonth": [(month - dt.timedelta(days=1)).replace(day=1), month - dt.timedelta(days=1)],
        "12mo": [dt.date(back // 12, back % 12 + 1, 1), today],
    }  # fmt: skip
    if period not in ranges:
        return "all", "time:month"
    first, last = ranges[period]
    days = (last - first).days + 1
    bucket = "time:hour" if days <= 2 else "time:day" if days <= 93 else "time:week" if days <= 370 else "time:month"
    return [first.isoformat(), last.isoformat()], bucket


@pytest.mark.parametrize("period", ["day", "yesterday", "month", "lastmonth", "12mo", "all"])
def test_every_preset_asks_for_its_range_in_the_sites_zone(footfall: Footfall, browser: Any, period: str) -> None:
    page, errors = open_page(footfall, browser, f"site={SITE}&period=7d")
    asked: list[dict[str, Any]] = []
    page.on("request", lambda r: asked.extend(questions(r)))
    page.select_option("#period", period)
    page.wait_for_function(f"() => new URL(location.href).searchParams.get('period') === '{period}'")
    page.wait_for_selector("body[data-ready]")
    date_range, bucket = _preset_range(period)
    totals = next(q for q in asked if not q.get("dimensions") and "apdex" in q["metrics"])
    chart = next(q for q in asked if q.get("dimensions", [""])[0].startswith("time"))
    assert totals["date_range"] == date_range and chart["date_range"] == date_range
    assert chart["dimensions"] == [bucket]
    expected = footfall.query({"metrics": KPIS, "date_range": date_range})["results"][0]["metrics"]
    assert kpis(page) == dict(zip(KPIS, numbers(expected), strict=True))
    assert errors == []
    page.context.close()


# Draws a chart of one line into a fresh node on the page and counts the canvas pixels
# painted in the line's colour (the accent, ±24 per channel for anti-aliasing).
_DRAW = """async (values) => {
  const { drawChart } = await import('/dashboard/static/chart.js');
  const node = document.createElement('div');
  node.style.width = '600px';
  document.body.append(node);
  const labels = values.map((_, i) => `2026-11-0${i + 1}`);
  drawChart(node, labels, [{ label: 'Apdex', values, metric: 'apdex' }], 200);
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));  // uPlot draws on a frame
  const canvas = node.querySelector('canvas');
  const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const accent = getComputedStyle(document.documentElement).getPropertyValue('--accent').trim();
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(accent.slice(i, i + 2), 16));
  let n = 0;
  for (let i = 0; i < px.length; i += 4) {
    const near = Math.abs(px[i] - r) < 24 && Math.abs(px[i + 1] - g) < 24 && Math.abs(px[i + 2] - b) < 24;
    if (px[i + 3] > 200 && near) n++;
  }
  node.remove();
  return n;
}"""


def test_a_value_without_neighbours_is_drawn_as_a_dot(footfall: Footfall, browser: Any) -> None:
    """A month with traffic on one day gives Apdex and latency lines of one value among
    gaps: uPlot draws no line for it, so the chart drew nothing at all."""
    page, errors = open_page(footfall, browser, f"site={SITE}&period=30d")
    assert page.evaluate(_DRAW, [None, None, None, None, None]) == 0  # nothing to draw: no accent pixel
    assert page.evaluate(_DRAW, [None, None, 0.9, None, None]) > 20  # the one value: a dot
    assert page.evaluate(_DRAW, [0.5, 0.9, None, 0.7, None]) > page.evaluate(_DRAW, [0.5, 0.9, None, None, None])
    assert errors == []
    page.context.close()
