"""Bot detection by User-Agent: our named markers, then the crawler-user-agents list.

``config/bots.json`` holds what a proxy sees and a tag does not (headless browsers,
HTTP client libraries, uptime monitors, link-preview fetchers, AI crawlers) with
readable names; the maintained ``crawleruseragents`` list (~1,500 regexes) catches
the long tail. The list is matched with the Rust regex engine that ua-parser-rs
ships (one pass over all patterns, ~2 µs) instead of Python ``re`` (160-460 µs
per browser UA); without ua-parser-rs we fall back to the package's own matcher.
Results are not cached here: :mod:`proxy.tracking.enrich.useragent` caches per UA string.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from typing import Any

import crawleruseragents

# Regex syntax that ends the literal prefix of a crawler pattern (used for its name).
_REGEX_SYNTAX = frozenset("()[]{}|*+?^$.")


def pattern_name(pattern: str) -> str:
    r"""A readable bot name from a crawler-user-agents regex: its leading literal text.

    ``Googlebot\/`` -> ``Googlebot``; ``AdsBot-Google([^-]|$)`` -> ``AdsBot-Google``.
    """
    out: list[str] = []
    chars = iter(pattern.removeprefix("^"))
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            if not nxt or nxt.isalnum():  # \s, \d ...: a class, not a literal
                break
            out.append(nxt)
        elif ch in _REGEX_SYNTAX:
            break
        else:
            out.append(ch)
    name = "".join(out).strip(" /;")
    return name or pattern


def _crawler_matcher() -> Callable[[str], str | None]:
    """Compile the crawler list once; the callable returns the matching bot's name."""
    entries: list[dict[str, Any]] = crawleruseragents.CRAWLER_USER_AGENTS_DATA
    names = [pattern_name(e["pattern"]) for e in entries]
    if importlib.util.find_spec("ua_parser_rs"):
        import ua_parser_rs

        # The extractor reports the first pattern (in list order) that matches; its
        # "family" is our index into `names` (indices never contain "$" substitutions).
        extractor = ua_parser_rs.UserAgentExtractor(
            [(e["pattern"], str(i), None, None, None, None) for i, e in enumerate(entries)]
        )

        def match_rs(user_agent: str) -> str | None:
            found = extractor.extract(user_agent)
            return None if found is None else names[int(found.family)]

        return match_rs

    def match_py(user_agent: str) -> str | None:
        hits: list[int] = crawleruseragents.matching_crawlers(user_agent)
        return names[hits[0]] if hits else None

    return match_py


class BotMatcher:
    """Names the bot behind a User-Agent string, or returns ``None`` for a non-bot.

    ``data`` is the parsed ``config/bots.json``. Pure apart from compiling at init.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.paths: frozenset[str] = frozenset(data.get("paths", ()))
        self._markers: tuple[tuple[str, str], ...] = tuple(
            (marker.lower(), name)
            for group in data["markers"].values()
            for marker, name in group.items()
        )
        self._crawlers = _crawler_matcher()

    def name(self, user_agent: str) -> str | None:
        """The bot's name when ``user_agent`` is a known bot, else ``None``."""
        lowered = user_agent.lower()
        for marker, name in self._markers:
            if marker in lowered:
                return name
        return self._crawlers(user_agent)
