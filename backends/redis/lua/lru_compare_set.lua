-- compare_and_set: KEYS[4] the entry; ARGV[1] expected, ARGV[2] the new value, ARGV[3] TTL
-- in ms ('' for none). Returns 1 if it replaced the value, else 0.
local recency, expiries, counter, key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local current = redis.call('GET', key)
if not current then
    -- gone on the server (expired, or never written), whatever the sorted sets say: it
    -- never matches, and it stops taking a place (as in the read script)
    redis.call('ZREM', recency, key)
    redis.call('ZREM', expiries, key)
    return 0
end
if current ~= ARGV[1] then
    return 0  -- a comparison alone is not a use: recency unchanged
end
-- A match is a live entry, which already has its place: replacing it never needs room.
-- Value and TTL are replaced as the write script replaces them.
if ARGV[3] == '' then
    redis.call('SET', key, ARGV[2])
    redis.call('ZREM', expiries, key)
else
    redis.call('SET', key, ARGV[2], 'PX', ARGV[3])
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
    redis.call('ZADD', expiries, string.format('%.3f', now + tonumber(ARGV[3])), key)
end
-- a successful replace is a write: the entry becomes the most recently used
redis.call('ZADD', recency, redis.call('INCR', counter), key)
return 1
