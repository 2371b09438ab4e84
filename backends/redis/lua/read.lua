-- get / get_many: ARGV unused. Returns one reply per entry: the value, or false (nil).
local found = {}
for i = 4, #KEYS do
    local value = redis.call('GET', KEYS[i])
    found[i - 3] = value
    if value then
        -- a hit is a use, in request order
        redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[3]), KEYS[i])
    else
        -- gone (expired on the server, or never written): it stops taking a place
        redis.call('ZREM', KEYS[1], KEYS[i])
        redis.call('ZREM', KEYS[2], KEYS[i])
    end
end
return found
