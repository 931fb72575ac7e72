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
local pfl = {}  -- {key, expire-at, visitors}; a key may repeat (PFADD is idempotent)
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
    for _, b in ipairs(bases) do pfl[#pfl + 1] = {b[1] .. suffix, b[2], l} end
  end
end

-- 2. sessions: entry/exit, bounce, duration, first-touch goals, funnels (reads only)
local writes = {}
for _, s in ipairs(p.sessions) do
  local st = {}
  if s.k ~= '' then
    local cur = redis.call('HGETALL', s.k)
    for j = 1, #cur, 2 do st[cur[j]] = cur[j + 1] end
  end
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
    st.st, st.lt, st.n, st.xp = s.first, s.last, s.n, s.x
    st.ch, st.cp, st.ep = s.a.channel, s.a.utm_campaign, s.a.entry_page
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
  if dirty and s.k ~= '' then
    local flat = {}
    for f, v in pairs(st) do
      flat[#flat + 1] = f
      flat[#flat + 1] = type(v) == 'number' and string.format('%.17g', v) or v
    end
    writes[#writes + 1] = {s.k, flat}
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
for _, w in ipairs(writes) do
  redis.call('HSET', w[1], unpack(w[2]))
  redis.call('EXPIRE', w[1], p.sttl)
end
for _, w in ipairs(sets) do
  local key, flat = w[1], w[2]
  for s = 1, #flat, 2000 do redis.call('HSET', key, unpack(flat, s, math.min(s + 1999, #flat))) end
  redis.call('EXPIREAT', key, exp[key])
end
for key, l in pairs(pf) do pfl[#pfl + 1] = {key, exp[key], l} end
for _, h in ipairs(pfl) do
  local l = h[3]
  for s = 1, #l, 1000 do redis.call('PFADD', h[1], unpack(l, s, math.min(s + 999, #l))) end
  redis.call('EXPIREAT', h[1], h[2])
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
