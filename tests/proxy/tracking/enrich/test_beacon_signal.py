"""The beacon signals of the bot score: an injected page whose script reported (human) or
stayed silent for the grace period after it was left (weak bot signal), through the
scorer the flush task uses (pure: real Exchange snapshots, no sockets)."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from proxy.tracking.enrich.botscore import Signal, score
from proxy.tracking.event import Exchange
from tests.proxy.tracking.enrich.test_behaviour import CHROME, SCRIPTED, chrome_page, exchange, scorer

GRACE = 30.0
BEACON = Signal.BEACON_MISSING | Signal.BEACON_REPORTED
_pages = itertools.count()


def injected(ex: Exchange) -> tuple[Exchange, str]:
    """``ex`` as a page the proxy injected the beacon's script into; and its page id."""
    page_id = f"{next(_pages):032x}"
    return dataclasses.replace(ex, page_id=page_id), page_id


def report(ts: float, page_id: str, *, visitor: str | None = None, ip: str = "203.0.113.9",
           kind: str = "vitals") -> Exchange:  # fmt: skip
    """A beacon item for ``page_id`` as the endpoint hands it over (no response, ``extra``)."""
    ex = exchange(ts, chrome_page(visitor is not None), visitor=visitor, new_visitor=False, ip=ip)
    if visitor is None:
        ex = dataclasses.replace(ex, visitor=None, consent="denied")
    return dataclasses.replace(ex, content_type=None, pageview=False, status=200,
                               extra={"kind": kind, "page_id": page_id, "via": "beacon"})  # fmt: skip


def beacon_bits(signals: Signal) -> Signal:
    return signals & BEACON


def plain(ts: float, **kw: Any) -> Exchange:
    """A page from a scripted client on plain HTTP without consent: no other signal."""
    return exchange(ts, SCRIPTED, scheme="http", consent="denied", **kw)


def test_unreported_page_is_a_bot_signal_only_after_the_grace_period_once_left() -> None:
    s = scorer(beacon_grace=GRACE)
    first, _ = injected(plain(0.0))
    assert beacon_bits(s.signals(first, "/", CHROME)) == 0
    assert beacon_bits(s.signals(plain(1.0), "/", CHROME)) == 0  # leaves the first page
    before = plain(GRACE + 0.5)
    assert beacon_bits(s.signals(before, "/", CHROME)) == 0  # still within the grace period
    after = plain(GRACE + 2)
    got = s.signals(after, "/", CHROME)
    assert beacon_bits(got) == Signal.BEACON_MISSING
    assert got == Signal.BEACON_MISSING  # plain HTTP, no other evidence: the weak signal alone
    assert score(got) == 40  # alone it does not cross the default threshold (30)


@pytest.mark.parametrize(("path", "ctype", "dest"), [("/app.css", "text/css", None),
                                                     ("/frame", "text/html", "iframe")])  # fmt: skip
def test_a_page_still_open_is_never_judged(path: str, ctype: str, dest: str | None) -> None:
    """A reader stays for minutes: the script reports when they leave. Assets and frames
    the page loads do not leave it."""
    s = scorer(beacon_grace=GRACE)
    first, _ = injected(plain(0.0))
    s.signals(first, "/", CHROME)
    headers = SCRIPTED + ([("Sec-Fetch-Dest", dest)] if dest else [])
    later = [exchange(t, headers, scheme="http", consent="denied", path=path, ctype=ctype)
             for t in (GRACE * 2, GRACE * 10, GRACE * 20)]  # fmt: skip
    assert [beacon_bits(s.signals(ex, path, CHROME)) for ex in later] == [0, 0, 0]


def test_a_report_sent_on_leaving_is_in_time() -> None:
    """The script reports on pagehide: after the next page's request, however long the read."""
    s = scorer(beacon_grace=GRACE)
    first, page_id = injected(plain(0.0))
    s.signals(first, "/", CHROME)
    second, _ = injected(plain(GRACE * 10))
    assert beacon_bits(s.signals(second, "/", CHROME)) == 0
    assert beacon_bits(s.signals(report(GRACE * 10 + 0.2, page_id), "/", CHROME)) == Signal.BEACON_REPORTED


