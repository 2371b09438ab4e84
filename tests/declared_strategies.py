"""Strategies that differ from ours by design, each declaring so (cachespec.spec.promises),
and a backend without compare_and_set for them to run over: what a third party brings to
``cachespec check BACKEND --strategy module:Class`` (docs/design.md, "Strategy promises")."""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from plain_backend import PlainBackend

from cachespec.backends import NO_VALUE, Backend, BackendUnavailable, Unsupported
from cachespec.backends.cache import Cache
from cachespec.backends.contract import check_key, check_keys
from cachespec.conformance import ManualClock
from cachespec.conformance.staleness import Strategies
from cachespec.spec import Guarantees
from cachespec.spec.promises import Promises


class WithoutCompare(PlainBackend):
    """The plain backend, declaring no compare_and_set: its compare calls are refused."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock, capacity=None)
        self.guarantees = Guarantees(thread_safe=True)

    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        raise Unsupported("compare_and_set is not offered")

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        raise Unsupported("compare_and_delete is not offered")


def without_compare(clock: ManualClock) -> WithoutCompare:
    return WithoutCompare(clock)


class WithoutAdd(PlainBackend):
    """The plain backend, declaring no add: ``add`` raises Unsupported and writes nothing."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.guarantees = dataclasses.replace(self.guarantees, add=False)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        raise Unsupported("this backend declares add=False")


def without_add(clock: ManualClock) -> WithoutAdd:
    return WithoutAdd(clock)


class AddsDespiteDeclaring(WithoutAdd):
    """Declares add=False, and its add still writes: a caller told it is missing may have
    built on the refusal (the mutant of ops.add_refused, tests/mutants.py)."""

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return PlainBackend.add(self, key, value, ttl)


def adds_despite_declaring(clock: ManualClock) -> AddsDespiteDeclaring:
    return AddsDespiteDeclaring(clock)


class PlainCacheAside(Strategies):
    """A third party's cache-aside: get, and on a miss compute and set. It needs nothing
    but get and set, and promises no single-flight and no leases; over any backend its
    staleness and efficacy are checked (and the stale-set race shows where it races)."""

    name = "plain-cache-aside"
    promises = Promises(
        needs_compare_and_set=False,
        needs_add=False,
        single_flight=False,
        leases=False,
        early_refresh=False,
    )

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        found = cache.get(key)
        if found is not NO_VALUE:
            return found
        value = compute()
        cache.set(key, value, ttl)
        return value


def plain_read(cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
    """The same read as a function, as a decorator library would hand it over."""
    return PlainCacheAside().read(cache, key, compute, ttl)


plain_read.promises = Promises(  # type: ignore[attr-defined]
    needs_compare_and_set=False, single_flight=False
)


def badly_declared_read(
    cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None
) -> Any:
    return plain_read(cache, key, compute, ttl)


badly_declared_read.promises = {"single_flight": False}  # type: ignore[attr-defined]


class BadlyDeclared(PlainCacheAside):
    promises = "no single-flight"  # type: ignore[assignment]


# ------------------------------------------------------------- stale-while-revalidate
REGENERATION_LEASE = 30.0


class StaleWhileRevalidate(Strategies):
    """Serves an expired value while one caller regenerates it: entries carry their own
    expiry and live in the backend without one; the caller that claims the regeneration
    (an ``add`` of a claim key) computes and returns the new value, the others get the old
    one at once. Staler than the TTL by design, and declared so."""

    name = "stale-while-revalidate"
    promises = Promises(
        stale_while_revalidate=True, needs_compare_and_set=False, leases=False, early_refresh=False
    )

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        found = cache.get(key)
        if found is NO_VALUE:
            return self._fill(cache, key, compute, ttl)
        value, until = found
        if until is None or cache._clock() < until:
            return value
        if not cache.backend.add(key + ":regenerating", b"1", REGENERATION_LEASE):
            return value  # another caller regenerates: the old value, at once
        try:
            return self.regenerate(cache, key, compute, ttl, value)
        finally:
            cache.backend.delete(key + ":regenerating")

    def regenerate(
        self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None, old: Any
    ) -> Any:
        return self._fill(cache, key, compute, ttl)

    def _fill(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        value = compute()
        until = None if ttl is None else cache._clock() + ttl
        cache.set(key, (value, until), None)
        return value


class UndeclaredStaleWhileRevalidate(StaleWhileRevalidate):
    """The same design with no declaration: held to the plain TTL bound, which it breaks."""

    name = "undeclared-stale-while-revalidate"
    promises = Promises(needs_compare_and_set=False, leases=False, early_refresh=False)


# ------------------------------------------------------------------------ fail closed
class FailsClosed(Strategies):
    """Our guarded read, except that a read whose cache failed raises instead of falling
    through to the source (a cache that must not be bypassed: a rate limiter's, say)."""

    name = "fails-closed"
    promises = Promises(fail_closed=True)

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        before = cache.stats.errors
        value = cache.get_or_compute(key, compute, ttl)
        if cache.stats.errors != before:
            raise BackendUnavailable(f"the cache failed while reading {key!r}: failing closed")
        return value


# ------------------------------------------------------------------- a store-wide clear
class _Store:
    """One dict per clock: every namespace a factory opens on that clock shares it."""

    stores: ClassVar[weakref.WeakKeyDictionary[object, PlainBackend]] = weakref.WeakKeyDictionary()


class PrefixNamespace(Backend):
    """A namespace as a key prefix over one shared backend, whose ``clear`` empties the
    whole store, as documented (``Guarantees(clear_store_wide=True)``)."""

    def __init__(self, store: PlainBackend, namespace: str) -> None:
        self._store = store
        self._prefix = namespace + ":"
        self.guarantees = Guarantees(thread_safe=True, clear_store_wide=True)

    def get(self, key: str) -> Any:
        return self._store.get(self._prefix + check_key(key))

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._store.set(self._prefix + check_key(key), value, ttl)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return self._store.add(self._prefix + check_key(key), value, ttl)

    def delete(self, key: str) -> None:
        self._store.delete(self._prefix + check_key(key))

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = check_keys(keys)
        found = self._store.get_many([self._prefix + key for key in wanted])
        return {key[len(self._prefix) :]: value for key, value in found.items()}

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        self._store.set_many({self._prefix + check_key(k): v for k, v in items.items()}, ttl)

    def delete_many(self, keys: Iterable[str]) -> None:
        self._store.delete_many([self._prefix + key for key in check_keys(keys)])

    def clear(self) -> None:
        self._store.clear()  # the whole store: documented, and declared


class OwnClearOnly(PrefixNamespace):
    """Declares a store-wide clear, and empties only its own namespace."""

    def clear(self) -> None:
        with self._store.lock:
            for stored in [k for k in self._store.entries if k.startswith(self._prefix)]:
                self._store.forget(stored)


def _shared(clock: ManualClock) -> PlainBackend:
    store = _Store.stores.get(clock)
    if store is None:
        store = _Store.stores[clock] = PlainBackend(clock, capacity=None)
    return store


def prefix_namespace(clock: ManualClock, namespace: str = "default") -> PrefixNamespace:
    return PrefixNamespace(_shared(clock), namespace)


def own_clear_only(clock: ManualClock, namespace: str = "default") -> OwnClearOnly:
    return OwnClearOnly(_shared(clock), namespace)
