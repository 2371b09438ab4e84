-- compare_and_delete on a plain namespace: KEYS[1] the entry; ARGV[1] expected. Returns 1
-- if it deleted the entry, else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('UNLINK', KEYS[1])
return 1
