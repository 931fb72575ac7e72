"""Cookieless identity: visitor = keyed hash of (daily salt, site, IP, user agent).

Runs in the publisher's flush task, in batches, never on the response path.

Salts (:class:`SaltStore`): 16 random bytes per UTC day, never derived from the
date, stored in Redis (``<prefix>:cl:salt:<YYYY-MM-DD>``) so every proxy process
agrees: the first process to ``SET NX`` wins and everyone reads back the winner.
A salt is used as "today" on its day and as "yesterday" on the next (so a session
can cross midnight), then deleted: its TTL ends ~49 h after its day began, and
each rotation also deletes older days explicitly.

Sessions (:class:`CookielessSessions`): one Redis key per (site, visitor hash)
holding ``session id, start, last hit``. Expiry is decided from those stored
timestamps (every hit, pageview or not, refreshes ``last``); Redis TTLs only
collect garbage. One Lua script per batch resolves every hit atomically.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from hashlib import blake2b

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proxy.settings import IdentitySettings
from proxy.tracking.identity import GRANTED, Identity, new_id

log = logging.getLogger(__name__)

DAY = 86400
SALT_BYTES = 16
SALT_TTL = 49 * 3600  # from the start of the salt's day: today + yesterday + 1 h skew
_OLD_DAYS = range(2, 8)  # days before today whose salts rotation deletes explicitly
SEEN_TTL = 49 * 3600


def visitor_hash(salt: bytes, site: str, ip: str, user_agent: str) -> str:
    """Keyed BLAKE2b of site, IP and user agent under ``salt``: 32 hex chars."""
    data = f"{site}\x00{ip}\x00{user_agent}".encode("utf-8", "surrogatepass")
    return blake2b(data, key=salt, digest_size=16).hexdigest()


def _day_label(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * DAY))


def _salt_from(value: bytes | str | None) -> bytes | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    try:
        salt = bytes.fromhex(text)
    except ValueError:
        return None
    return salt if len(salt) == SALT_BYTES else None


class SaltStore:
    """Today's and yesterday's salt, shared through Redis, cached until midnight UTC.

    ``salts`` raises ``RedisError``/``OSError`` when Redis cannot be reached and
    the cache does not cover ``now``; :meth:`cached` never touches Redis.
    """

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._day: int | None = None
        self._today: bytes = b""
        self._yesterday: bytes | None = None

    def key(self, day: int) -> str:
        return f"{self._prefix}:cl:salt:{_day_label(day)}"

    def cached(self, now: float) -> tuple[bytes, bytes | None] | None:
        """The salts for ``now``'s UTC day if already known, without any I/O."""
        if self._day == int(now // DAY):
            return self._today, self._yesterday
        return None

    async def salts(self, now: float) -> tuple[bytes, bytes | None]:
        """(today's salt, yesterday's or None) for the UTC day of ``now``."""
        known = self.cached(now)
        if known is not None:
            return known
        day = int(now // DAY)
        # TTL relative to `now` (not EXAT) so it also behaves for simulated clocks.
        ttl = max(60, int(day * DAY + SALT_TTL - now))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self.key(day), os.urandom(SALT_BYTES).hex(), nx=True, ex=ttl)
            pipe.get(self.key(day))
            pipe.get(self.key(day - 1))
            pipe.delete(*(self.key(day - n) for n in _OLD_DAYS))
            _, today_raw, yesterday_raw, _ = await pipe.execute()
        today = _salt_from(today_raw)
        if today is None:  # garbage under our key: replace it, everyone will read ours
            today = os.urandom(SALT_BYTES)
            await self._redis.set(self.key(day), today.hex(), ex=ttl)
        self._day, self._today, self._yesterday = day, today, _salt_from(yesterday_raw)
        log.info("cookieless salt for %s loaded", _day_label(day))
        return today, self._yesterday


@dataclass(slots=True)
class CookielessHit:
    """One request to identify: raw (not anonymised) client IP and user agent."""

    ts: float
    site: str
    ip: str
    user_agent: str
    pageview: bool


# KEYS per hit: session today, session yesterday, seen today, seen yesterday.
# ARGV: idle, max, session ttl, seen ttl, then per hit: ts, new session id.
# Returns per hit: session id, new_session (0/1), new_visitor (0/1).
_RESOLVE_LUA = """
local idle, maxlen = tonumber(ARGV[1]), tonumber(ARGV[2])
local sess_ttl, seen_ttl = ARGV[3], ARGV[4]
local out = {}
for i = 0, #KEYS / 4 - 1 do
  local k = i * 4
  local ts, fresh = tonumber(ARGV[5 + i * 2]), ARGV[6 + i * 2]
  local sid, start, last
  local v = redis.call('GET', KEYS[k + 1])
  if not v and KEYS[k + 2] ~= KEYS[k + 1] then v = redis.call('GET', KEYS[k + 2]) end
  if v then
    local a, b, c = string.match(v, '^(%S+) (%S+) (%S+)$')
    if a then sid, start, last = a, tonumber(b), tonumber(c) end
  end
  local new_session = 0
  if not sid or ts - last > idle or ts - start > maxlen then
    sid, start, last, new_session = fresh, ts, ts, 1
  elseif ts > last then
    last = ts
  end
  redis.call('SET', KEYS[k + 1], sid .. ' ' .. start .. ' ' .. last, 'EX', sess_ttl)
  local new_visitor = 0
  if redis.call('SET', KEYS[k + 3], '1', 'NX', 'EX', seen_ttl) then
    if KEYS[k + 4] == KEYS[k + 3] or redis.call('EXISTS', KEYS[k + 4]) == 0 then
      new_visitor = 1
    end
  end
  out[#out + 1] = sid
  out[#out + 1] = new_session
  out[#out + 1] = new_visitor
end
return out
"""


class CookielessSessions:
    """Resolves batches of :class:`CookielessHit` into :class:`Identity` objects.

    ``resolve`` never raises for Redis trouble: it degrades to the cached salt's
    visitor hash (or None) with no session, logging one WARNING per outage.
    ``new_visitor``: the hash was seen neither today nor (under yesterday's salt)
    yesterday. Across midnight the visitor id changes with the salt, the session
    continues.
    """

    def __init__(
        self, redis: aioredis.Redis, prefix: str, settings: IdentitySettings, salts: SaltStore
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._settings = settings
        self._salts = salts
        self._script = redis.register_script(_RESOLVE_LUA)
        self._down = False
        # Garbage collection only, in real seconds: long enough for the idle window
        # plus clock skew between proxies.
        self._session_ttl = settings.session_idle_seconds + 300

    async def resolve(self, hits: list[CookielessHit]) -> list[Identity]:
        """One Identity per hit, same order. One Redis round trip per batch normally."""
        if not hits:
            return []
        try:
            identities = await self._resolve(hits)
        except (RedisError, OSError) as exc:
            if not self._down:
                self._down = True
                log.warning("cookieless sessions unavailable, events go without session: %s", exc)
            return self._degraded(hits)
        if self._down:
            self._down = False
            log.info("cookieless sessions available again")
        return identities

    async def _resolve(self, hits: list[CookielessHit]) -> list[Identity]:
        keys: list[str] = []
        args: list[str | int] = [
            self._settings.session_idle_seconds,
            self._settings.session_max_seconds,
            self._session_ttl,
            SEEN_TTL,
        ]
        visitors: list[str] = []
        salt_cache: dict[int, tuple[bytes, bytes | None]] = {}
        p = self._prefix
        for hit in hits:
            day = int(hit.ts // DAY)
            pair = salt_cache.get(day)
            if pair is None:
                pair = salt_cache[day] = await self._salts.salts(hit.ts)
            today = visitor_hash(pair[0], hit.site, hit.ip, hit.user_agent)
            before = today if pair[1] is None else visitor_hash(pair[1], hit.site, hit.ip,
                                                                hit.user_agent)  # fmt: skip
            visitors.append(today)
            keys += (
                f"{p}:cl:sess:{hit.site}:{today}",
                f"{p}:cl:sess:{hit.site}:{before}",
                f"{p}:cl:seen:{hit.site}:{today}",
                f"{p}:cl:seen:{hit.site}:{before}",
            )
            args += (repr(hit.ts), new_id())
        raw = await self._script(keys=keys, args=args)
        out = []
        for i, visitor in enumerate(visitors):
            sid, new_session, new_visitor = raw[i * 3 : i * 3 + 3]
            out.append(
                Identity(
                    visitor,
                    sid.decode() if isinstance(sid, bytes) else str(sid),
                    bool(new_visitor),
                    bool(new_session),
                    GRANTED,
                    (),
                )
            )
        return out

    def _degraded(self, hits: list[CookielessHit]) -> list[Identity]:
        out = []
        for hit in hits:
            pair = self._salts.cached(hit.ts)
            visitor = None if pair is None else visitor_hash(pair[0], hit.site, hit.ip,
                                                             hit.user_agent)  # fmt: skip
            out.append(Identity(visitor, None, False, False, GRANTED, ()))
        return out
