-- delete / delete_many: KEYS[4..] the entries. Idempotent.
for i = 4, #KEYS do
    redis.call('UNLINK', KEYS[i])
    redis.call('ZREM', KEYS[1], KEYS[i])
    redis.call('ZREM', KEYS[2], KEYS[i])
end
return 1
