"""A generated month of one site's traffic, inside the engine (``INSERT … SELECT … FROM
numbers()``): the shape of the query benchmark's dataset (load_tests/bench_queries.py on
the query branch), for benchmarks that need a big store without that module.

One session = 10 consecutive numbers (k = 0..9), 25 s apart; a visitor repeats over
~3 sessions. Pageviews: k = 0 always, k = 3, 6, 8 in two sessions of three (the third
bounces): ~3 M pageviews per 10 M events; the rest are asset and API requests. 5 % bot
sessions, 2 % 503s, 5 % slow (2 s) requests; sources, channels, a paid campaign,
devices and countries by hash.
"""

from __future__ import annotations

SITE = "bench.example"
DB = "bench"
DAYS = 30
CHUNK = 1_000_000
_SOURCES = "['Google', '', 'Twitter', 'Facebook', 'Bing', '', 'news.example', 'DuckDuckGo']"
_CHANNELS = ("['Organic Search', 'Direct', 'Organic Social', 'Organic Social', 'Organic Search', 'Direct', "
             "'Referral', 'Organic Search']")  # fmt: skip
_MEDIUMS = "['search', '', 'social', 'social', 'search', '', 'unknown', 'search']"
_DEVICES = ("[('Chrome', 'Windows', 'desktop'), ('Mobile Safari', 'iOS', 'mobile'), "
            "('Chrome Mobile', 'Android', 'mobile')]")  # fmt: skip
_COUNTRIES = "['US', 'DE', 'FR', 'GB', 'IN', 'BR', '', 'JP', 'CA', 'NL']"

# Parameters: start (UInt32, Unix seconds of the first day), offset and count (UInt64).
GENERATE = f"""
INSERT INTO {DB}.events (id, ts, site, kind, via, method, path, status, bytes_out, content_type,
    duration_ms, upstream_ms, visitor, session, referrer_url, referrer_host, referrer_medium, referrer_source,
    utm_source, utm_medium, utm_campaign, browser, os, device, bot, channel, country, consent)
SELECT
    toString(number) AS id,
    toDateTime64({{start:UInt32}}, 3, 'UTC') + toIntervalMillisecond((h % ({DAYS} * 86400 - 600)) * 1000
        + k * 25000 + e % 1000) AS ts,
    '{SITE}', if(pv, 'pageview', 'request'), 'proxy', if(e % 40 = 0, 'POST', 'GET'),
    if(pv, concat('/p/', toString(toUInt32(pow((e % 1000) / 1000, 3) * 2000))),
       if(e % 3 = 0, '/api/items', concat('/static/', toString(e % 50), '.js'))),
    if(e % 50 = 0, 503, 200), 1000 + e % 40000, if(pv, 'text/html', 'application/javascript'),
    toFloat32(10 + e % 400 + if(e % 20 = 0, 2000, 0)), toFloat32((10 + e % 400) * 0.7),
    concat('v', toString(h % 330000)), concat('s', toString(s)),
    if(src = '', '', concat('https://', lower(src), '/')), lower(src), {_MEDIUMS}[i + 1], src,
    if(i = 0 AND paid, 'google', ''), if(i = 0 AND paid, 'cpc', ''), if(i = 0 AND paid, 'spring', ''),
    {_DEVICES}[bitShiftRight(h, 8) % 3 + 1].1, {_DEVICES}[bitShiftRight(h, 8) % 3 + 1].2,
    {_DEVICES}[bitShiftRight(h, 8) % 3 + 1].3,
    bitShiftRight(h, 32) % 20 = 0, {_CHANNELS}[i + 1], {_COUNTRIES}[bitShiftRight(h, 16) % 10 + 1], 'granted'
FROM (
    SELECT number, intDiv(number, 10) AS s, cityHash64(intDiv(number, 10)) AS h, number % 10 AS k,
           cityHash64(number, 7) AS e, h % 8 AS i, {_SOURCES}[i + 1] AS src,
           k = 0 OR (h % 3 != 0 AND k IN (3, 6, 8)) AS pv, bitShiftRight(h, 24) % 2 = 0 AS paid
    FROM numbers({{offset:UInt64}}, {{count:UInt64}})
)
"""
