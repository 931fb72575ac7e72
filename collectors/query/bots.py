"""Which events the query API leaves out as automated by default (README "Bot score").

Per event: the User-Agent verdict ``bot``, or a ``bot_score`` of 1 up to the threshold
(0 is "not scored"). Per session: the score is the actor's evidence so far, so a
session's first pages may look human and a later one give it away — a session with
any event scored 1..threshold in the queried range is left out as a whole. Events
without a session (consent denied, cookieless without consent) keep the per-event rule.
Every value is a bound parameter (``site``, ``lo``, ``hi``, ``bot_max``); only the
database name, which is configuration, is text.
"""

from __future__ import annotations

TS = "DateTime64(3,'UTC')"
NO_SESSION = "cityHash64('')"  # ``sid`` (the stored hash of ``session``) of an event without one


def bot_sessions(db: str) -> str:
    """A subquery: the sessions of the queried site and range with an event scored as automated."""
    return (
        f"(SELECT sid FROM {db}.events WHERE site = {{site:String}} AND ts >= {{lo:{TS}}} "
        f"AND ts < {{hi:{TS}}} AND sid != {NO_SESSION} AND bot_score BETWEEN 1 AND {{bot_max:UInt8}})"
    )


def human_session(db: str) -> str:
    """The WHERE condition that keeps an event only if its session (when it has one) had
    no event scored as automated; the compiler puts it beside ``NOT IS_BOT``."""
    return f"(sid = {NO_SESSION} OR sid NOT IN {bot_sessions(db)})"
