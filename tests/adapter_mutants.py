"""Deliberately broken Redis and memcached adapters, each checked on a harness server.

Each mutant is the real adapter with one method replaced by what a naive adapter does.
``ADAPTER_MUTANTS`` maps a name to ``(server kind, adapter options, how to break a built
backend, the property that must fail, a pattern its reason must match)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from cachespec.backends import Backend, open_backend
from cachespec.backends.memcached import MemcachedBackend, relative_exptime
from cachespec.backends.redis import BoundedRedisBackend, RedisBackend
from cachespec.conformance.target import ServerTarget


class RawLongTTLMemcached(MemcachedBackend):
    """Passes a TTL over 30 days through as a relative exptime: memcached reads it as a Unix
    time in 1970, and the entry is gone at once."""

    def _exptime(self, seconds: float | None) -> int:
        return 0 if seconds is None else relative_exptime(seconds)


class TruncatedTTLMemcached(MemcachedBackend):
    """Sends ``int(ttl)`` (at least 1) as the exptime: no margin for memcached's whole-second
    clock and the fraction dropped, so entries die before their TTL."""

    def _exptime(self, seconds: float | None) -> int:
        return 0 if seconds is None else max(1, int(seconds))


def unchecked_sizes(backend: Backend) -> None:
    """Drops the client-side size check: an oversize value reaches the server, which refuses
    it and deletes the key's old value (docs/facts.md)."""
    backend._max_value_size = 1 << 30  # type: ignore[attr-defined]


def _whole_seconds(ttl: float | None) -> float | None:
    return float(math.floor(ttl)) if ttl is not None and ttl >= 1 else ttl


class WholeSecondTTLRedis(RedisBackend):
    """Truncates TTLs of a second or more to whole seconds (``EX int(ttl)``), on every write."""

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        super().set(key, value, _whole_seconds(ttl))

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return super().add(key, value, _whole_seconds(ttl))

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        super().set_many(items, _whole_seconds(ttl))


class FlushdbRedis(RedisBackend):
    """Clears with FLUSHDB: every tenant's keys go, not just this namespace's."""

    def clear(self) -> None:
        self._client.flushdb()


_READ_WITHOUT_RECENCY = """
local found = {}
for i = 4, #KEYS do found[i - 3] = redis.call('GET', KEYS[i]) end
return found
"""


def reads_without_recency(backend: Backend) -> None:
    """The bounded namespace's read script without its recency bump: hits are not uses."""
    assert isinstance(backend, BoundedRedisBackend)
    backend._read_script = backend._client.register_script(_READ_WITHOUT_RECENCY)


def as_class(cls: type[Backend]) -> Callable[[Backend], None]:
    def rebrand(backend: Backend) -> None:
        backend.__class__ = cls

    return rebrand


# name -> (server, adapter options, break the built backend, property, reason pattern)
ADAPTER_MUTANTS: dict[str, tuple[str, dict[str, str], Callable[[Backend], None], str, str]] = {
    "memcached_raw_long_ttl": (
        "memcached",
        {},
        as_class(RawLongTTLMemcached),
        "ttl.long",
        r"returned a miss .* live until",
    ),
    "memcached_truncated_ttl": (
        "memcached",
        {},
        as_class(TruncatedTTLMemcached),
        "ttl.lives",
        r"miss .* live until|returned True",
    ),
    "memcached_unchecked_sizes": (
        "memcached",
        {},
        unchecked_sizes,
        "values.size_limit",
        # memcached drops the old entry on a refused write: a miss, or a later add let in.
        r"accepted it|returned a miss .* allowed only|returned True; the model allowed only False",
    ),
    "redis_whole_second_ttl": (
        "redis",
        {},
        as_class(WholeSecondTTLRedis),
        "ttl.lives",
        r"returned a miss .* live until",
    ),
    "redis_flushdb_clear": (
        "redis",
        {},
        as_class(FlushdbRedis),
        "ops.clear_namespace",
        r"miss .* allowed only b",
    ),
    "redis_lru_reads_without_recency": (
        "redis",
        {"capacity": "4"},
        reads_without_recency,
        "lru.hit_refreshes",
        r"evicted at|allowed only b",
    ),
}


def mutant_target(name: str) -> ServerTarget:
    kind, options, spoil, _, _ = ADAPTER_MUTANTS[name]

    def opener(url: str, namespace: str) -> Backend:
        backend = open_backend(url, namespace=namespace)
        spoil(backend)
        return backend

    return ServerTarget(f"{kind} ({name})", kind, dict(options), opener=opener)
