-- Apply one batch of analytics deltas and XACK its entries, atomically.
-- KEYS[1] stream, KEYS[2] seen-set prefix.
-- ARGV[1] group, ARGV[2] de-duplication window (s), ARGV[3] header (JSON: prefix,
-- res, sttl, vids, sessions, live), ARGV[4..6] counts: event ids, acks, minute
-- groups; then, in that order and without separators: "<seen hour>|<event id>"
-- ...; the stream entry ids to acknowledge ...; the minute groups (layout in
-- aggregate.Delta: bases per resolution, then counter and HyperLogLog deltas).
-- Returns {0, dup ids...} without writing anything when some event id was
-- already applied (the caller drops them and retries), else {1}.
-- Counters are read (HMGET) and written once per hash (HSET) instead of one
-- HINCRBY per field: every redis.call costs more than the Lua around it.
local nids, nacks = tonumber(ARGV[4]), tonumber(ARGV[5])
local ngroups = tonumber(ARGV[6])
local IDS, ACKS = 7, 7 + nids
local at = ACKS + nacks

-- 1. de-duplicate on event id (the proxy is at-least-once)
local by_set = {}
for j = IDS, IDS + nids - 1 do
  local hid = ARGV[j]
  local sep = string.find(hid, '|', 1, true)
  local set = KEYS[2] .. string.sub(hid, 1, sep - 1)
  local l = by_set[set]
  if not l then l = {}; by_set[set] = l end
  l[#l + 1] = string.sub(hid, sep + 1)
end
local dups = {0}
for set, l in pairs(by_set) do
  for s = 1, #l, 500 do
    local chunk = {unpack(l, s, math.min(s + 499, #l))}
    local r = redis.call('SMISMEMBER', set, unpack(chunk))
    for k, hit in ipairs(r) do if hit == 1 then dups[#dups + 1] = chunk[k] end end
  end
end
if #dups > 1 then return dups end

local p = cjson.decode(ARGV[3])
local V, P, RES = p.vids, p.prefix, p.res
local inc, pf, exp = {}, {}, {}
local function add(key, t, f, n)
  local h = inc[key]
  if not h then h = {}; inc[key] = h; exp[key] = t end
  h[f] = (h[f] or 0) + n
end
local function pfa(key, t, vi)
  local l = pf[key]
  if not l then l = {}; pf[key] = l; exp[key] = t end
  l[#l + 1] = V[vi]
end
local function buckets(site, ts)  -- {base, expire-at} per resolution
  local out = {}
  for _, r in ipairs(RES) do
    local b = math.floor(ts / r[2]) * r[2]
    out[#out + 1] = {P .. site .. ':' .. r[1] .. ':' .. string.format('%d', b), b + r[2] + r[3]}
  end
  return out
end

-- the batch's counters and visitor sets: each delta to the minute, hour and day key
-- visitor lists per HyperLogLog, merged so each key gets one PFADD and one EXPIREAT
local pfl, pfo = {}, {}  -- key -> {expire-at, list, list, ...}; keys in first-seen order
local function pfm(key, t, l)
  local e = pfl[key]
  if not e then e = {t}; pfl[key] = e; pfo[#pfo + 1] = key end
  e[#e + 1] = l
end
for _ = 1, ngroups do
  local bases = {}
  for r = 1, #RES do bases[r] = {ARGV[at], ARGV[at + 1]}; at = at + 2 end
  local nh, nl = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  at = at + 2
  for _ = 1, nh do
    local suffix, n = ARGV[at], tonumber(ARGV[at + 1])
    at = at + 2
    for _, b in ipairs(bases) do
      local key = b[1] .. suffix
      for j = at, at + 2 * n - 1, 2 do add(key, b[2], ARGV[j], tonumber(ARGV[j + 1])) end
    end
    at = at + 2 * n
  end
  for _ = 1, nl do
    local suffix, n = ARGV[at], tonumber(ARGV[at + 1])
    local l = {}
    for j = at + 2, at + n + 1 do l[#l + 1] = V[tonumber(ARGV[j])] end
    at = at + n + 2
    for _, b in ipairs(bases) do pfm(b[1] .. suffix, b[2], l) end
  end
end

-- 2. sessions: entry/exit, bounce, duration, first-touch goals, funnels, and the
-- session-scoped acquisition dimensions (reads only)
-- {dimension, session-state field}: a session's pageviews count under its first touch
local ACQ = {{'referrer_source', 'rs'}, {'referrer_medium', 'rm'}, {'channel', 'ch'},
             {'utm_source', 'us'}, {'utm_medium', 'um'}, {'utm_campaign', 'cp'}}
local acq, acql = {}, {}  -- folded per (site, minute, attribution): few distinct ones
-- Session state: one MessagePack string per session (doubles kept exact), read with
-- one MGET. A miss may be a hash written by an earlier version: read that instead.
local skeys, states = {}, {}
for _, s in ipairs(p.sessions) do if s.k ~= '' then skeys[#skeys + 1] = s.k end end
for j = 1, #skeys, 1000 do
  local got = redis.call('MGET', unpack(skeys, j, math.min(j + 999, #skeys)))
  for k = 1, #got do
    local key = skeys[j + k - 1]
    if got[k] then
      states[key] = cmsgpack.unpack(got[k])
    else
      local cur, st = redis.call('HGETALL', key), {}
      for f = 1, #cur, 2 do st[cur[f]] = cur[f + 1] end
      states[key] = st
    end
  end
end
local writes = {}
for _, s in ipairs(p.sessions) do
  local st = s.k ~= '' and states[s.k] or {}
  local dirty = false
  local sb = nil
  if s.n > 0 and s.k ~= '' and st.st == nil then
    sb = buckets(s.site, s.first)
    local dur = math.floor((s.last - s.first) * 1000 + 0.5)
    for _, b in ipairs(sb) do
      add(b[1] .. ':t', b[2], 's', 1)
      if s.n == 1 then add(b[1] .. ':t', b[2], 'b', 1) end
      if dur > 0 then add(b[1] .. ':t', b[2], 'dur', dur) end
      for dim, val in pairs(s.a) do add(b[1] .. ':d:' .. dim, b[2], 's:' .. val, 1) end
      add(b[1] .. ':d:exit_page', b[2], 's:' .. s.x, 1)
      if s.v > 0 then
        pfa(b[1] .. ':u:entry_page:' .. s.a.entry_page, b[2], s.v)
        pfa(b[1] .. ':u:exit_page:' .. s.x, b[2], s.v)
      end
    end
    st.st, st.lt, st.n, st.xp, st.ep = s.first, s.last, s.n, s.x, s.a.entry_page
    for _, d in ipairs(ACQ) do st[d[2]] = s.a[d[1]] end
    dirty = true
  elseif s.n > 0 and st.st ~= nil then
    sb = buckets(s.site, tonumber(st.st))
    local n0, lt0 = tonumber(st.n), tonumber(st.lt)
    for _, b in ipairs(sb) do
      if n0 == 1 then add(b[1] .. ':t', b[2], 'b', -1) end
      if s.last > lt0 then
        add(b[1] .. ':t', b[2], 'dur', math.floor((s.last - lt0) * 1000 + 0.5))
        if s.x ~= st.xp then
          add(b[1] .. ':d:exit_page', b[2], 's:' .. st.xp, -1)
          add(b[1] .. ':d:exit_page', b[2], 's:' .. s.x, 1)
          -- an HLL cannot forget: the visitor also stays on the page it left
          if s.v > 0 then pfa(b[1] .. ':u:exit_page:' .. s.x, b[2], s.v) end
        end
      end
    end
    st.n = n0 + s.n
    if s.last > lt0 then st.lt, st.xp = s.last, s.x end
    dirty = true
  end
  if #s.g > 0 then
    local fb = s.fb
    if next(fb) == nil then fb = s.a end
    local ch = st.ch or fb.channel or '(none)'
    local cp = st.cp or fb.utm_campaign or '(none)'
    for j, goal in ipairs(s.g) do
      local first = st['g:' .. goal] == nil
      for _, b in ipairs(buckets(s.site, s.gt[j])) do
        local g = b[1] .. ':g'
        add(g, b[2], 'c:' .. goal, 1)
        add(g, b[2], 'c:' .. goal .. '|ch:' .. ch, 1)
        add(g, b[2], 'c:' .. goal .. '|cp:' .. cp, 1)
        if first then
          add(g, b[2], 'cs:' .. goal, 1)
          add(g, b[2], 'cs:' .. goal .. '|ch:' .. ch, 1)
          add(g, b[2], 'cs:' .. goal .. '|cp:' .. cp, 1)
        end
        if s.v > 0 then pfa(b[1] .. ':gu:' .. goal, b[2], s.v) end
      end
      if s.k ~= '' and st.st ~= nil then
        if first then st['g:' .. goal] = 1; dirty = true end
        if st.cv == nil then  -- first conversion: landing page and campaign conversion
          for _, b in ipairs(sb or buckets(s.site, tonumber(st.st))) do
            add(b[1] .. ':d:entry_page', b[2], 'c:' .. st.ep, 1)
            add(b[1] .. ':d:utm_campaign', b[2], 'c:' .. st.cp, 1)
          end
          st.cv = 1
        end
      end
    end
  end
  if st.st ~= nil then
    for _, fs in ipairs(s.f) do
      local key = 'f:' .. fs[1]
      local reached = tonumber(st[key] or 0)
      if fs[2] == reached + 1 then
        st[key] = fs[2]
        for _, b in ipairs(sb) do add(b[1] .. ':f', b[2], fs[1] .. ':' .. fs[2], 1) end
      end
    end
  end
  if #s.m > 0 and st.st ~= nil then
    local vals = {}  -- first touch (a state written before these fields: this batch's)
    for d, f in ipairs(ACQ) do
      vals[d] = st[f[2]] or s.a[f[1]] or '(none)'
      st[f[2]] = vals[d]
    end
    local tag = table.concat(vals, '\0')
    for _, c in ipairs(s.m) do
      local k = s.site .. '\0' .. c[1] .. '\0' .. tag
      local a = acq[k]
      if not a then
        local vis = {}
        for r = 1, #RES do vis[r] = {} end
        a = {s.site, c[1], vals, 0, 0, {}, vis}
        acq[k] = a; acql[#acql + 1] = a
      end
      a[4], a[5] = a[4] + c[2], a[5] + c[3]
      local lat = a[6]
      for j = 1, #c[4], 2 do lat[c[4][j]] = (lat[c[4][j]] or 0) + c[4][j + 1] end
      if s.v > 0 then
        -- The visitor's HyperLogLogs for these values (and :v) already hold it when
        -- the session added it to the same bucket before (st.u<res>): skip the PFADD.
        for r, res in ipairs(RES) do
          local b, f = math.floor(c[1] * 60 / res[2]) * res[2], 'u' .. res[1]
          if st[f] ~= b then
            st[f] = b
            a[7][r][#a[7][r] + 1] = V[s.v]
          end
        end
      end
    end
  end
  if dirty and s.k ~= '' then writes[#writes + 1] = {s.k, cmsgpack.pack(st)} end
end

-- the acquisition deltas: each (site, minute, attribution) to its minute, hour, day keys
for _, a in ipairs(acql) do
  local vals, pv, err, lat, vis = a[3], a[4], a[5], a[6], a[7]
  for r, b in ipairs(buckets(a[1], a[2] * 60)) do
    local rvis = vis[r]
    if #rvis > 0 then pfm(b[1] .. ':v', b[2], rvis) end
    for d, f in ipairs(ACQ) do
      local key = b[1] .. ':d:' .. f[1]
      add(key, b[2], 'pv:' .. vals[d], pv)
      if err > 0 and d == 6 then add(key, b[2], 'e:' .. vals[d], err) end  -- campaign error rate
      if #rvis > 0 then pfm(b[1] .. ':u:' .. f[1] .. ':' .. vals[d], b[2], rvis) end
    end
    for li, n in pairs(lat) do
      add(b[1] .. ':l:utm_campaign', b[2], string.format('%d', li) .. ':' .. vals[6], n)
    end
  end
end

-- 3. counters: read every hash's current values (still no write), then add
local sets = {}
for key, h in pairs(inc) do
  local fields = {}
  for f, n in pairs(h) do if n ~= 0 then fields[#fields + 1] = f end end
  local flat = {}
  for s = 1, #fields, 1000 do
    local chunk = {unpack(fields, s, math.min(s + 999, #fields))}
    local cur = redis.call('HMGET', key, unpack(chunk))
    for k, f in ipairs(chunk) do
      local v = h[f]
      if cur[k] then  -- as HINCRBY would: a non-integer value fails the batch
        v = v + (tonumber(cur[k]) or error('hash value is not an integer: ' .. key))
      end
      flat[#flat + 1] = f
      flat[#flat + 1] = string.format('%d', v)
    end
  end
  sets[#sets + 1] = {key, flat}
end

-- 4. write: nothing above wrote, so a failing read (e.g. WRONGTYPE) leaves no trace
for _, w in ipairs(writes) do redis.call('SET', w[1], w[2], 'EX', p.sttl) end
-- A key is only ever created here, together with its EXPIREAT: when a write creates
-- nothing (HSET adds no field, PFADD alters no register), the key already has it.
for _, w in ipairs(sets) do
  local key, flat, new = w[1], w[2], 0
  for s = 1, #flat, 2000 do new = new + redis.call('HSET', key, unpack(flat, s, math.min(s + 1999, #flat))) end
  if new > 0 then redis.call('EXPIREAT', key, exp[key]) end
end
for key, l in pairs(pf) do pfm(key, exp[key], l) end
for _, key in ipairs(pfo) do
  local e = pfl[key]
  local l = e[2]
  if #e > 2 then  -- a key may get the same visitor twice: PFADD is idempotent
    l = {}
    for j = 2, #e do for _, v in ipairs(e[j]) do l[#l + 1] = v end end
  end
  local changed = 0
  for s = 1, #l, 1000 do changed = changed + redis.call('PFADD', key, unpack(l, s, math.min(s + 999, #l))) end
  if changed > 0 then redis.call('EXPIREAT', key, e[1]) end
end
for _, lv in ipairs(p.live) do
  local z, top = {}, 0
  for j = 1, #lv[2], 2 do
    z[#z + 1] = lv[2][j]; z[#z + 1] = V[lv[2][j + 1]]
    if lv[2][j] > top then top = lv[2][j] end
  end
  redis.call('ZADD', lv[1], 'GT', unpack(z))
  redis.call('ZREMRANGEBYSCORE', lv[1], '-inf', top - 3600)
  redis.call('EXPIRE', lv[1], 86400)
end
for set, l in pairs(by_set) do
  for s = 1, #l, 1000 do redis.call('SADD', set, unpack(l, s, math.min(s + 999, #l))) end
  local hour = tonumber(string.sub(set, #KEYS[2] + 1))
  redis.call('EXPIREAT', set, hour * 3600 + 3600 + tonumber(ARGV[2]))
end
for s = ACKS, ACKS + nacks - 1, 1000 do
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, s, math.min(s + 999, ACKS + nacks - 1)))
end
return {1}
