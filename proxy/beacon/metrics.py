"""Prometheus metrics of the beacon in the proxy process (admin ``/metrics``).

Label values are fixed sets (reasons, kinds), never taken from traffic.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

SKIP_REASONS = (
    "site_off", "status", "not_navigation", "no_transform", "attachment", "encoding", "csp",
    "no_insertion_point", "decode_error",
)  # fmt: skip
REJECT_REASONS = (
    "too_large", "rate_limited", "malformed", "too_many", "kind", "page_id", "url", "field",
)  # fmt: skip
KINDS = ("pageview", "vitals", "engagement", "custom", "click")


class BeaconMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.injected = Counter(
            "footfall_beacon_injected_total",
            "HTML pages the beacon's script tag was inserted into.",
            registry=registry,
        )
        self.skipped = Counter(
            "footfall_beacon_skipped_total",
            "HTML responses (text/html, GET) not given the script, by reason.",
            ["reason"],
            registry=registry,
        )
        self.items_accepted = Counter(
            "footfall_beacon_items_accepted_total",
            "Items from the script accepted as events, by kind.",
            ["kind"],
            registry=registry,
        )
        self.items_rejected = Counter(
            "footfall_beacon_items_rejected_total",
            "Items (or whole POSTs, for too_large, rate_limited, malformed) refused, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in SKIP_REASONS:
            self.skipped.labels(reason)
        for reason in REJECT_REASONS:
            self.items_rejected.labels(reason)
        for kind in KINDS:
            self.items_accepted.labels(kind)
        # Children bound once: labels() costs microseconds on the response path.
        self.skip = {reason: self.skipped.labels(reason) for reason in SKIP_REASONS}
        self.reject = {reason: self.items_rejected.labels(reason) for reason in REJECT_REASONS}
        self.accept = {kind: self.items_accepted.labels(kind) for kind in KINDS}
