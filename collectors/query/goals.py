"""Configured goals and funnel steps → SQL conditions over one event row.

A pageview goal (no method, no status) matches pageviews whose path matches its
glob; a request goal matches any proxied event whose path matches and whose method
and status match when given (``POST /checkout`` → 2xx). Globs become anchored RE2
patterns bound as parameters; names are bound too (:func:`Goals.bind`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from collectors.query.model import Op
from collectors.settings import Funnel, Goal, glob_regex


class Goals:
    """The goals of the settings, each with its SQL condition; parameters in :attr:`params`."""

    def __init__(self, goals: Iterable[Goal]) -> None:
        self.goals = tuple(goals)
        self.params: dict[str, Any] = {}
        self._conditions: dict[str, str] = {}
        for i, goal in enumerate(self.goals):
            parts = [f"match(path, {{g{i}_re:String}})"]
            self.params[f"g{i}_re"] = glob_regex(goal.path).pattern
            self.params[f"g{i}_name"] = goal.name
            if goal.pageview_only:
                parts.insert(0, "kind = 'pageview'")
            else:
                parts.insert(0, "via = 'proxy'")
                if goal.method is not None:
                    parts.append(f"method = {{g{i}_method:String}}")
                    self.params[f"g{i}_method"] = goal.method
                if goal.status:
                    parts.append(f"status IN {{g{i}_status:Array(UInt16)}}")
                    self.params[f"g{i}_status"] = sorted(goal.status)
            self._conditions[goal.name] = "(" + " AND ".join(parts) + ")"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.goals)

    def condition(self, names: Iterable[str]) -> str:
        """True when the event converts any of ``names``; ``0`` for none."""
        parts = [self._conditions[n] for n in names]
        return "(" + " OR ".join(parts) + ")" if parts else "0"

    def any(self) -> str:
        return self.condition(self.names)

    def dimension(self) -> str:
        """One row per goal the event converts (``arrayJoin``): no goal, no row."""
        items = ", ".join(f"if({self._conditions[g.name]}, {{g{i}_name:String}}, '')" for i, g in enumerate(self.goals))
        return f"arrayJoin(arrayFilter(x -> x != '', [{items}]))"

    def select(self, op: Op, values: tuple[str, ...], case_sensitive: bool) -> list[str]:
        """The goal names a filter's values pick (its operator without negation)."""

        def fold(s: str) -> str:
            return s if case_sensitive else s.lower()

        if op in (Op.IS, Op.IS_NOT):
            wanted = {fold(v) for v in values}
            return [n for n in self.names if fold(n) in wanted]
        if op in (Op.CONTAINS, Op.CONTAINS_NOT):
            return [n for n in self.names if any(fold(v) in fold(n) for v in values)]
        flags = 0 if case_sensitive else re.IGNORECASE
        return [n for n in self.names if any(re.search(v, n, flags) for v in values)]


def funnel_steps(funnel: Funnel) -> tuple[list[str], dict[str, Any]]:
    """Per step, the condition a pageview meets, with its bound parameters."""
    conditions, params = [], {}
    for i, step in enumerate(funnel.steps):
        conditions.append(f"kind = 'pageview' AND match(path, {{f{i}_re:String}})")
        params[f"f{i}_re"] = glob_regex(step).pattern
    return conditions, params
