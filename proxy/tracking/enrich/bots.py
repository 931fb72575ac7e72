"""Bot detection by User-Agent: our named markers, then two maintained lists.

``config/bots.json`` holds what a proxy sees and a tag does not (headless browsers,
HTTP client libraries, uptime monitors, link-preview fetchers, AI crawlers) with
readable names. Then the long tail, in this order: the ``crawleruseragents`` list
(PyPI, ~1,500 regexes, one per named crawler) and isbot's ~200 generic patterns
(``config/isbot/patterns.json``, from the npm package: monitors, feed readers, link
checkers, benchmarking tools, single-token UAs). Both lists are compiled into one
Rust regex set from ua-parser-rs (one pass over all patterns, a few µs) instead of
Python ``re`` (160-460 µs per browser UA); without ua-parser-rs we fall back to Python.
Results are not cached here: :mod:`proxy.tracking.enrich.useragent` caches per UA string.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from typing import Any

import crawleruseragents

# Regex syntax that ends the literal prefix of a crawler pattern (used for its name).
_REGEX_SYNTAX = frozenset("()[]{}|*+?^$.")
_LOOKAROUND = re.compile(r"\(\?<?[=!]")
_LOOKAROUND_GROUP = re.compile(r"\(\?<?[=!](?:[^()]|\((?:[^()])*\))*\)")  # one level of nesting
_LOOKBEHIND = re.compile(r"\(\?<!([^()]*)\)")
_CLASS_DASH = re.compile(r"(\\[wdsWDS])-(?=[^\]]*\])")
_LEAD = re.compile(r"[A-Za-z][^/;(]*")
_COMPATIBLE = re.compile(r"compatible;\s*([^;/)]+)", re.IGNORECASE)
_SEPARATORS = " ;()[],"


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


def js_to_python(pattern: str) -> str:
    """An isbot (JavaScript) regex in Python ``re`` syntax: ``(?<!a|bc)`` becomes
    ``(?<!a)(?<!bc)`` (Python wants one width per look-behind) and a ``-`` after a
    class escape (``[\\w\\d-.]``, a literal in JavaScript) is escaped."""
    pattern = _LOOKBEHIND.sub(lambda m: "".join(f"(?<!{alt})" for alt in m.group(1).split("|")), pattern)
    return _CLASS_DASH.sub(r"\1\\-", pattern)


def drop_lookaround(pattern: str) -> str:
    """``pattern`` without its look-around groups: it matches wherever ``pattern`` does."""
    return _LOOKAROUND_GROUP.sub("", pattern)


def isbot_name(user_agent: str, start: int, end: int) -> str | None:
    """A readable name for a UA caught by one of isbot's generic patterns (``bot``, ``check\\b``):
    the leading product (``ApacheBench/2.3`` -> ``ApacheBench``), the ``compatible;`` product of
    a Mozilla-style string, else the word around the match unless it is part of a URL."""
    text = user_agent.strip()
    if not text.lower().startswith("mozilla/"):
        lead = _LEAD.match(text)
        if lead:
            return lead.group(0).split(" - ")[0].strip()[:60] or None
    found = _COMPATIBLE.search(text)
    if found and found.group(1).strip():
        return found.group(1).strip()[:60]
    left = max(user_agent.rfind(c, 0, start) for c in _SEPARATORS) + 1
    rights = [i for c in _SEPARATORS if (i := user_agent.find(c, end)) != -1]
    word = user_agent[left : min(rights, default=len(user_agent))]
    if "://" in word or word.lower().startswith(("http", "www.", "+http")):
        return None
    return word.split("/")[0].strip("+-_.:")[:60] or None


def list_matcher(isbot_patterns: list[str], rust: bool | None = None) -> Callable[[str], str | None]:
    """Compile crawler-user-agents, then isbot, into one matcher (list order = precedence);
    the callable returns the matching bot's name, ``""`` for an isbot match it cannot name."""
    entries: list[dict[str, Any]] = crawleruseragents.CRAWLER_USER_AGENTS_DATA
    names = [pattern_name(e["pattern"]) for e in entries]
    isbot_py = [re.compile(js_to_python(p), re.IGNORECASE) for p in isbot_patterns]

    def name_isbot(user_agent: str, i: int) -> str:
        found = isbot_py[i].search(user_agent)
        return (isbot_name(user_agent, found.start(), found.end()) if found else None) or ""

    if rust is None:
        rust = importlib.util.find_spec("ua_parser_rs") is not None
    if rust:
        import ua_parser_rs

        # One Rust regex set (ua-parser-rs) over both lists: a few µs per UA instead of
        # hundreds in Python. It has no look-around, which 6 of isbot 5.2's patterns use:
        # those go in last with the look-around dropped (a superset: `(?<!lib)http` ->
        # `http`), and only when one of them is the set's first match does Python's `re`
        # (~30 µs for the six) decide with the real patterns.
        compiled = [(e["pattern"], i) for i, e in enumerate(entries)]
        relaxed = []
        for i, pattern in enumerate(isbot_patterns):
            if _LOOKAROUND.search(pattern):
                relaxed.append(("(?i)" + drop_lookaround(pattern), len(entries) + i))
            else:
                compiled.append(("(?i)" + pattern, len(entries) + i))
        first_relaxed = len(compiled)
        compiled += relaxed
        # The extractor reports the first pattern (in list order) that matches; its
        # "family" is our position in `compiled` (never containing "$" substitutions).
        extractor = ua_parser_rs.UserAgentExtractor(
            [(pattern, str(n), None, None, None, None) for n, (pattern, _) in enumerate(compiled)]
        )
        strict = [index - len(entries) for _, index in relaxed]

        def match_rs(user_agent: str) -> str | None:
            found = extractor.extract(user_agent)
            if found is None:
                return None
            position = int(found.family)
            index = compiled[position][1]
            if index < len(names):
                return names[index]
            if position < first_relaxed:
                return name_isbot(user_agent, index - len(names))
            hit = next((i for i in strict if isbot_py[i].search(user_agent)), None)
            return None if hit is None else name_isbot(user_agent, hit)

        return match_rs

    def match_py(user_agent: str) -> str | None:
        hits: list[int] = crawleruseragents.matching_crawlers(user_agent)
        if hits:
            return names[hits[0]]
        for i, compiled in enumerate(isbot_py):
            if compiled.search(user_agent):
                return name_isbot(user_agent, i)
        return None

    return match_py


class BotMatcher:
    """Names the bot behind a User-Agent string, or returns ``None`` for a non-bot.

    ``data`` is the parsed ``config/bots.json``; ``isbot_patterns`` the list of
    ``config/isbot/patterns.json``. Pure apart from compiling at init. A bot that only
    isbot's generic patterns catch and that has no readable name is named ``""``:
    still a bot (``bot_name`` null in the event).
    """

    def __init__(self, data: Mapping[str, Any], isbot_patterns: list[str] | None = None) -> None:
        self.paths: frozenset[str] = frozenset(data.get("paths", ()))
        self._markers: tuple[tuple[str, str], ...] = tuple(
            (marker.lower(), name)
            for group in data["markers"].values()
            for marker, name in group.items()
        )
        self._lists = list_matcher(isbot_patterns or [])

    def name(self, user_agent: str) -> str | None:
        """The bot's name when ``user_agent`` is a known bot (``""`` when unnamed), else ``None``."""
        lowered = user_agent.lower()
        for marker, name in self._markers:
            if marker in lowered:
                return name
        return self._lists(user_agent)
