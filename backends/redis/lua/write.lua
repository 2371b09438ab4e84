-- set / set_many / add. ARGV[1] capacity, ARGV[2] TTL in ms ('' for none), ARGV[3] '1' for
-- add, ARGV[i] (i >= 4) the value for KEYS[i]. Returns 1, or 0 for an add that found a live
-- entry (and then changed nothing, not even recency).
local recency, expiries, counter = KEYS[1], KEYS[2], KEYS[3]
local capacity = tonumber(ARGV[1])
local ttl = ARGV[2]
local now = nil

local function clock()
    -- server time in ms, read at most once per call
    if now == nil then
        local t = redis.call('TIME')
        now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
    end
    return now
end

local function forget(key)
    redis.call('ZREM', recency, key)
    redis.call('ZREM', expiries, key)
end

local function make_room()
    -- First every expired entry: an expired entry never takes a place a live one needs.
    local due = redis.call('ZRANGEBYSCORE', expiries, '-inf', string.format('(%.3f', clock() + 2))
    for _, key in ipairs(due) do
        if redis.call('EXISTS', key) == 0 then
            forget(key)
        end
    end
    -- Only then the least recently used live entries.
    while redis.call('ZCARD', recency) >= capacity do
        local victim = redis.call('ZRANGE', recency, 0, 0)[1]
        redis.call('UNLINK', victim)
        forget(victim)
    end
end

if ARGV[3] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then
    return 0
end
for i = 4, #KEYS do
    local key = KEYS[i]
    -- an entry already tracked keeps its place (even if it expired): no room needed
    if not redis.call('ZSCORE', recency, key) and redis.call('ZCARD', recency) >= capacity then
        make_room()
    end
    if ttl == '' then
        redis.call('SET', key, ARGV[i])
        redis.call('ZREM', expiries, key)
    else
        redis.call('SET', key, ARGV[i], 'PX', ttl)
        redis.call('ZADD', expiries, string.format('%.3f', clock() + tonumber(ttl)), key)
    end
    redis.call('ZADD', recency, redis.call('INCR', counter), key)
end
return 1
