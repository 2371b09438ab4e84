-- compare_and_set on a plain namespace: KEYS[1] the entry; ARGV[1] expected, ARGV[2] the
-- new value, ARGV[3] TTL in ms ('' for none). Returns 1 if it replaced the value, else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
if ARGV[3] == '' then
    redis.call('SET', KEYS[1], ARGV[2])  -- a plain SET drops the old TTL, as set does
else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
