#!lua name=gavel
-- Gavel's atomic steps in Redis (cluster mode). Each function is one step that must be exact across nodes;
-- Redis runs it alone, so keep it short. Every key a call touches belongs to one buyer (or one seller) and
-- carries its hash tag, so the library works on a single Redis and on a Redis Cluster alike.
--
-- Money is integer cents. Times are Redis's own clock (TIME), so nodes with skewed clocks agree on expiry.
-- A buyer's tally hash holds:
--   epoch         the exchange's epoch it was rebuilt in (a flushed Redis has none: callers then rebuild)
--   held_units    bids held (one unit of every cap each)      held_cents  their prices
--   bal           the buyer's ledger balance, mirrored (funds = bal + credit limit)
--   k:<p> c:<p> s:<p>  for each period p (1 hourly … 4 monthly): the period's key, sales and spend
-- and, under the same tag: `holds` (sorted set of hold ids by expiry), `held` (hash: hold id → "<cents>
-- <contact> …", what the hold took), `c:<contact>` (a phone or email: "h:<hold id>" while reserved, "s" once
-- sold, expiring with the buyer's duplicate window), `conv:<lead>` / `cred:<txn>` (idempotency markers),
-- `slots`.
--
-- Every redis.call costs a few microseconds here, more than the Lua around it, and a hold is on the path of
-- every ping's answer: the steps read and write each hash in one call where they can.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function hget_num(key, field)
  return tonumber(redis.call('HGET', key, field) or '0') or 0
end

-- What a hold took: its cents and the contacts it reserves.
local function parse_held(info)
  local cents, contacts = string.match(info or '0', '^(%S+)%s*(.*)$')
  return tonumber(cents) or 0, contacts or ''
end

-- Releases one hold: its unit, its money and the contacts it still reserves. Idempotent.
local function release(tally, holds, held, hold_id, contact_prefix)
  if redis.call('ZREM', holds, hold_id) == 0 then
    return false
  end
  local cents, contacts = parse_held(redis.call('HGET', held, hold_id))
  redis.call('HINCRBY', tally, 'held_units', -1)
  redis.call('HINCRBY', tally, 'held_cents', -cents)
  for contact in string.gmatch(contacts, '%S+') do
    local key = contact_prefix .. contact
    if redis.call('GET', key) == 'h:' .. hold_id then
      redis.call('DEL', key)
    end
  end
  redis.call('HDEL', held, hold_id)
  return true
end

-- Releases holds whose bids expired and that no node released (a dead node's), a bounded number per call.
-- A live node releases its own at their expiry, so this only runs where it could change an answer: before a
-- hold is refused, and for the operator's tally.
local function purge(tally, holds, held, contact_prefix, now)
  local expired = redis.call('ZRANGEBYSCORE', holds, '-inf', now, 'LIMIT', 0, 64)
  for _, hold_id in ipairs(expired) do
    release(tally, holds, held, hold_id, contact_prefix)
  end
  return #expired > 0
end

-- A period's sales and spend now: zero once the period rolled over.
local function period_count(tally, p, key)
  local stored = tonumber(redis.call('HGET', tally, 'k:' .. p) or '-1')
  if stored ~= key then
    return 0, 0
  end
  return hget_num(tally, 'c:' .. p), hget_num(tally, 's:' .. p)
end

-- Counts one sale in a period; a sale of a period already left behind counts nowhere.
local function add_sale(tally, p, key, cents)
  local stored = tonumber(redis.call('HGET', tally, 'k:' .. p) or '-1')
  if key > stored then
    redis.call('HSET', tally, 'k:' .. p, key, 'c:' .. p, 1, 's:' .. p, cents)
  elseif key == stored then
    redis.call('HINCRBY', tally, 'c:' .. p, 1)
    redis.call('HINCRBY', tally, 's:' .. p, cents)
  end
end

local TALLY_FIELDS = {'epoch', 'held_units', 'held_cents', 'bal',
  'k:1', 'c:1', 's:1', 'k:2', 'c:2', 's:2', 'k:3', 'c:3', 's:3', 'k:4', 'c:4', 's:4'}

-- Why a bid of `cents` cannot be held against the tally figures `f` (an HMGET of TALLY_FIELDS), or nil.
-- ARGV from 8 on: 4 × (period key, cap limit or -1, budget cents or -1); credit: the buyer's credit cents.
local function shortfall(f, args, cents, credit)
  local held_units, held_cents = tonumber(f[2] or '0') or 0, tonumber(f[3] or '0') or 0
  for p = 1, 4 do
    local base = 8 + (p - 1) * 3
    local key, limit, budget = tonumber(args[base]), tonumber(args[base + 1]), tonumber(args[base + 2])
    -- The period's sales and spend, zero once it rolled over (as `period_count` reads them).
    local at = 5 + (p - 1) * 3
    local sales, spent = 0, 0
    if tonumber(f[at] or '-1') == key then
      sales, spent = tonumber(f[at + 1] or '0') or 0, tonumber(f[at + 2] or '0') or 0
    end
    if limit >= 0 and sales + held_units >= limit then
      return {'cap', p}
    end
    if budget >= 0 and spent + held_cents + cents > budget then
      return {'budget', p}
    end
  end
  if (tonumber(f[4] or '0') or 0) + credit - held_cents < cents then
    return {'balance'}
  end
  return nil
end

-- hold: reserve a winning bid's contacts, one unit of every cap and its price against budgets and funds.
-- KEYS: tally, holds, held, then one c:<contact> per contact.
-- ARGV: epoch, hold id, ttl ms, cents, credit cents, dedupe on (1/0), contact prefix,
--       then 4 × (period key, cap limit or -1, budget cents or -1), then the contacts (hex).
-- Returns {'ok'} or {'empty'} (rebuild first), {'duplicate'}, {'cap', p}, {'budget', p}, {'balance'}.
local function hold(keys, args)
  local tally, holds, held = keys[1], keys[2], keys[3]
  local f = redis.call('HMGET', tally, unpack(TALLY_FIELDS))
  if f[1] ~= args[1] then
    return {'empty'}
  end
  local hold_id, ttl, cents, credit = args[2], tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  local dedupe = args[6] == '1' and #keys > 3
  if dedupe and redis.call('EXISTS', unpack(keys, 4)) > 0 then
    return {'duplicate'}
  end
  local now = now_ms()
  local refused = shortfall(f, args, cents, credit)
  -- Expired holds nobody released count until purged: purge, then look again, before refusing.
  if refused and purge(tally, holds, held, args[7], now) then
    f = redis.call('HMGET', tally, unpack(TALLY_FIELDS))
    refused = shortfall(f, args, cents, credit)
  end
  if refused then
    return refused
  end
  redis.call('HSET', tally, 'held_units', (tonumber(f[2] or '0') or 0) + 1,
    'held_cents', (tonumber(f[3] or '0') or 0) + cents)
  redis.call('ZADD', holds, now + ttl, hold_id)
  local info = tostring(cents)
  if dedupe then
    for i = 4, #keys do
      redis.call('SET', keys[i], 'h:' .. hold_id, 'PX', ttl)
      info = info .. ' ' .. args[20 + i - 4]
    end
  end
  redis.call('HSET', held, hold_id, info)
  return {'ok'}
end

-- claim: a post takes a held bid for delivery: its expiry moves out by the post's time, and the real
-- contacts are reserved too. KEYS: tally, holds, held, c:<contact>…
-- ARGV: hold id, extend ms, dedupe on (1/0), contacts (hex)…  Returns {'ok'}, {'gone'}, {'duplicate'}.
local function claim(keys, args)
  local holds, held, hold_id = keys[2], keys[3], args[1]
  local extend = tonumber(args[2])
  local now = now_ms()
  local expiry = redis.call('ZSCORE', holds, hold_id)
  if not expiry or tonumber(expiry) <= now then
    return {'gone'}
  end
  local mine = 'h:' .. hold_id
  local added = {}
  if args[3] == '1' then
    for i = 4, #keys do
      local value = redis.call('GET', keys[i])
      if value and value ~= mine then
        return {'duplicate'}
      end
      if not value then
        added[#added + 1] = i
      end
    end
  end
  redis.call('ZADD', holds, 'XX', now + extend, hold_id)
  if #added > 0 then
    local info = redis.call('HGET', held, hold_id) or '0'
    for _, i in ipairs(added) do
      info = info .. ' ' .. args[i]
    end
    redis.call('HSET', held, hold_id, info)
  end
  if args[3] == '1' then
    for i = 4, #keys do
      redis.call('SET', keys[i], mine, 'PX', extend)
    end
  end
  return {'ok'}
end

-- release: a bid rejected, failed or expired gives back what it held. KEYS: tally, holds, held.
-- ARGV: hold id, contact prefix, force (1) or only if its expiry passed (0: a post may have claimed it, which
-- moved its expiry out by at least 5 s). The node's timer and the hold's expiry here are set a round trip
-- apart, so an expiry less than a second away counts as passed: otherwise the hold stayed until a refusal
-- purged it.
local function release_hold(keys, args)
  if args[3] ~= '1' then
    local expiry = redis.call('ZSCORE', keys[2], args[1])
    if expiry and tonumber(expiry) > now_ms() + 1000 then
      return {'kept'}
    end
  end
  release(keys[1], keys[2], keys[3], args[1], args[2])
  return {'ok'}
end

-- convert: a buyer took the lead: its hold becomes a counted sale, the balance mirror moves and the contacts
-- become history, once per lead (retries are safe). Applied whatever the epoch: a sale the buyer accepted is
-- always counted. KEYS: tally, holds, held, conv:<lead>, c:<contact>…
-- ARGV: hold id, cents, 4 period keys, dedupe ms (0: off), contacts (hex)…
local function convert(keys, args)
  local tally, holds, held = keys[1], keys[2], keys[3]
  if redis.call('SET', keys[4], '1', 'NX', 'PX', 86400000) == false then
    return {'done'}
  end
  local hold_id, cents = args[1], tonumber(args[2])
  if redis.call('ZREM', holds, hold_id) == 1 then
    local held_cents = parse_held(redis.call('HGET', held, hold_id))
    redis.call('HINCRBY', tally, 'held_units', -1)
    redis.call('HINCRBY', tally, 'held_cents', -held_cents)
    redis.call('HDEL', held, hold_id)
  end
  for p = 1, 4 do
    add_sale(tally, p, tonumber(args[2 + p]), cents)
  end
  redis.call('HINCRBY', tally, 'bal', -cents)
  local dedupe = tonumber(args[7])
  for i = 5, #keys do
    if dedupe > 0 then
      redis.call('SET', keys[i], 's', 'PX', dedupe)
    elseif redis.call('GET', keys[i]) == 'h:' .. hold_id then
      redis.call('DEL', keys[i])
    end
  end
  return {'ok'}
end

-- credit: money into a buyer's balance mirror (a deposit, an approved return), once per transaction, and only
-- in the epoch the caller knows (after a flush the rebuild takes it from the ledger instead).
-- KEYS: tally, cred:<txn>. ARGV: epoch, cents.
local function credit(keys, args)
  if redis.call('HGET', keys[1], 'epoch') ~= args[1] then
    return {'empty'}
  end
  if redis.call('SET', keys[2], '1', 'NX', 'PX', 86400000) == false then
    return {'done'}
  end
  redis.call('HINCRBY', keys[1], 'bal', tonumber(args[2]))
  return {'ok'}
end

-- tally: what a buyer has used and holds now, for the operator's view. KEYS: tally, holds, held.
-- ARGV: epoch, contact prefix, 4 period keys. Returns {'ok', held units, held cents, balance,
-- then sales and spend of each period} or {'empty'}.
local function tally(keys, args)
  local t = keys[1]
  if redis.call('HGET', t, 'epoch') ~= args[1] then
    return {'empty'}
  end
  purge(t, keys[2], keys[3], args[2], now_ms())
  local out = {'ok', hget_num(t, 'held_units'), hget_num(t, 'held_cents'), hget_num(t, 'bal')}
  for p = 1, 4 do
    local sales, spent = period_count(t, p, tonumber(args[2 + p]))
    out[#out + 1] = sales
    out[#out + 1] = spent
  end
  return out
end

-- rebuild_buyer: a buyer's state from the ledger, after a flush (or for a buyer new to this Redis). Counts
-- are added, not set: a sale converted since the flush is then counted twice at worst — the safe side.
-- KEYS: tally, then c:<contact>… ARGV: epoch, balance cents, 4 × (key, sales, spent), then for each contact
-- key the ms left of its duplicate window.
local function rebuild_buyer(keys, args)
  local t = keys[1]
  redis.call('HINCRBY', t, 'bal', tonumber(args[2]))
  for p = 1, 4 do
    local base = 3 + (p - 1) * 3
    local key, sales, spent = tonumber(args[base]), tonumber(args[base + 1]), tonumber(args[base + 2])
    local stored = tonumber(redis.call('HGET', t, 'k:' .. p) or '-1')
    if key > stored then
      redis.call('HSET', t, 'k:' .. p, key, 'c:' .. p, sales, 's:' .. p, spent)
    elseif key == stored then
      redis.call('HINCRBY', t, 'c:' .. p, sales)
      redis.call('HINCRBY', t, 's:' .. p, spent)
    end
  end
  for i = 2, #keys do
    redis.call('SET', keys[i], 's', 'PX', tonumber(args[13 + i]), 'NX')
  end
  redis.call('HSET', t, 'epoch', args[1])
  return {'ok'}
end

-- slot: a ping in flight to a buyer with concurrent_pings, leased so a dead node's slots come back.
-- KEYS: slots. ARGV: slot id, limit, lease ms. Returns {'ok'} or {'full'}.
local function slot(keys, args)
  local now = now_ms()
  redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', now)
  if redis.call('ZCARD', keys[1]) >= tonumber(args[2]) then
    return {'full'}
  end
  redis.call('ZADD', keys[1], now + tonumber(args[3]), args[1])
  redis.call('PEXPIRE', keys[1], tonumber(args[3]) * 2)
  return {'ok'}
end

-- rate: a seller's ping budget (GCRA over the whole exchange), taken `want` at a time by a node.
-- KEYS: the seller's due time. ARGV: per second, want. Returns {granted, retry after ms}.
local function rate(keys, args)
  local per_second, want = tonumber(args[1]), tonumber(args[2])
  local interval = 1000000 / per_second -- microseconds per ping
  local burst = 1000000 - interval
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local due = math.max(tonumber(redis.call('GET', keys[1]) or '0'), now)
  local granted = 0
  while granted < want and due - now <= burst do
    due = due + interval
    granted = granted + 1
  end
  if granted == 0 then
    return {0, math.ceil((due - now - burst) / 1000)}
  end
  redis.call('SET', keys[1], string.format('%.0f', due), 'PX', 2000)
  return {granted, 0}
end

-- extend_lock: a delivery still under way keeps its post's turn. KEYS: the ping's lock. ARGV: the lock's token,
-- its new time to live in ms. Returns 1, or 0 when the lock is no longer this delivery's.
local function extend_lock(keys, args)
  if redis.call('GET', keys[1]) == args[1] then
    return redis.call('PEXPIRE', keys[1], args[2])
  end
  return 0
end

-- unlock: a delivery done (or refused) lets go of its post's turn, unless the lock is no longer its own: one
-- that expired was taken by a later post, whose turn this must not end. KEYS: the ping's lock. ARGV: the lock's
-- token. Returns 1 when it let go, 0 otherwise.
local function unlock(keys, args)
  if redis.call('GET', keys[1]) == args[1] then
    return redis.call('DEL', keys[1])
  end
  return 0
end

redis.register_function('gavel_hold', hold)
redis.register_function('gavel_claim', claim)
redis.register_function('gavel_release', release_hold)
redis.register_function('gavel_convert', convert)
redis.register_function('gavel_credit', credit)
redis.register_function('gavel_tally', tally)
redis.register_function('gavel_rebuild_buyer', rebuild_buyer)
redis.register_function('gavel_slot', slot)
redis.register_function('gavel_rate', rate)
redis.register_function('gavel_extend_lock', extend_lock)
redis.register_function('gavel_unlock', unlock)
