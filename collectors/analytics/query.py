"""Reading the aggregates: the numbers behind ``/api/v1/*``.

Every range query reads the disjoint bucket cover of ``[start, end)`` (whole days,
then hours, then minutes, see :func:`keys.cover`): counters are summed, unique
visitors are one ``PFCOUNT`` over the cover's HyperLogLogs (a union, so within
HLL's ~0.8 % standard error). Rates are ``None`` when their denominator is 0.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import redis.asyncio as aioredis

from collectors.analytics.keys import STEP, cover, percentile
from collectors.settings import CollectorSettings

SESSION_SORTED = frozenset({"entry_page", "exit_page"})


def _ratio(a: float, b: float, digits: int = 4) -> float | None:
    return round(a / b, digits) if b else None


def _split(field: bytes) -> tuple[str, str]:
    kind, _, value = field.decode().partition(":")
    return kind, value


class Query:
    def __init__(self, redis: aioredis.Redis, prefix: str, settings: CollectorSettings) -> None:
        self.redis = redis
        self.prefix = prefix
        self.settings = settings
        self.retention = settings.retention_seconds()

    def bases(self, site: str, start: int, end: int) -> list[str]:
        now = int(time.time())
        oldest = {res: now - self.retention[res] for res in ("m", "h")}
        return [f"{self.prefix}{site}:{res}:{t}" for res, t in cover(start, end, oldest)]

    async def _hashes(self, keys: list[str]) -> list[dict[bytes, bytes]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            return list(await pipe.execute())

    async def _sum(self, keys: list[str]) -> dict[str, int]:
        total: dict[str, int] = defaultdict(int)
        for h in await self._hashes(keys):
            for f, n in h.items():
                total[f.decode()] += int(n)
        return total

    async def _pfcount(self, keys: list[str]) -> int:
        return int(await self.redis.pfcount(*keys)) if keys else 0

    @staticmethod
    def _stats(t: dict[str, int], visitors: int) -> dict[str, Any]:
        s = t.get("s", 0)
        return {
            "pageviews": t.get("pv", 0),
            "visitors": visitors,
            "sessions": s,
            "bounce_rate": _ratio(t.get("b", 0), s),
            "views_per_session": _ratio(t.get("pv", 0), s, 2),
            "avg_session_seconds": _ratio(t.get("dur", 0) / 1000, s, 1),
            "requests": t.get("req", 0),
            "errors": t.get("err", 0),
            "bot_hits": t.get("bot", 0),
        }

    async def stats(self, site: str, start: int, end: int) -> dict[str, Any]:
        bases = self.bases(site, start, end)
        totals = await self._sum([b + ":t" for b in bases])
        return self._stats(totals, await self._pfcount([b + ":v" for b in bases]))

    async def current_visitors(self, site: str, now: float | None = None) -> int:
        now = time.time() if now is None else now
        window = self.settings.live_window_seconds
        return int(await self.redis.zcount(f"{self.prefix}{site}:live", now - window, "+inf"))

    async def timeseries(self, site: str, start: int, end: int, interval: str) -> list[dict[str, Any]]:
        step = STEP[interval]
        times = list(range(start // step * step, end, step))
        bases = [f"{self.prefix}{site}:{interval}:{t}" for t in times]
        hashes = await self._hashes([b + ":t" for b in bases])
        async with self.redis.pipeline(transaction=False) as pipe:
            for b in bases:
                pipe.pfcount(b + ":v")
            visitors = await pipe.execute()
        out = []
        for t, h, v in zip(times, hashes, visitors, strict=True):
            point = self._stats({k.decode(): int(n) for k, n in h.items()}, int(v))
            out.append({"time": t, **point})
        return out

    async def _dimension(
        self, site: str, start: int, end: int, dim: str
    ) -> tuple[list[str], dict[str, dict[str, int]]]:
        bases = self.bases(site, start, end)
        rows: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for h in await self._hashes([f"{b}:d:{dim}" for b in bases]):
            for f, n in h.items():
                kind, value = _split(f)
                rows[value][kind] += int(n)
        # An exit page replaced later in its session is left at 0: not a row.
        return bases, {v: r for v, r in rows.items() if any(r.values())}

    async def breakdown(
        self, site: str, start: int, end: int, dim: str, limit: int
    ) -> list[dict[str, Any]]:
        bases, rows = await self._dimension(site, start, end, dim)
        order = "s" if dim in SESSION_SORTED else "pv"
        top = sorted(rows.items(), key=lambda kv: (-kv[1].get(order, 0), kv[0]))[:limit]
        out = []
        for value, r in top:
            visitors = await self._pfcount([f"{b}:u:{dim}:{value}" for b in bases])
            row: dict[str, Any] = {"value": value, "pageviews": r.get("pv", 0),
                                   "visitors": visitors, "sessions": r.get("s", 0)}  # fmt: skip
            if dim in ("entry_page", "utm_campaign"):
                row["converted_sessions"] = r.get("c", 0)
            out.append(row)
        return out

    async def goals(self, site: str, start: int, end: int) -> list[dict[str, Any]]:
        bases = self.bases(site, start, end)
        g = await self._sum([b + ":g" for b in bases])
        visitors = await self._pfcount([b + ":v" for b in bases])
        _, channels = await self._dimension(site, start, end, "channel")
        _, campaigns = await self._dimension(site, start, end, "utm_campaign")
        names = [goal.name for goal in self.settings.goals]
        out = []
        for name in names:
            converters = await self._pfcount([f"{b}:gu:{name}" for b in bases])
            by: dict[str, list[dict[str, Any]]] = {"by_channel": [], "by_campaign": []}
            for field, n in sorted(g.items()):
                head, _, tail = field.partition("|")
                if head != f"c:{name}" or not tail:
                    continue
                kind, _, value = tail.partition(":")
                sessions_of = (channels if kind == "ch" else campaigns).get(value, {}).get("s", 0)
                cs = g.get(f"cs:{name}|{tail}", 0)
                by["by_channel" if kind == "ch" else "by_campaign"].append({
                    "value": value, "conversions": n, "converted_sessions": cs,
                    "sessions": sessions_of, "conversion_rate": _ratio(cs, sessions_of),
                })  # fmt: skip
            for rows in by.values():
                rows.sort(key=lambda r: (-r["conversions"], r["value"]))
            out.append({
                "goal": name, "conversions": g.get(f"c:{name}", 0),
                "converted_sessions": g.get(f"cs:{name}", 0), "converters": converters,
                "conversion_rate": _ratio(converters, visitors), **by,
            })  # fmt: skip
        return out

    async def funnel(self, site: str, start: int, end: int, name: str) -> dict[str, Any]:
        funnel = next(f for f in self.settings.funnels if f.name == name)
        f = await self._sum([b + ":f" for b in self.bases(site, start, end)])
        counts = [f.get(f"{name}:{i + 1}", 0) for i in range(len(funnel.steps))]
        steps = []
        for i, (step, n) in enumerate(zip(funnel.steps, counts, strict=True)):
            steps.append({"step": step, "sessions": n,
                          "rate_from_start": _ratio(n, counts[0]),
                          "rate_from_previous": _ratio(n, counts[i - 1]) if i else 1.0 if n else None})  # fmt: skip
        return {"funnel": name, "steps": steps}

    async def performance(
        self, site: str, start: int, end: int, dim: str, limit: int
    ) -> list[dict[str, Any]]:
        """Per page (or campaign): latency percentiles, error rate and conversion rate.

        For pages, sessions and conversions are those of sessions *entering* on the
        page (landing-page conversion rate); for campaigns, first-touch sessions.
        """
        bases, rows = await self._dimension(site, start, end, dim)
        if dim == "page":
            _, entries = await self._dimension(site, start, end, "entry_page")
        else:
            entries = rows
        hist: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for h in await self._hashes([f"{b}:l:{dim}" for b in bases]):
            for f, n in h.items():
                i, _, value = f.decode().partition(":")
                hist[value][int(i)] += int(n)
        top = sorted(rows.items(), key=lambda kv: (-kv[1].get("pv", 0), kv[0]))[:limit]
        out = []
        for value, r in top:
            pv, e = r.get("pv", 0), r.get("e", 0)
            s, c = entries.get(value, {}).get("s", 0), entries.get(value, {}).get("c", 0)
            out.append({
                "value": value, "pageviews": pv,
                "p50_ms": percentile(hist[value], 0.50),
                "p75_ms": percentile(hist[value], 0.75),
                "p95_ms": percentile(hist[value], 0.95),
                "error_rate": _ratio(e, pv), "sessions": s,
                "converted_sessions": c, "conversion_rate": _ratio(c, s),
            })  # fmt: skip
        return out
