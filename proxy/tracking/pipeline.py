"""Exchange snapshots → encoded events: the work the flush task does per batch.

Runs in the publisher's flush task, never on the response path: cookieless
identity (one Redis round trip per batch), event building and enrichment,
per-request Prometheus metrics, and orjson encoding. It yields to the event loop
between chunks so a large batch never stalls forwarding for milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from proxy.metrics import ProxyMetrics, status_class
from proxy.tracking.event import EventBuilder, Exchange

if TYPE_CHECKING:
    from proxy.tracking.cookieless import CookielessSessions

log = logging.getLogger(__name__)

# Time the flush task may hold the event loop before yielding to request handlers.
# A partial batch means the publisher is keeping up: stay out of the way (measured by
# load_tests/bench_flush.py at 4,000 events/s: 0.5 ms slices left ~160 loop stalls
# over 0.5 ms a second, 0.25 ms ~6, at the same CPU). A full batch means a backlog
# is building: take a bigger share, or under saturation the buffer only grows
# (measured: event delay p99 0.6 s and RSS growing with the backlog).
SLICE_KEEPING_UP = 0.00025
SLICE_BEHIND = 0.002
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class EventPipeline:
    """``prepare(batch) -> payloads`` for :class:`proxy.stream.publisher.Publisher`."""

    def __init__(
        self,
        builder: EventBuilder,
        metrics: ProxyMetrics,
        cookieless: CookielessSessions | None = None,
        batch_size: int = 256,
    ) -> None:
        self._builder = builder
        self._batch_size = batch_size
        self._metrics = metrics
        self._cookieless = cookieless
        self._build_errors_logged = 0
        # Metric children per label tuple: labels() costs microseconds per call.
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any, Any, Any]] = {}

    async def prepare(self, batch: list[Exchange]) -> list[bytes]:
        if self._cookieless is not None:
            await self._resolve_cookieless(batch)
        out: list[bytes] = []
        build = self._builder.build
        observe = self._observe
        # Counters are summed per batch and applied once per label set: a
        # prometheus-client inc() takes a lock, and most of a batch shares labels.
        counts: dict[tuple[Any, Any], list[int]] = {}
        slice_ = SLICE_BEHIND if len(batch) >= self._batch_size else SLICE_KEEPING_UP
        clock = time.perf_counter
        until = clock() + slice_
        for ex in batch:
            try:
                event = build(ex)
                out.append(orjson.dumps(event))
            except Exception:
                self._metrics.events_dropped.labels("build_error").inc()
                if self._build_errors_logged < 10:  # a bug, not traffic: say it, don't flood
                    self._build_errors_logged += 1
                    log.exception("could not build an event for %s %s", ex.method, ex.raw_path[:200])
                continue
            observe(event, counts)
            if clock() > until:
                await asyncio.sleep(0)
                until = clock() + slice_
        for (responses, response_bytes), (n, nbytes) in counts.items():
            responses.inc(n)
            response_bytes.inc(nbytes)
        return out

    async def _resolve_cookieless(self, batch: list[Exchange]) -> None:
        todo = [ex for ex in batch if ex.consent == "granted" and ex.client_ip]
        if not todo or self._cookieless is None:
            return
        from proxy.tracking.cookieless import CookielessHit

        hits = [
            CookielessHit(ex.ts, ex.site, ex.client_ip or "", ex.headers.get("User-Agent", ""), ex.pageview)
            for ex in todo
        ]
        identities = await self._cookieless.resolve(hits)
        for ex, ident in zip(todo, identities, strict=True):
            ex.visitor = ident.visitor
            ex.session = ident.session
            ex.new_visitor = ident.new_visitor
            ex.new_session = ident.new_session

    def _observe(self, event: dict[str, Any], counts: dict[tuple[Any, Any], list[int]]) -> None:
        if event["via"] != "proxy":
            return  # sent by the first-party script: no response to time
        status = event["status"]
        key = (event["site"], event["route"], event["method"], status)
        children = self._children.get(key)
        if children is None:
            children = self._make_children(key)
        duration, upstream, responses, response_bytes = children
        duration.observe(event["duration_ms"] / 1000.0)
        if event["upstream_ms"] is not None:
            upstream.observe(event["upstream_ms"] / 1000.0)
        sums = counts.get((responses, response_bytes))
        if sums is None:
            counts[(responses, response_bytes)] = [1, event["bytes_out"]]
        else:
            sums[0] += 1
            sums[1] += event["bytes_out"]
        if event["error"]:
            self._metrics.errors.labels(self._metrics.site_label(event["site"] or "-"), event["error"]).inc()

    def _make_children(self, key: tuple[str, str, str, int]) -> tuple[Any, Any, Any, Any]:
        m = self._metrics
        site_raw, route_raw, method_raw, status = key
        site = m.site_label(site_raw or "-")
        route = m.route_label(route_raw or "-")
        method = method_raw if method_raw in _METHODS else "other"
        children = (
            m.request_duration.labels(site, route, method, status_class(status)),
            m.upstream_duration.labels(site),
            m.responses.labels(site, str(status)),
            m.response_bytes.labels(site),
        )
        if len(self._children) < 20_000:  # label values are bounded; raw keys may not be
            self._children[key] = children
        return children
