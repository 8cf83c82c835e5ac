"""The Lua scripts of the Redis limits: each decision is one atomic script, timed by Redis' own clock (``TIME``).

Key layout and algorithms: see :mod:`penguiflow_middleware.redis_limits`.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "RELEASE", "RENEW", "RESERVE", "SNAPSHOT"]

# Times in ms for the semaphore (Lua 5.1 prints numbers with 14 digits: ms since 1970 fit, µs do not — the rate
# script formats its µs explicitly).

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

ACQUIRE = (
    _NOW_MS
    + """
local holders_key, queue_key, alive_key, seq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ticket, limit = ARGV[1], tonumber(ARGV[2])
local lease, ttl, idle = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', holders_key, '-inf', now)
local dead = redis.call('ZRANGEBYSCORE', alive_key, '-inf', now)
if #dead > 0 then
  for i = 1, #dead do redis.call('ZREM', queue_key, dead[i]) end
  redis.call('ZREMRANGEBYSCORE', alive_key, '-inf', now)
end
local held = redis.call('ZCARD', holders_key)
local granted = false
local rank = redis.call('ZRANK', queue_key, ticket)
if redis.call('ZSCORE', holders_key, ticket) then
  granted = true  -- a repeated request of a ticket that already holds
elseif not rank and held < limit and redis.call('ZCARD', queue_key) == 0 then
  granted = true  -- nobody waits: no need to queue
else
  if not rank then
    redis.call('ZADD', queue_key, redis.call('INCR', seq_key), ticket)
    rank = redis.call('ZCARD', queue_key) - 1
  end
  -- FIFO: the first (limit - held) tickets of the queue may take the free slots
  granted = rank < limit - held
end
if granted then
  redis.call('ZREM', queue_key, ticket)
  redis.call('ZREM', alive_key, ticket)
  redis.call('ZADD', holders_key, now + lease, ticket)
  redis.call('PEXPIRE', holders_key, idle)
  return {1, held + 1}
end
redis.call('ZADD', alive_key, now + ttl, ticket)
redis.call('PEXPIRE', queue_key, idle)
redis.call('PEXPIRE', alive_key, idle)
redis.call('PEXPIRE', seq_key, idle)
return {0, rank}
"""
)

RELEASE = """
local released = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return released
"""

RENEW = (
    _NOW_MS
    + """
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry or tonumber(expiry) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""
)

SNAPSHOT = (
    _NOW_MS
    + """
return {redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf'), redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf')}
"""
)

# GCRA: the bucket is the theoretical arrival time (TAT) of the next call; a call may run at TAT - tolerance.
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if max_wait >= 0 and wait > max_wait then return {0, string.format('%.0f', wait), '0'} end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', string.format('%.0f', (next_tat - now) / 1000 + 1000))
return {1, string.format('%.0f', wait), string.format('%.0f', now + wait)}
"""
