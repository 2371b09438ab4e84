"""Deliberately broken strategies: each breaks one rule of keeping a cache in step with its
source, and the staleness (or fault) property named beside it must catch it.

Each is a :class:`~cachespec.conformance.staleness.Strategies` with one method replaced, run
on the memory backend (``run_suite(..., strategy=Mutant())``).
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable
from typing import Any

from cachespec.backends import NO_VALUE
from cachespec.backends.cache import Cache, frame_value
from cachespec.backends.serializers import DecodeError, Serializer
from cachespec.backends.strategies import WriteThrough
from cachespec.conformance.staleness import TTL, NaiveCacheAside, Source, Strategies


class DeletesBeforeWrite(Strategies):
    """Invalidates first, then writes the source: a read in between refills the old value."""

    def write_and_invalidate(self, cache: Cache, source: Source, key: str, value: Any) -> None:
        cache.invalidate(key)
        source.write(key, value)


class ForgetsToInvalidate(Strategies):
    """Writes the source and invalidates the wrong key (a typo in a key format)."""

    def write_and_invalidate(self, cache: Cache, source: Source, key: str, value: Any) -> None:
        source.write(key, value)
        cache.invalidate(key + ":v1")


class CacheBeforeSource(Strategies):
    """Write-through that updates the cache before the source has committed."""

    def write_through(self, cache: Cache, source: Source, key: str, value: Any) -> None:
        cache.set(key, value)
        source.write(key, value)


class NoSafetyNet(Strategies):
    """An event subscriber with no safety-net TTL: a lost event is stale forever. (Ours
    refuses to run without one; this one deletes keys without asking.)"""

    def event_safety_ttl(self) -> float | None:
        return None

    def handle_event(self, cache: Cache, key: str) -> None:
        cache.invalidate(key)


class UnsignedPickle(Serializer):
    def dumps(self, value: object) -> bytes:
        return b"\x00" * 32 + pickle.dumps(value)

    def loads(self, data: bytes) -> object:
        try:
            return pickle.loads(data[32:])
        except Exception as exc:
            raise DecodeError(str(exc)) from None


class AcceptsUnsignedPickle(Strategies):
    """A decoder that unpickles whatever it is given, signed or not."""

    def serializer(self) -> Serializer:
        return UnsignedPickle()


class NoFallThrough(Strategies):
    """Cache-aside that lets a cache failure reach its caller instead of the source."""

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        found = cache.get(key)
        return found if found is not NO_VALUE else cache.get_or_compute(key, compute, ttl)


class SwallowsCacheFailure(Strategies):
    """Write-through that ignores a failed cache write: the old value stays cached."""

    def write_through(self, cache: Cache, source: Source, key: str, value: Any) -> None:
        version = source.write(key, value)
        through = WriteThrough(cache, source.write, safety_ttl=TTL)
        with contextlib.suppress(Exception):
            through._install(key, version, cache.serializer.dumps(value))


class CachesSourceErrors(Strategies):
    """Caches a placeholder when the source fails, so later reads get a value it never held."""

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        found = cache.get(key)
        if found is not NO_VALUE:
            return found
        try:
            value = compute()
        except ConnectionError:
            value = "unavailable"
        cache.backend.set(key, frame_value(cache.serializer.dumps(value)), ttl)
        return value


class FillsWithoutTTL(Strategies):
    """Cache-aside that fills with no TTL: under TTL only, a superseded value lives forever."""

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        return cache.get_or_compute(key, compute, None)


# name -> (strategies, the property that must fail, a pattern its reason must match)
STRATEGY_MUTANTS: dict[str, tuple[type[Strategies], str, str]] = {
    "naive_cache_aside": (NaiveCacheAside, "staleness.cache_aside", r"stale-set race"),
    "deletes_before_write": (DeletesBeforeWrite, "staleness.cache_aside", r"stale-set race"),
    "forgets_to_invalidate": (ForgetsToInvalidate, "staleness.invalidation", r"after the inval"),
    "cache_before_source": (
        CacheBeforeSource,
        "staleness.write_through",
        r"source never held it|stale-set race",
    ),
    "no_safety_net": (NoSafetyNet, "staleness.events", r"s of staleness"),
    "accepts_unsigned_pickle": (
        AcceptsUnsignedPickle,
        "faults.forged_payload",
        r"unpickled a payload nobody signed",
    ),
    "no_fall_through": (NoFallThrough, "faults.cache_aside", r"must fall through to the source"),
    "swallows_cache_failure": (
        SwallowsCacheFailure,
        "faults.write_through",
        r"stale-set race|s of staleness",
    ),
    "caches_source_errors": (CachesSourceErrors, "faults.source", r"source never held it"),
    "fills_without_ttl": (FillsWithoutTTL, "staleness.ttl", r"s of staleness"),
}
