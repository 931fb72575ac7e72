"""Pure batch aggregation: a batch of events → one compact delta for the apply script.

Events are first folded per (site, minute) into plain counters and sets of
visitor indices, then expanded to minute/hour/day keys once per distinct key, so
the per-event cost is a few dict updates. Session-level facts (entry page,
bounce, duration, exit page, first-touch attribution, goals, funnels) need the
session's stored state and are left to the script: the delta carries one
summary per session seen in the batch.

Acquisition dimensions (:data:`ACQUISITION`: referrer source and medium, channel,
UTM source, medium and campaign) are session-scoped: a pageview counts under its
session's first-touch values, which only the script knows for a session started
in an earlier batch. So a session's pageviews are folded per minute into its
summary (``m``: minute, pageviews, errors, campaign latency histogram) and the
script resolves them; only pageviews without a session are counted under their
own values here. The script also adds a session's visitor to the site's visitors
(``:v``) and to its acquisition values' visitors only once per bucket, noting in
the session state which buckets it has already added it to.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from collectors.analytics.keys import RESOLUTIONS, latency_index
from collectors.analytics.matcher import Matcher
from collectors.events import NONE, Event, dimensions, is_error, text

# Indices in :func:`collectors.events.dimensions` of the session-scoped dimensions
# (referrer_source .. utm_campaign) and of the per-pageview ones.
ACQUISITION = range(1, 7)
PER_PAGEVIEW = (0, 7, 8, 9, 10)
CAMPAIGN = 6


@dataclass(slots=True)
class _Minute:
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    visitors: set[int] = field(default_factory=set)
    dims: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    dim_visitors: dict[tuple[str, str], set[int]] = field(default_factory=lambda: defaultdict(set))
    errors: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    latency: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))


@dataclass(slots=True)
class _Session:
    site: str
    sid: str | None
    visitor: int | None
    first: float = float("inf")
    last: float = float("-inf")
    n: int = 0
    attrs: dict[str, str] = field(default_factory=dict)  # session dims of the first pageview
    exit: str = NONE
    fallback: dict[str, str] = field(default_factory=dict)  # channel/campaign w/o pageview
    goals: list[tuple[float, str]] = field(default_factory=list)
    steps: list[tuple[float, str, int]] = field(default_factory=list)
    # per minute: [pageviews, errors, {campaign latency index: n}], resolved in Lua
    acq: dict[int, list[Any]] = field(default_factory=dict)


def _session_attrs(dims: tuple[tuple[str, str], ...]) -> dict[str, str]:
    attrs = dict(dims)
    attrs["entry_page"] = attrs.pop("page")
    return attrs


def aggregate(
    events: list[Event],
    matcher: Matcher,
    prefix: str,
    retention: dict[str, int],
    session_ttl: int,
) -> Delta:
    """Fold ``events`` into the arguments of :data:`collectors.analytics.store.APPLY_LUA`.

    Bots only count as ``bot`` in the site totals. Visitor ids are sent once
    (``vids``) and referenced by 1-based index.
    """
    vindex: dict[str, int] = {}
    minutes: dict[tuple[str, int], _Minute] = defaultdict(_Minute)
    sessions: dict[tuple[str, str | None, int | None], _Session] = {}
    live: dict[str, dict[int, float]] = defaultdict(dict)
    for e in events:
        site, ts = e["site"], float(e["ts"])
        m = minutes[(site, int(ts // 60))]
        if e.get("bot"):
            m.totals["bot"] += 1
            continue
        v = e.get("visitor")
        vi = None
        if isinstance(v, str) and v:
            vi = vindex.setdefault(v, len(vindex) + 1)
            seen = live[site]
            if seen.get(vi, 0.0) < ts:
                seen[vi] = ts
        pageview = e.get("kind") == "pageview"
        path = text(e.get("path"))
        goals = matcher.goals(path, pageview, e.get("method"), e.get("status"))
        sid = e.get("session")
        if not pageview:
            m.totals["req"] += 1
            if is_error(e):
                m.totals["err"] += 1
            if goals:
                s = _session(sessions, site, sid, vi)
                s.goals.extend((ts, g) for g in goals)
                if not s.fallback:
                    s.fallback = {"channel": text(e.get("channel")),
                                  "utm_campaign": dimensions(e)[6][1]}  # fmt: skip
            continue
        m.totals["pv"] += 1
        sid = sid if isinstance(sid, str) and sid else None
        if vi is not None and sid is None:  # a session's visitor: the script adds it
            m.visitors.add(vi)
        dims = dimensions(e)
        err = is_error(e)
        if err:
            m.totals["err"] += 1
        duration = e.get("duration_ms")
        li = latency_index(duration) if isinstance(duration, int | float) else None
        for j in range(11) if sid is None else PER_PAGEVIEW:
            dv = dims[j]
            m.dims[dv] += 1
            if vi is not None:
                m.dim_visitors[dv].add(vi)
        for j in (0, CAMPAIGN) if sid is None else (0,):
            dv = dims[j]
            if err:
                m.errors[dv] += 1
            if li is not None:
                m.latency[(dv[0], dv[1], li)] += 1
        if sid is None and not goals:
            continue
        s = _session(sessions, site, sid, vi)
        s.n += 1
        if ts < s.first:
            s.first, s.attrs = ts, _session_attrs(dims)
        if ts >= s.last:
            s.last, s.exit = ts, dims[0][1]
        if goals:
            s.goals.extend((ts, g) for g in goals)
        for funnel, step in matcher.steps(path):
            s.steps.append((ts, funnel, step))
        if sid is not None:
            a = s.acq.get(int(ts // 60))
            if a is None:
                a = s.acq[int(ts // 60)] = [0, 0, defaultdict(int)]
            a[0] += 1
            a[1] += err
            if li is not None:
                a[2][li] += 1
    return _payload(minutes, sessions, live, vindex, prefix, retention, session_ttl)


def _session(
    sessions: dict[tuple[str, str | None, int | None], _Session],
    site: str,
    sid: Any,
    vi: int | None,
) -> _Session:
    sid = sid if isinstance(sid, str) and sid else None
    key = (site, sid, vi if sid is None else None)
    s = sessions.get(key)
    if s is None:
        s = sessions[key] = _Session(site, sid, vi)
    return s


@dataclass(slots=True)
class Delta:
    """One batch's arguments for :data:`collectors.analytics.store.APPLY_LUA`.

    ``header`` (sent as JSON): prefix, resolutions, session TTL, visitor ids, one
    summary per session (with its pageviews per minute, ``m``, for the script to
    count under the session's first touch), live visitors. ``flat`` is a run of plain arguments the
    script reads positionally, without decoding: per (site, minute) of the batch
    (``groups`` of them) ``base, expire-at`` for each resolution, the number of
    counter hashes and of HyperLogLogs, then per hash ``suffix, field count, field,
    delta, ...`` and per HyperLogLog ``suffix, count, visitor index, ...``. The
    script adds each to the minute, hour and day key (``base .. suffix``): a delta
    is sent once, not once per resolution.
    """

    header: dict[str, Any]
    flat: list[str | int]
    groups: int


def _payload(
    minutes: dict[tuple[str, int], _Minute],
    sessions: dict[tuple[str, str | None, int | None], _Session],
    live: dict[str, dict[int, float]],
    vindex: dict[str, int],
    prefix: str,
    retention: dict[str, int],
    session_ttl: int,
) -> Delta:
    flat: list[str | int] = []
    for (site, minute), m in minutes.items():
        ts = minute * 60
        for res, step in RESOLUTIONS:
            b = ts // step * step
            flat += (f"{prefix}{site}:{res}:{b}", b + step + retention[res])
        hashes: dict[str, dict[str, int]] = defaultdict(dict)
        hashes[":t"] = m.totals
        for (dim, val), n in m.dims.items():
            hashes[":d:" + dim]["pv:" + val] = n
        for (dim, val), n in m.errors.items():
            hashes[":d:" + dim]["e:" + val] = n
        for (dim, val, i), n in m.latency.items():
            hashes[":l:" + dim][f"{i}:{val}"] = n
        hlls: list[tuple[str, set[int]]] = [(f":u:{dim}:{val}", vis) for (dim, val), vis in m.dim_visitors.items()]
        if m.visitors:
            hlls.append((":v", m.visitors))
        flat += (len(hashes), len(hlls))
        for suffix, h in hashes.items():
            flat += (suffix, len(h))
            for f, n in h.items():
                flat += (f, n)
        for suffix, ids in hlls:
            flat += (suffix, len(ids))
            flat += ids
    sess_out = []
    for s in sessions.values():
        sess_out.append({
            "k": f"{prefix}{s.site}:s:{s.sid}" if s.sid else "",
            "site": s.site,
            "v": s.visitor or 0,
            "n": s.n,
            "first": s.first if s.n else 0,
            "last": s.last if s.n else 0,
            "a": s.attrs,
            "x": s.exit,
            "fb": s.fallback,
            "g": [g for _, g in sorted(s.goals)] if s.goals else [],
            "gt": [t for t, _ in sorted(s.goals)] if s.goals else [],
            "f": [[f, i] for _, f, i in sorted(s.steps)] if s.steps else [],
            "m": [[minute, a[0], a[1], [x for li, n in a[2].items() for x in (li, n)]]
                  for minute, a in s.acq.items()],
        })  # fmt: skip
    header = {
        "prefix": prefix,
        "res": [[r, step, retention[r]] for r, step in RESOLUTIONS],
        "sttl": session_ttl,
        "vids": list(vindex),
        "sessions": sess_out,
        "live": [[f"{prefix}{site}:live", [x for vi, ts in seen.items() for x in (ts, vi)]]
                 for site, seen in live.items()],  # fmt: skip
    }
    return Delta(header, flat, len(minutes))
