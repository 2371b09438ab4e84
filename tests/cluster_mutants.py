"""Deliberately broken Redis Cluster adapters, each rejected by a ``faults.cluster_*`` property.

Each is the real cluster adapter with a method or two replaced by what a naive client does
when a master fails. ``CLUSTER_FAULT_MUTANTS`` has the entries' shape of
``adapter_mutants.ADAPTER_MUTANTS`` (which takes them in), so
``test_server_conformance.py::test_the_suite_rejects_the_broken_adapter`` runs each on the
harness's cluster, and ``test_mutants.py::test_every_property_has_a_mutant`` counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from cachespec.backends import NO_VALUE, Backend, BackendUnavailable, CacheError, NoValue
from cachespec.backends.redis import RedisClusterBackend


class RetriesForeverClusterRedis(RedisClusterBackend):
    """Retries a read until a node answers: "a failover takes a few seconds, just wait". A
    caller then waits for the failover, however long, not for its timeout."""

    __slots__ = ()

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(keys)
        while True:
            try:
                return super().get_many(wanted)
            except BackendUnavailable:
                continue


class NeverRecoversClusterRedis(RedisClusterBackend):
    """A circuit breaker that never closes: once a read failed, every read raises at once."""

    __slots__ = ()
    _tripped: ClassVar[set[int]] = set()  # by id(): the adapter's slots leave no room

    def get(self, key: str) -> bytes | NoValue:
        if id(self) in self._tripped:
            raise BackendUnavailable("get: the circuit is open")
        try:
            return super().get(key)
        except BackendUnavailable:
            self._tripped.add(id(self))
            raise


class StaleOnErrorClusterRedis(RedisClusterBackend):
    """Serve-stale-on-error keyed by the connection, not the key: when a read fails (the
    master is down, or its slots MOVED), it answers with the last value a read returned,
    which was most likely another key's."""

    __slots__ = ()
    _last: ClassVar[dict[int, bytes]] = {}

    def get(self, key: str) -> bytes | NoValue:
        try:
            value = super().get(key)
        except CacheError:
            if id(self) in self._last:
                return self._last[id(self)]
            raise
        if isinstance(value, bytes):
            self._last[id(self)] = value
        return value


class ForgetsAfterFailureClusterRedis(RedisClusterBackend):
    """Once a call failed, treats the cluster as "resharded" and misses every read for
    good: safe (a miss is never a wrong value), and no longer a cache."""

    __slots__ = ()
    _failed: ClassVar[set[int]] = set()

    def get(self, key: str) -> bytes | NoValue:
        if id(self) in self._failed:
            return NO_VALUE
        try:
            return super().get(key)
        except CacheError:
            self._failed.add(id(self))
            raise


class NearCacheClusterRedis(RedisClusterBackend):
    """A client-side copy of every value read or written, dropped only when the server took
    a delete of its key ("the delete failed, so nothing changed"). A read that finds a copy
    is served from it. An invalidation the failover refused then leaves a copy that no TTL
    ends."""

    __slots__ = ()
    _copies: ClassVar[dict[int, dict[str, bytes]]] = {}

    @property
    def _local(self) -> dict[str, bytes]:
        return self._copies.setdefault(id(self), {})

    def get(self, key: str) -> bytes | NoValue:
        if key in self._local:
            return self._local[key]
        value = super().get(key)
        if isinstance(value, bytes):
            self._local[key] = value
        return value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        super().set(key, value, ttl)
        self._local[key] = value

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        added = super().add(key, value, ttl)
        if added:
            self._local[key] = value
        return added

    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        landed = super().compare_and_set(key, expected, value, ttl)
        if landed:
            self._local[key] = value
        return landed

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        gone = super().compare_and_delete(key, expected)
        if gone:
            self._local.pop(key, None)
        return gone

    def delete(self, key: str) -> None:
        super().delete(key)
        self._local.pop(key, None)


def _as(cls: type[Backend]) -> Callable[[Backend], None]:
    def rebrand(backend: Backend) -> None:
        backend.__class__ = cls

    return rebrand


# name -> (server, adapter options, break the built backend, property, reason pattern)
CLUSTER_FAULT_MUTANTS: dict[
    str, tuple[str, dict[str, str], Callable[[Backend], None], str, str]
] = {
    "redis_cluster_retries_forever": (
        "redis-cluster",
        {},
        _as(RetriesForeverClusterRedis),
        "faults.cluster_calls",
        r"did not return within .* it hangs",
    ),
    "redis_cluster_never_recovers": (
        "redis-cluster",
        {},
        _as(NeverRecoversClusterRedis),
        "faults.cluster_recovers",
        r"raised 3 times after the server was back",
    ),
    "redis_cluster_stale_on_error": (
        "redis-cluster",
        {},
        _as(StaleOnErrorClusterRedis),
        "faults.cluster_keys",
        r"never written under",
    ),
    "redis_cluster_forgets_after_failure": (
        "redis-cluster",
        {},
        _as(ForgetsAfterFailureClusterRedis),
        "faults.cluster_keys",
        r"returned a miss right after .* was acknowledged",
    ),
    "redis_cluster_near_cache": (
        "redis-cluster",
        {},
        _as(NearCacheClusterRedis),
        "faults.cluster_bounds",
        r"the fill TTL has passed",
    ),
}
