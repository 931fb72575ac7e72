"""The beacon of one proxy process: what the forwarder holds (``Forwarder(beacon=…)``)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from proxy.beacon.endpoint import BeaconEndpoint
from proxy.beacon.injector import Injector
from proxy.beacon.metrics import BeaconMetrics
from proxy.beacon.script import bundle
from proxy.settings import Settings
from proxy.tracking.event import Exchange


class Beacon:
    """``prefix`` and ``on_for(site)`` decide what the endpoint answers; ``injector``
    picks the pages that get the script."""

    def __init__(
        self, settings: Settings, registry: CollectorRegistry, sink: Callable[[Exchange], None] | None
    ) -> None:
        b = settings.beacon
        self.prefix = b.prefix
        self.on_for = b.on_for
        self.metrics = BeaconMetrics(registry)
        self.injector = Injector(b, b.prefix + bundle().name, self.metrics)
        self.endpoint = BeaconEndpoint(settings, self.metrics, sink)


def make_beacon(
    settings: Settings, registry: CollectorRegistry, sink: Callable[[Exchange], None] | None
) -> Beacon | None:
    """None when no site has the beacon on: the forwarder then skips it entirely."""
    b = settings.beacon
    if not (b.enabled or b.sites_on):
        return None
    return Beacon(settings, registry, sink)