def test_reported_page_is_a_human_signal_and_never_missing() -> None:
    s = scorer(beacon_grace=GRACE)
    page, page_id = injected(plain(0.0))
    s.signals(page, "/", CHROME)
    assert beacon_bits(s.signals(report(5.0, page_id), "/", CHROME)) == Signal.BEACON_REPORTED
    s.signals(plain(GRACE * 2), "/", CHROME)
    later = s.signals(plain(GRACE * 4), "/", CHROME)
    assert beacon_bits(later) == Signal.BEACON_REPORTED


def test_a_late_report_still_counts() -> None:
    s = scorer(beacon_grace=GRACE)
    page, page_id = injected(plain(0.0))
    s.signals(page, "/", CHROME)
    s.signals(plain(1.0), "/", CHROME)
    # the report itself is the actor's next event: recorded before the page is settled
    assert beacon_bits(s.signals(report(GRACE + 10, page_id), "/", CHROME)) == Signal.BEACON_REPORTED


def test_one_report_outweighs_a_missed_page() -> None:
    s = scorer(beacon_grace=GRACE)
    a, a_id = injected(plain(0.0))
    b, _ = injected(plain(1.0))
    s.signals(a, "/", CHROME)
    s.signals(b, "/", CHROME)
    s.signals(report(2.0, a_id), "/", CHROME)
    s.signals(plain(3.0), "/", CHROME)  # leaves b
    got = s.signals(plain(GRACE * 2), "/", CHROME)
    assert beacon_bits(got) == Signal.BEACON_REPORTED


@pytest.mark.parametrize("page_id", [None, "f" * 32])
def test_no_signal_without_an_injection(page_id: str | None) -> None:
    """Beacon off or skipped: pages carry no page id; a report naming a page this scorer
    never injected (another worker's, or made up) proves nothing either."""
    s = scorer(beacon_grace=GRACE)
    got = [s.signals(exchange(t, SCRIPTED, scheme="http", consent="denied"), "/", CHROME) for t in (0.0, 1.0)]
    if page_id is not None:
        got.append(s.signals(report(2.0, page_id), "/", CHROME))
    got.append(s.signals(exchange(GRACE * 5, SCRIPTED, scheme="http", consent="denied"), "/", CHROME))
    assert [beacon_bits(g) for g in got] == [0] * len(got)


def test_first_visit_report_reaches_the_visitor_that_cookie_became() -> None:
    """The page that set the cookie is fetched by a client actor; its report comes back
    with the cookie, from the visitor actor that inherits that first request."""
    s = scorer(beacon_grace=GRACE)
    page, page_id = injected(exchange(0.0, chrome_page(False), visitor="v1", new_visitor=True))
    s.signals(page, "/", CHROME)
    got = s.signals(report(3.0, page_id, visitor="v1"), "/", CHROME)
    assert Signal.BEACON_REPORTED in got and Signal.COOKIE_RETURNED in got
    again = s.signals(exchange(GRACE * 2, chrome_page(True), visitor="v1", new_visitor=False), "/", CHROME)
    assert beacon_bits(again) == Signal.BEACON_REPORTED


def test_first_visit_page_never_reported_follows_the_visitor() -> None:
    s = scorer(beacon_grace=GRACE)
    page, _ = injected(exchange(0.0, chrome_page(False), visitor="v2", new_visitor=True))
    s.signals(page, "/", CHROME)
    soon = s.signals(exchange(1.0, chrome_page(True), visitor="v2", new_visitor=False), "/", CHROME)  # leaves it
    assert beacon_bits(soon) == 0
    late = s.signals(exchange(GRACE + 2, chrome_page(True), visitor="v2", new_visitor=False), "/", CHROME)
    assert beacon_bits(late) == Signal.BEACON_MISSING


def test_several_items_for_one_page_count_once_and_other_actors_are_not_credited() -> None:
    s = scorer(beacon_grace=GRACE)
    page, page_id = injected(plain(0.0))
    s.signals(page, "/", CHROME)
    s.signals(report(1.0, page_id), "/", CHROME)
    # the same page id replayed from elsewhere: already reported, credits no one
    other = s.signals(report(2.0, page_id, ip="198.51.100.7", kind="engagement"), "/", CHROME)
    assert beacon_bits(other) == 0
