"""The expected answer of a query, computed in plain Python from the same events.

Written from the README's metric definitions, independently of the SQL: rows are
the events table's rows (``rows.to_row``); sessions, first touch, goals, bots and
filters are evaluated here one event at a time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from collectors.analytics.rows import to_row
from collectors.query.model import Condition, Filter, Logic, Op, Query
from collectors.settings import CollectorSettings, glob_regex

NONE = "(none)"


def _source(r: dict[str, Any]) -> str:
    for value in (r["referrer_source"], r["utm_source"], r["referrer_host"]):
        if value:
            return str(value)
    return "Direct / None"


_EVENT = {
    "event:page": lambda r: r["path"],
    "event:hostname": lambda r: r["site"],
    "event:route": lambda r: r["route"],
    "event:status": lambda r: str(r["status"]),
    "event:kind": lambda r: r["kind"],
    "event:name": lambda r: r["name"],
    "event:upstream_bucket": lambda r: _bucket(r["upstream_ms"]),
}


def _bucket(upstream_ms: float | None) -> str:
    if upstream_ms is None:
        return ""
    for bound, label in ((100, "0000-0100ms"), (300, "0100-0300ms"), (1000, "0300-1000ms"), (3000, "1000-3000ms")):
        if upstream_ms < bound:
            return label
    return "3000ms+"
_VISIT = {
    "visit:source": _source,
    "visit:channel": lambda r: r["channel"],
    "visit:referrer": lambda r: r["referrer_url"],
    **{f"visit:{k}": itemgetter(k) for k in
       ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "device", "browser", "os", "country")},
    "visit:entry_page": lambda r: r["path"],
    "visit:exit_page": lambda r: r["path"],
}  # fmt: skip


class Oracle:
    def __init__(self, events: list[dict[str, Any]], settings: CollectorSettings) -> None:
        self.rows = [to_row(e) for e in events]
        self.settings = settings

    def is_bot(self, r: dict[str, Any]) -> bool:
        return bool(r["bot"]) or 1 <= r["bot_score"] <= self.settings.bot_score_threshold

    def goals_of(self, r: dict[str, Any]) -> list[str]:
        out = []
        for g in self.settings.goals:
            if not glob_regex(g.path).match(r["path"]):
                continue
            if g.pageview_only:
                if r["kind"] == "pageview":
                    out.append(g.name)
            elif r["via"] == "proxy" and (g.method is None or r["method"] == g.method) and (
                not g.status or r["status"] in g.status
            ):
                out.append(g.name)
        return out

    def answer(self, q: Query) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
        """``[(dimension values, {metric: value})]`` in no particular order."""
        lo, hi = q.period.start.timestamp(), q.period.end.timestamp()
        bot_filtered = "event:bot" in q.filter_dimensions()
        in_range = [r for r in self.rows if r["site"] == q.site and lo <= r["ts"] < hi]
        # a session with any event scored 1..threshold in the range is automated as a whole
        bot_sessions = {r["session"] for r in in_range
                        if r["session"] and 1 <= r["bot_score"] <= self.settings.bot_score_threshold}  # fmt: skip
        rows = [r for r in in_range
                if bot_filtered or not (self.is_bot(r) or r["session"] in bot_sessions)]  # fmt: skip
        sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if r["session"]:
                sessions[r["session"]].append(r)
        info: dict[str, dict[str, Any]] = {}
        for sid, events in sessions.items():
            pvs = sorted((e for e in events if e["kind"] == "pageview"), key=lambda e: e["ts"])
            ts = [e["ts"] for e in events]
            info[sid] = {
                "first": pvs[0] if pvs else None,
                "last": pvs[-1] if pvs else None,
                "pageviews": len(pvs),
                "interactions": sum(1 for e in events if e["kind"] in ("custom", "click")
                                    or (e["kind"] == "request" and e["method"] not in ("GET", "HEAD", "OPTIONS"))),
                "duration": int((round(max(ts) * 1000) - round(min(ts) * 1000)) // 1000),
                "engaged_ms": sum(e["engaged_ms"] for e in events if e["engaged_ms"] is not None),
                "converted": any(self.goals_of(e) for e in events),
            }  # fmt: skip
        tz = ZoneInfo(q.timezone)

        def value(r: dict[str, Any], dim: str) -> list[str]:
            if dim in _EVENT:
                return [_EVENT[dim](r)]
            if dim == "event:bot":
                return ["true" if self.is_bot(r) else "false"]
            if dim == "event:goal":
                return self.goals_of(r)
            if dim in _VISIT:
                if not r["session"]:
                    return [_VISIT[dim](r) if dim not in ("visit:entry_page", "visit:exit_page")
                            or r["kind"] == "pageview" else ""]  # fmt: skip
                s = info[r["session"]]
                pick = s["last"] if dim == "visit:exit_page" else s["first"]
                return [_VISIT[dim](pick) if pick else ""]
            granularity = q.period.granularity if dim == "time" else dim.split(":", 1)[1]
            local = dt.datetime.fromtimestamp(r["ts"], tz)
            from collectors.query.dates import label

            return [label(local, granularity)]

        def test(f: Filter, r: dict[str, Any]) -> bool:
            if isinstance(f, Logic):
                results = [test(c, r) for c in f.children]
                return not results[0] if f.op == "not" else (all(results) if f.op == "and" else any(results))
            return self._match(f, value(r, f.dimension))

        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if not all(test(f, r) for f in q.filters):
                continue
            keys: list[tuple[str, ...]] = [()]
            for d in q.dimensions:
                keys = [(*k, v) for k in keys for v in value(r, d)]
            for k in keys:
                groups[k].append(r)
        if not q.dimensions and () not in groups:
            groups[()] = []
        return [(k, self.metrics(q, v, info)) for k, v in groups.items()]

    def _match(self, c: Condition, values: list[str]) -> bool:
        def one(v: str) -> bool:
            folded = v if c.case_sensitive else v.lower()
            for x in c.values:
                x_folded = x if c.case_sensitive else x.lower()
                if c.op in (Op.IS, Op.IS_NOT) and folded == ("" if x == NONE else x_folded):
                    return True
                if c.op in (Op.CONTAINS, Op.CONTAINS_NOT) and x_folded in folded:
                    return True
                if c.op in (Op.MATCHES, Op.MATCHES_NOT) and re.search(x, v, 0 if c.case_sensitive else re.I):
                    return True
            return False

        hit = any(one(v) for v in values)
        return not hit if c.op.negated else hit

    def metrics(self, q: Query, rows: list[dict[str, Any]], info: dict[str, dict[str, Any]]) -> dict[str, Any]:
        proxy = [r for r in rows if r["via"] == "proxy"]
        sessions = {r["session"] for r in rows if r["session"]}
        pvs = [r for r in rows if r["kind"] == "pageview"]
        apdex_t = self.settings.site(q.site).apdex_threshold_ms or self.settings.apdex_threshold_ms

        def err(r: dict[str, Any]) -> bool:  # a visitor going away is no server error
            return bool(r["status"] >= 500 or r["error"] not in ("", "client_disconnect"))

        def failed(r: dict[str, Any]) -> bool:  # Apdex: errors and abandoned exchanges are frustrated
            return bool(r["status"] >= 500 or r["error"])

        def engaged(s: str) -> bool:  # GA4: > 10 s engaged, 2+ pageviews or a conversion
            return bool(info[s]["engaged_ms"] > 10_000 or info[s]["pageviews"] >= 2 or info[s]["converted"])

        def quantile(values: list[float], level: float) -> float | None:
            values = sorted(values)
            return round(values[min(len(values) - 1, int(level * len(values)))], 2) if values else None

        def ratio(num: float, den: float, scale: float = 100, digits: int = 2) -> float | None:
            return round(scale * num / den, digits) if den else None

        beacon_pages = {r["page_id"] for r in self.rows if r["via"] == "beacon" and r["site"] == q.site}
        out: dict[str, Any] = {
            "visitors": len({r["visitor"] for r in rows if r["visitor"]}),
            "visits": len(sessions),
            "pageviews": len(pvs),
            "events": sum(1 for r in rows if r["kind"] in ("pageview", "custom", "click") or self.goals_of(r)),
            "views_per_visit": ratio(sum(1 for r in pvs if r["session"]), len(sessions), 1),
            "bounce_rate": ratio(sum(1 for s in sessions if info[s]["pageviews"] == 1
                                     and info[s]["interactions"] == 0), len(sessions)),  # fmt: skip
            "visit_duration": round(sum(info[s]["duration"] for s in sessions) / len(sessions), 1)
            if sessions else None,
            "requests": len(proxy),
            "error_rate": ratio(sum(1 for r in proxy if err(r)), len(proxy)),
            "bytes": sum(r["bytes_out"] for r in proxy),
            "apdex": ratio(sum(1 for r in proxy if not failed(r) and r["duration_ms"] <= apdex_t)
                           + sum(1 for r in proxy if not failed(r) and apdex_t < r["duration_ms"] <= 4 * apdex_t) / 2,
                           len(proxy), 1, 3),  # fmt: skip
            "engaged_time": ratio(sum(r["engaged_ms"] for r in rows if r["engaged_ms"] is not None),
                                  sum(1 for r in rows if r["engaged_ms"] is not None), 0.001, 1),  # fmt: skip
            "beacon_coverage": ratio(sum(1 for r in pvs if r["via"] == "proxy" and r["id"] in beacon_pages),
                                     sum(1 for r in pvs if r["via"] == "proxy")),  # fmt: skip
        }
        out["engaged_sessions"] = sum(1 for s in sessions if engaged(s))
        out["engagement_rate"] = ratio(out["engaged_sessions"], len(sessions))
        proxy_pvs = [r for r in pvs if r["via"] == "proxy"]
        out["abandonment_rate"] = ratio(sum(1 for r in proxy_pvs if r["error"] == "client_disconnect"), len(proxy_pvs))
        # the TTFB split: each proxied pageview with the browser's TTFB of its page (the first
        # vitals report naming it, up to an hour after the range)
        lo, hi = q.period.start.timestamp(), q.period.end.timestamp() + 3600
        reports = sorted((r for r in self.rows if r["site"] == q.site and r["via"] == "beacon"
                          and r["kind"] == "vitals" and r["page_id"] and r["ttfb"] is not None
                          and lo <= r["ts"] < hi), key=lambda r: -r["ts"])  # fmt: skip
        ttfb = {r["page_id"]: r["ttfb"] for r in reports}  # the earliest wins
        split: dict[str, list[float]] = {"network": [], "proxy": [], "origin": []}
        for r in proxy_pvs:
            if r["upstream_ms"] is None or r["id"] not in ttfb:
                continue
            t, u = ttfb[r["id"]], r["upstream_ms"]
            own = max(0.0, min(r["duration_ms"] - u, t - u))
            split["origin"].append(u)
            split["proxy"].append(own)
            split["network"].append(max(0.0, t - u - own))
        for part, values in split.items():
            out[f"ttfb_{part}_p75"] = quantile(values, 0.75)
        scrolls = [r["scroll_depth"] for r in rows if r["scroll_depth"] is not None]
        out["scroll_depth"] = round(sum(scrolls) / len(scrolls), 1) if scrolls else None
        for p in (50, 75, 95, 99):
            out[f"latency_p{p}"] = quantile([r["duration_ms"] for r in proxy], p / 100)
            out[f"upstream_p{p}"] = quantile([r["upstream_ms"] for r in proxy if r["upstream_ms"] is not None], p / 100)
        for v in ("lcp", "inp", "cls", "fcp", "ttfb"):
            out[f"{v}_p75"] = quantile([r[v] for r in rows if r[v] is not None], 0.75)
        return out
