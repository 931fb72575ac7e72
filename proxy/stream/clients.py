"""redis-py asyncio clients for any Footfall Redis URL, Redis Cluster included.

The publisher has its own raw wire (:mod:`proxy.stream.cluster`); everything else
(collectors, leases, cookieless sessions, tail) takes its client from here so a
``redis-cluster://h1:p1,h2:p2`` URL works wherever ``redis://`` does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from proxy.stream.cluster import is_cluster_url, parse_cluster_url


def redis_client(url: str, **options: Any) -> Any:
    """``Redis.from_url(url, **options)``, or a ``RedisCluster`` seeded with every node of
    a ``redis-cluster://`` URL (typed ``Any``: the two share the commands Footfall uses)."""
    if not is_cluster_url(url):
        return aioredis.Redis.from_url(url, **options)
    seeds, credentials = parse_cluster_url(url)
    if credentials:
        user, _, password = credentials.rstrip("@").partition(":")
        options.setdefault("username", unquote(user) or None)
        options.setdefault("password", unquote(password) or None)
    options.pop("health_check_interval", None)  # per-node connections check on use
    return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in seeds], **options)
