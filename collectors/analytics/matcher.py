"""Goal and funnel-step matching against the configured path globs. Pure, memoised.

Path matches are cached per path (bounded: the cache is dropped when it grows
past ``CACHE_SIZE``), so a busy site pays one regex pass per distinct path.
"""

from __future__ import annotations

from typing import Any

from collectors.settings import CollectorSettings, glob_regex

CACHE_SIZE = 20_000


class Matcher:
    """Which goals an event converts and which funnel steps a pageview reaches."""

    def __init__(self, settings: CollectorSettings) -> None:
        self._goals = [(g, glob_regex(g.path)) for g in settings.goals]
        self._steps = [
            (f.name, i + 1, glob_regex(step))
            for f in settings.funnels
            for i, step in enumerate(f.steps)
        ]
        self._goal_cache: dict[str, tuple[int, ...]] = {}
        self._step_cache: dict[str, tuple[tuple[str, int], ...]] = {}

    def goals(self, path: str, pageview: bool, method: Any, status: Any) -> list[str]:
        """Names of the goals this event converts (usually none)."""
        if not self._goals:
            return []
        idx = self._goal_cache.get(path)
        if idx is None:
            if len(self._goal_cache) >= CACHE_SIZE:
                self._goal_cache.clear()
            idx = tuple(i for i, (_, rx) in enumerate(self._goals) if rx.match(path))
            self._goal_cache[path] = idx
        out = []
        for i in idx:
            goal = self._goals[i][0]
            if goal.pageview_only:
                if pageview:
                    out.append(goal.name)
                continue
            if goal.method is not None and method != goal.method:
                continue
            if goal.status and status not in goal.status:
                continue
            out.append(goal.name)
        return out

    def steps(self, path: str) -> tuple[tuple[str, int], ...]:
        """``(funnel, step)`` pairs (steps 1-based) this pageview path matches."""
        if not self._steps:
            return ()
        hit = self._step_cache.get(path)
        if hit is None:
            if len(self._step_cache) >= CACHE_SIZE:
                self._step_cache.clear()
            hit = tuple((name, i) for name, i, rx in self._steps if rx.match(path))
            self._step_cache[path] = hit
        return hit
