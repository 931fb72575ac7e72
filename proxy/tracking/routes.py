"""Route templates: map a (scrubbed) path to a bounded label such as ``/products/{id}``.

Template syntax (``Settings.routes``), matched segment by segment on ``/``:

- ``literal`` matches that exact segment (case-sensitive);
- ``{name}`` matches any one non-empty segment;
- ``{name...}`` as the *last* segment matches one or more remaining segments
  (``/static/{path...}`` matches ``/static/css/site.css`` but not ``/static/``).

A trailing slash on the path is ignored for matching. When several templates
match, the most specific wins, decided from the left: at each segment a literal
beats ``{name}``, which beats ``{name...}`` (so ``/products/new`` beats
``/products/{id}`` whatever their order in the config). Equal templates: the
first one listed.

With no matching template the path is collapsed so metric labels stay bounded:
digits → ``{id}``, UUID → ``{uuid}``, ≥ 16 hex chars → ``{hex}``, e-mail (or the
``[email]`` mask of :mod:`proxy.tracking.privacy`) → ``{email}``, long random-looking
tokens → ``{token}``; past :data:`MAX_DEPTH` segments the rest becomes
``{...}``, and the result is cut to :data:`MAX_ROUTE_CHARS`. A path that does not
start with ``/`` (``*`` for ``OPTIONS *``, or junk) becomes ``{other}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_DEPTH = 8
MAX_ROUTE_CHARS = 200
CACHE_SIZE = 10_000

_HEX = frozenset("0123456789abcdefABCDEF")
_B64URL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass(slots=True)
class _Node:
    """One level of the template trie."""

    literals: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    rest: str | None = None  # template ending here with {name...}
    template: str | None = None  # template ending exactly here


def _parse(template: str) -> list[str]:
    if not template.startswith("/"):
        raise ValueError(f"route template must start with '/': {template!r}")
    segments = template.strip("/").split("/") if template.strip("/") else []
    for i, seg in enumerate(segments):
        if seg.startswith("{") != seg.endswith("}") or seg in ("{}", "{...}"):
            raise ValueError(f"route template {template!r}: bad segment {seg!r}")
        if seg.endswith("...}") and i != len(segments) - 1:
            raise ValueError(f"route template {template!r}: {seg} must be the last segment")
    return segments


class RouteTemplates:
    """Compiled templates plus a bounded cache of path → route.

    ``route`` is pure apart from the cache; call it from one thread (the flush task).
    Raises ``ValueError`` at construction for a malformed template.
    """

    def __init__(self, templates: tuple[str, ...]) -> None:
        self._root = _Node()
        self._cache: dict[str, str] = {}
        for template in templates:
            node = self._root
            segments = _parse(template)
            for seg in segments:
                if seg.endswith("...}"):
                    if node.rest is None:
                        node.rest = template
                    break
                if seg.startswith("{"):
                    node.param = node.param or _Node()
                    node = node.param
                else:
                    node = node.literals.setdefault(seg, _Node())
            else:
                if node.template is None:
                    node.template = template

    def route(self, path: str) -> str:
        """The route label for ``path`` (no query string). Always bounded in size."""
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        if not path.startswith("/"):
            return "{other}"
        trimmed = path[1:-1] if path.endswith("/") and len(path) > 1 else path[1:]
        segments = trimmed.split("/") if trimmed else []
        result = _match(self._root, segments, 0) if segments or self._root.template else None
        if result is None:
            result = collapse(path)
        if len(self._cache) >= CACHE_SIZE:
            # FIFO eviction: cheaper than an LRU and enough, since hot paths re-enter.
            del self._cache[next(iter(self._cache))]
        self._cache[path] = result
        return result


def _match(node: _Node, segments: list[str], i: int) -> str | None:
    if i == len(segments):
        return node.template
    seg = segments[i]
    child = node.literals.get(seg)
    if child is not None:
        found = _match(child, segments, i + 1)
        if found is not None:
            return found
    if node.param is not None and seg:
        found = _match(node.param, segments, i + 1)
        if found is not None:
            return found
    return node.rest


def classify(segment: str) -> str:
    """One path segment → itself, or the placeholder that replaces it."""
    n = len(segment)
    if n == 0:
        return segment
    if segment.isdigit():
        return "{id}"
    if "@" in segment or "%40" in segment or "[email]" in segment:
        return "{email}"
    if (
        n == 36
        and segment[8] == segment[13] == segment[18] == segment[23] == "-"
        and all(c in _HEX for c in segment.replace("-", ""))
    ):
        return "{uuid}"
    if n >= 16 and all(c in _HEX for c in segment):
        return "{hex}"
    if n >= 20 and _random_looking(segment):
        return "{token}"
    return segment


def _random_looking(segment: str) -> bool:
    # base64url characters, letters mixed with digits, and either mixed case or few
    # separators: "aZ3kq9x8Lm2Pq7RtYw0b" is a token, "my-trip-to-rome-2024" a slug.
    if not all(c in _B64URL for c in segment):
        return False
    if not any(c.isdigit() for c in segment) or not any(c.isalpha() for c in segment):
        return False
    mixed_case = segment.lower() != segment and segment.upper() != segment
    separators = segment.count("-") + segment.count("_")
    return mixed_case or separators <= len(segment) // 8


def collapse(path: str) -> str:
    """Automatic route for a path no template matched (see the module docstring)."""
    segments = path[1:].split("/")
    out = [classify(s) for s in segments[:MAX_DEPTH]]
    if len(segments) > MAX_DEPTH:
        out.append("{...}")
    route = "/" + "/".join(out)
    if len(route) > MAX_ROUTE_CHARS:
        route = route[: MAX_ROUTE_CHARS - 6].rpartition("/")[0] + "/{...}"
    return route
