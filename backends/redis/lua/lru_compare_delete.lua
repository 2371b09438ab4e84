-- compare_and_delete: KEYS[4] the entry; ARGV[1] expected. Returns 1 if it deleted the
-- entry, else 0.
local key = KEYS[4]
local current = redis.call('GET', key)
if current == ARGV[1] then
    redis.call('UNLINK', key)
elseif current then
    return 0  -- a live entry that does not match: untouched, recency unchanged
end
-- deleted, or gone on the server already: either way it leaves the bookkeeping
redis.call('ZREM', KEYS[1], key)
redis.call('ZREM', KEYS[2], key)
if current then
    return 1
end
return 0
