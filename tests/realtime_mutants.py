"""Redis and memcached adapters broken in ways only time shows, for the real-time checks.

Each is the real adapter with its TTL handling replaced by what a naive adapter does.
``REAL_TIME_MUTANTS`` maps a name to ``(server kind, the adapter class, the property that
must fail in real time)``; tests/test_realtime_servers.py runs each against a harness-started
server treated as a user's (no harness clock), as ``cachespec check redis://host`` would.
"""

from __future__ import annotations

from collections.abc import Mapping

from adapter_mutants import RawLongTTLMemcached, TruncatedTTLMemcached

from cachespec.backends import Backend
from cachespec.backends.memcached import MemcachedBackend
from cachespec.backends.redis import RedisBackend
from cachespec.backends.redis.layout import encode, glob_escape


class IgnoredTTLRedis(RedisBackend):
    """Drops every TTL: a plain ``SET``, so entries never expire."""

    __slots__ = ()

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        super().set(key, value, None)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return super().add(key, value, None)

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        super().set_many(items, None)


# What EarlyTTLRedis takes off each TTL: well past the real-time slack (10 ms), well under
# the shortest real-time TTL (50 ms).
EARLY_BY = 0.03


def _early(ttl: float | None) -> float | None:
    return None if ttl is None else max(0.001, ttl - EARLY_BY)


class EarlyTTLRedis(RedisBackend):
    """Counts each TTL 30 ms short (a client that subtracts a round trip it once measured):
    entries die before written_at + ttl."""

    __slots__ = ()

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        super().set(key, value, _early(ttl))

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return super().add(key, value, _early(ttl))

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        super().set_many(items, _early(ttl))


class KeepTTLRedis(RedisBackend):
    """An overwrite of a key that has a TTL keeps it (``SET ... KEEPTTL``, "update the value
    in place"): the new TTL is ignored, and the entry dies when the old one said."""

    __slots__ = ()

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        name = self._prefix + encode(key)
        if ttl is not None and self._client.pttl(name) > 0:
            self._client.set(name, value, keepttl=True)
            return
        super().set(key, value, ttl)

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        for key, value in items.items():
            self.set(key, value, ttl)


class KeepTTLOnNoneRedis(RedisBackend):
    """``set(ttl=None)`` over a key with a TTL keeps that TTL (``SET ... KEEPTTL``: "no TTL
    given, leave the expiry alone"): an entry meant never to expire dies when the old TTL
    said. Shown on a server you run only with the guest's cap lifted (ttl.never)."""

    __slots__ = ()

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if ttl is None:
            self._client.set(self._prefix + encode(key), value, keepttl=True)
            return
        super().set(key, value, ttl)


class AddIgnoresTTLRedis(RedisBackend):
    """``add`` stores without its TTL (``SET NX`` alone): the entry it adds never expires,
    and a later ``add`` of the key is refused where it should win."""

    __slots__ = ()

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return super().add(key, value, None)


class IgnoredTTLMemcached(MemcachedBackend):
    """Sends exptime 0 whatever the TTL: entries never expire."""

    __slots__ = ()

    def _exptime(self, seconds: float | None) -> int:
        return 0


# Below this many milliseconds of life left, ClearSkipsExpiringRedis leaves a key alone.
SOON_MS = 1000


class ClearSkipsExpiringRedis(RedisBackend):
    """``clear`` leaves the keys due to expire within a second ("they go on their own"):
    until then a read after the clear still finds them. Only time tells them apart, and a
    guest that deleted its keys before each clear would hide it (conformance/tenant.py)."""

    __slots__ = ()

    def clear(self) -> None:
        pattern = glob_escape(self._base) + b"*"
        for names in self._scan(pattern):
            lasting = [name for name in names if not 0 < self._client.pttl(name) < SOON_MS]
            if lasting:
                self._unlink(lasting)


class CASIgnoresTTLRedis(RedisBackend):
    """``compare_and_set`` writes its value without the TTL: what it writes never expires."""

    __slots__ = ()

    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        return super().compare_and_set(key, expected, value, None)


class SetManyIgnoresTTLRedis(RedisBackend):
    """``set_many`` writes with ``MSET``, which takes no TTL: the entries it writes never
    expire, and one it overwrites loses its TTL."""

    __slots__ = ()

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        super().set_many(items, None)


class NoopClearMemcached(MemcachedBackend):
    """``clear`` sent with noreply to a server that never applied it: the generation stays,
    and every entry stays reachable. A guest that deleted its keys before each clear would
    hide it (conformance/tenant.py)."""

    __slots__ = ()

    def clear(self) -> None:
        pass


REAL_TIME_MUTANTS: dict[str, tuple[str, type[Backend], str]] = {
    "redis_ignored_ttl": ("redis", IgnoredTTLRedis, "ttl.expires"),
    "redis_early_ttl": ("redis", EarlyTTLRedis, "ttl.lives"),
    "redis_keep_ttl": ("redis", KeepTTLRedis, "ttl.overwrite"),
    "redis_add_ignores_ttl": ("redis", AddIgnoresTTLRedis, "ops.add"),
    "memcached_ignored_ttl": ("memcached", IgnoredTTLMemcached, "ttl.expires"),
    "memcached_truncated_ttl": ("memcached", TruncatedTTLMemcached, "ttl.lives"),
    "redis_clear_skips_expiring": ("redis", ClearSkipsExpiringRedis, "ops.clear"),
    "redis_cas_ignores_ttl": ("redis", CASIgnoresTTLRedis, "ops.compare_and_set"),
    "redis_set_many_ignores_ttl": ("redis", SetManyIgnoresTTLRedis, "ops.mixed"),
    "memcached_noop_clear": ("memcached", NoopClearMemcached, "ops.clear"),
    # The guest's cap lifted (conformance/guest_reaper.py): what it hid shows in real time.
    "redis_keep_ttl_on_none": ("redis", KeepTTLOnNoneRedis, "ttl.never"),
    "memcached_raw_long_ttl": ("memcached", RawLongTTLMemcached, "ttl.long"),
}
