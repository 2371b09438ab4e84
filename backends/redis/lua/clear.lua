-- clear: every tracked entry, then the bookkeeping itself, in batches of 1000.
while true do
    local batch = redis.call('ZRANGE', KEYS[1], 0, 999)
    if #batch == 0 then
        break
    end
    for _, key in ipairs(batch) do
        redis.call('UNLINK', key)
    end
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #batch - 1)
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3])
return 1
