"""Deliberately broken strategies: each breaks one rule of keeping a cache in step with its
source, and the staleness (or fault) property named beside it must catch it.

Each is a :class:`~cachespec.conformance.staleness.Strategies` with one method replaced, run
on the memory backend (``run_suite(..., strategy=Mutant())``).
"""

from __future__ import annotations

import contextlib
import math
import pickle
import threading
import weakref
from collections.abc import Callable
from typing import Any

from declared_strategies import StaleWhileRevalidate

from cachespec.backends import NO_VALUE, Backend, CacheError
from cachespec.backends.cache import Cache, is_lease, refresh_meta
from cachespec.backends.entries import Refreshing, parse
from cachespec.backends.serializers import DecodeError, Serializer
from cachespec.backends.strategies import WriteThrough
from cachespec.conformance.decorated import Decorated
from cachespec.conformance.staleness import NaiveCacheAside, Source, Strategies
from cachespec.conformance.wrapped import Wrapped
from cachespec.spec.promises import Promises


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

    def event_safety_ttl(self, ttl: float) -> float | None:
        return None

    def handle_event(self, cache: Cache, key: str) -> None:
        cache.invalidate(key)


class EventsMissTheKey(Strategies):
    """An event subscriber that takes out the key under another scheme than the readers'
    (``item:price`` for ``price``): every event is handled, and none removes anything. Its
    safety net still ends the old value, so only the bound of 0 after an event shows it,
    which needs no time to pass (docs/design.md, "A still clock")."""

    def handle_event(self, cache: Cache, key: str) -> None:
        cache.invalidate(f"item:{key}")


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
        through = WriteThrough(cache, source.write, source_version=source.version)
        with contextlib.suppress(Exception):
            through._install(key, version, cache.serializer.dumps(value))


class CachesSourceErrors(Strategies):
    """Caches a placeholder when the source fails, so later reads get a value it never held.
    (Its fills are guarded: the one defect is the placeholder.)"""

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        def or_placeholder() -> Any:
            try:
                return compute()
            except ConnectionError:
                return "unavailable"

        return cache.get_or_compute(key, or_placeholder, ttl)


class FillsWithoutTTL(Strategies):
    """Cache-aside that fills with no TTL: under TTL only, a superseded value lives forever."""

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        return cache.get_or_compute(key, compute, None)


class FillsTTLTooLong(Strategies):
    """Cache-aside whose fills outlive the TTL it was given by two seconds: the bound a
    user chose is quietly off."""

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        return cache.get_or_compute(key, compute, None if ttl is None else ttl + 2.0)


# ------------------------------------------------- safe but useless: the efficacy twins
class InvalidatingWriteThrough(Strategies):
    """A "write-through" that writes the source and then only invalidates: never stale,
    and the read after every write is a miss (what ours was until issue #14)."""

    def write_through(self, cache: Cache, source: Source, key: str, value: Any) -> None:
        source.write(key, value)
        cache.invalidate(key)


class InstallsWithoutAsking(Strategies):
    """Write-through that installs into an absent key without asking the source which
    version it holds: a slow writer brings its old version back once a newer copy expired."""

    def write_through(self, cache: Cache, source: Source, key: str, value: Any) -> None:
        class Blind(WriteThrough[str]):
            def _install_absent(self, key: str, item: str, version: int, data: bytes) -> bool:
                return self.cache.backend.add(key, data, self.ttl)

        Blind(cache, source.write, source_version=source.version).write(key, value)


class SetsAfterSource(Strategies):
    """The textbook write-through: write the source, then set the cache, no versions. Two
    writers racing leave whichever set came last, which may be the older value."""

    def write_through(self, cache: Cache, source: Source, key: str, value: Any) -> None:
        source.write(key, value)
        cache.set(key, value)


class NeverFills(Strategies):
    """Cache-aside that reads the cache but never fills it: never stale, never a hit."""

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        found = cache.get(key)
        return found if found is not NO_VALUE else compute()


class BypassesAfterEvents(Strategies):
    """An event subscriber that, once a key changed, has it read from the source ever
    after: never stale after an event, and never cached again."""

    def __init__(self) -> None:
        self._bypassed: weakref.WeakKeyDictionary[Cache, set[str]] = weakref.WeakKeyDictionary()

    def handle_event(self, cache: Cache, key: str) -> None:
        cache.invalidate(key)
        self._bypassed.setdefault(cache, set()).add(key)

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        if key in self._bypassed.get(cache, set()):
            return compute()
        return cache.get_or_compute(key, compute, ttl)


# ----------------------------------------------------------------- single-flight, leases
class _PerCache:
    """Per-key tables kept per cache object, as the seed keeps them per cache instance: a
    process's table dies with its process (the harness makes a new cache for each)."""

    def __init__(self) -> None:
        self._tables: weakref.WeakKeyDictionary[Cache, dict[str, threading.Event]] = (
            weakref.WeakKeyDictionary()
        )
        self._meta = threading.Lock()

    def table(self, cache: Cache) -> dict[str, threading.Event]:
        with self._meta:
            return self._tables.setdefault(cache, {})


class PerKeyEvent(Strategies):
    """The seed document's per-key mutex, over our cache: the first caller to miss registers
    an event and computes; later ones wait on that event, then read the cache. As written
    there, only the leader ever assigns its ``leader`` flag, so every waiter raises
    UnboundLocalError. Waits go through ``cache.flight_wait`` so the harness schedules them.
    """

    fixed_flag = False

    def __init__(self) -> None:
        self._per_cache = _PerCache()
        self._meta = threading.Lock()

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        found = cache.get(key)
        if found is not NO_VALUE:
            return found
        events = self._per_cache.table(cache)
        if self.fixed_flag:
            leader = False
        with self._meta:
            event = events.get(key)
            if event is None:
                event = events[key] = threading.Event()
                leader = True
        if leader:
            value = compute()  # if this raises, the event stays registered and unset
            cache.set(key, value, ttl)
            with self._meta:
                del events[key]
            event.set()
            return value
        cache.flight_wait(event, None)
        return cache.get(key)


class PerKeyEventFlagFixed(PerKeyEvent):
    """The same with the flag fixed: now a compute that raises leaves its event registered
    and never set, and every later caller of the key waits forever."""

    fixed_flag = True


class KeyLockedOnError(Strategies):
    """A per-key lock, released only on success: after a failed compute the key is locked."""

    def __init__(self) -> None:
        self._per_cache = _PerCache()  # key -> an event set when the key's lock is released
        self._meta = threading.Lock()

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        held = self._per_cache.table(cache)
        while True:
            with self._meta:
                released = held.get(key)
                if released is None:
                    held[key] = threading.Event()
                    break
            cache.flight_wait(released, None)
        found = cache.get(key)
        if found is NO_VALUE:
            found = compute()  # raises: the lock below is never released
            cache.set(key, found, ttl)
        with self._meta:
            held.pop(key).set()
        return found


class ReleasesAnyLease(Strategies):
    """A failed fill deletes the key, whoever's lease is in it by then (no owner check)."""

    def make_cache(self, backend: Backend, **options: Any) -> Cache:
        class Careless(Cache):
            def _release_lease(self, key: str, lease: bytes) -> None:
                self.backend.delete(key)

        return Careless(backend, serializer=self.serializer(), **options)


class _EternalLeases(Wrapped):
    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return super().add(key, value, None if is_lease(value) else ttl)


class LeaseWithoutExpiry(Strategies):
    """Leases written with no TTL: a caller that dies holding one blocks the key forever."""

    def make_cache(self, backend: Backend, **options: Any) -> Cache:
        return super().make_cache(_EternalLeases(backend), **options)


class XFetchSignFlipped(Strategies):
    """XFetch with the sign of the logarithm flipped: it never refreshes early."""

    def make_cache(self, backend: Backend, **options: Any) -> Cache:
        class Flipped(Cache):
            def _refresh_now(self, raw: bytes) -> bool:
                meta = refresh_meta(raw)
                if meta is None:
                    return False
                expiry, delta = meta
                return self._clock() + delta * self.beta * math.log(self._random()) >= expiry

        return Flipped(backend, serializer=self.serializer(), **options)


# ---------------------------------------- early refresh: safe but useless, or wasteful
class NeverRefreshesEarly(Strategies):
    """Early refresh configured, and never done: every hit is served until the entry
    expires, and the next read is a miss (never stale, and no better than no refresh)."""

    def make_cache(self, backend: Backend, **options: Any) -> Cache:
        class Never(Cache):
            def _refresh_now(self, raw: bytes) -> bool:
                return False

        return Never(backend, serializer=self.serializer(), **options)


class RefreshesEveryHit(Strategies):
    """Every hit on a refreshable entry recomputes it: always fresh, and a refresh storm
    (one compute per read instead of one per TTL)."""

    def make_cache(self, backend: Backend, **options: Any) -> Cache:
        class Storm(Cache):
            def _refresh_now(self, raw: bytes) -> bool:
                return refresh_meta(raw) is not None

        return Storm(backend, serializer=self.serializer(), **options)


class WaitsForRefresher(Strategies):
    """A caller that finds the key being refreshed polls until the refresh lands, instead
    of taking the old value: never stale, and every reader pays the compute's latency."""

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        while True:
            raw = cache.backend.get(key)
            if raw is NO_VALUE or not isinstance(parse(raw), Refreshing):
                return cache.get_or_compute(key, compute, ttl)
            cache._sleep(cache.lease_poll)


class EachRefreshes(Strategies):
    """No claim on the entry and no flight: every caller that finds the key due refreshes
    it itself (a herd on every refresh)."""

    def make_cache(self, backend: Backend, **options: Any) -> Cache:
        class Unclaimed(Cache):
            def _refresh(
                self, key: str, old: bytes, compute: Callable[[], Any], seconds: float | None
            ) -> Any:
                value, data = self._computed_entry(compute, seconds)
                if data is not None:
                    self.backend.compare_and_set(key, old, data, seconds)
                return value

        return Unclaimed(backend, serializer=self.serializer(), **options, single_flight=False)


class ProcessLocalFlights(Strategies):
    """Single-flight inside each process only: a caller that finds another process's
    lease computes too instead of waiting for its value (``wait_for_lease=False``), so a
    herd across N processes computes N times. Every in-process property holds."""

    def make_cache(self, backend: Backend, **options: Any) -> Cache:
        return super().make_cache(backend, **options, wait_for_lease=False)


class StaleIfError(Strategies):
    """Serves the value it last read when the cache fails ("stale-if-error"), instead of
    falling through to the source: through an outage, a key written and invalidated before
    it reads as its old value, however long ago that was superseded."""

    def __init__(self) -> None:
        self._last: dict[str, Any] = {}

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        try:
            cache.get(key)  # raises when the cache is down
        except CacheError:
            if key in self._last:
                return self._last[key]
            return compute()
        self._last[key] = value = cache.get_or_compute(key, compute, ttl)
        return value


class ReplaysFailedWrites(Strategies):
    """A write-through that queues the cache update it could not make and returns, then
    replays the queue, as plain sets, after the next write that reaches the cache: the
    replayed old value lands over the newer one that write installed."""

    def __init__(self) -> None:
        self._queue: list[tuple[str, Any]] = []

    def write_through(self, cache: Cache, source: Source, key: str, value: Any) -> None:
        try:
            super().write_through(cache, source, key, value)
        except CacheError:
            self._queue.append((key, value))  # "retried once the cache is back"
            return
        while self._queue:
            old_key, old_value = self._queue.pop(0)
            cache.set(old_key, old_value)


class MemoizingDecorator(Decorated):
    """A @cached that keeps what it returned in the process, in front of the cache (as a
    decorator stacked on functools.lru_cache would): an invalidation never reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self._memo: weakref.WeakKeyDictionary[Cache[Any], dict[str, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def read(
        self, cache: Cache[Any], key: str, compute: Callable[[], Any], ttl: float | None
    ) -> Any:
        memo = self._memo.setdefault(cache, {})
        if key not in memo:
            memo[key] = super().read(cache, key, compute, ttl)
        return memo[key]


# ------------------------------------------------- declared designs that break their word
class SwallowsWhileFailingClosed(Strategies):
    """Declares that it fails closed, and falls through to the source like ours: a read
    whose cache failed returns a value nobody should have trusted it to return."""

    promises = Promises(fail_closed=True)


class LostRevalidation(StaleWhileRevalidate):
    """Stale-while-revalidate whose regeneration is handed to a background queue that
    nothing drains: the expired value is served with no regeneration running, forever."""

    def regenerate(
        self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None, old: Any
    ) -> Any:
        return old  # "refreshed in the background"


# name -> (strategies, the property that must fail, a pattern its reason must match)
STALE_PAST_TTL = r"bounds how long a superseded value may be served"
# Stale after the change returned: a copy that landed after it (a stale set), or one that was
# there before it and was never taken out; which one the shrunk program shows is its own.
STALE_AFTER_CHANGE = r"stale-set race|was still served after it"

STRATEGY_MUTANTS: dict[str, tuple[type[Strategies], str, str]] = {
    "naive_cache_aside": (NaiveCacheAside, "staleness.cache_aside", r"stale-set race"),
    "deletes_before_write": (DeletesBeforeWrite, "staleness.cache_aside", STALE_AFTER_CHANGE),
    "forgets_to_invalidate": (ForgetsToInvalidate, "staleness.invalidation", r"after the inval"),
    "cache_before_source": (
        CacheBeforeSource,
        "staleness.write_through",
        r"source never held it|" + STALE_AFTER_CHANGE,
    ),
    "no_safety_net": (NoSafetyNet, "staleness.events", STALE_PAST_TTL),
    "events_miss_the_key": (EventsMissTheKey, "staleness.events", STALE_AFTER_CHANGE),
    "accepts_unsigned_pickle": (
        AcceptsUnsignedPickle,
        "faults.forged_payload",
        r"unpickled a payload nobody signed",
    ),
    "no_fall_through": (NoFallThrough, "faults.cache_aside", r"must fall through to the source"),
    "swallows_cache_failure": (
        SwallowsCacheFailure,
        "faults.write_through",
        STALE_AFTER_CHANGE + "|" + STALE_PAST_TTL,
    ),
    "caches_source_errors": (CachesSourceErrors, "faults.source", r"source never held it"),
    "fills_without_ttl": (FillsWithoutTTL, "staleness.ttl", STALE_PAST_TTL),
    "fills_ttl_too_long": (FillsTTLTooLong, "staleness.ttl", STALE_PAST_TTL),
    "installs_without_asking": (
        InstallsWithoutAsking,
        "staleness.write_through",
        STALE_AFTER_CHANGE,
    ),
    # Unshrunk, the race may first show as an old value served past its TTL.
    "sets_after_source": (
        SetsAfterSource,
        "staleness.write_through",
        STALE_AFTER_CHANGE + "|" + STALE_PAST_TTL,
    ),
    "invalidating_write_through": (
        InvalidatingWriteThrough,
        "efficacy.write_through",
        r"called source\.read.*a hit",
    ),
    "never_fills": (NeverFills, "efficacy.cache_aside", r"called source\.read.*a hit"),
    "memoizing_decorator": (MemoizingDecorator, "staleness.invalidation", r"after the inval"),
    "bypasses_after_events": (
        BypassesAfterEvents,
        "efficacy.events",
        r"called source\.read.*a hit",
    ),
    "no_dedupe": (NaiveCacheAside, "single_flight.one_compute", r"was running in the same"),
    "no_dedupe_threads": (NaiveCacheAside, "single_flight.threads", r"the compute ran \d+ times"),
    "seed_per_key_event": (PerKeyEvent, "single_flight.shared_outcome", r"UnboundLocalError"),
    "seed_flag_fixed": (PerKeyEventFlagFixed, "single_flight.no_hang", r"never returned"),
    "key_locked_on_error": (KeyLockedOnError, "single_flight.no_hang", r"never returned"),
    "releases_any_lease": (ReleasesAnyLease, "single_flight.one_owner", r"does not own it"),
    "lease_without_expiry": (LeaseWithoutExpiry, "single_flight.takeover", r"still the lease"),
    "xfetch_sign_flipped": (XFetchSignFlipped, "early_refresh.xfetch", r"served the cached"),
    "never_refreshes_early": (
        NeverRefreshesEarly,
        "efficacy.early_refresh",
        r"was gone \(read a miss\)",
    ),
    "refreshes_every_hit": (RefreshesEveryHit, "efficacy.early_refresh", r"refresh storm"),
    "waits_for_refresher": (
        WaitsForRefresher,
        "efficacy.revalidate",
        r"waited for another caller",
    ),
    "each_refreshes": (
        EachRefreshes,
        "efficacy.revalidate",
        r"computed too",
    ),
    "swallows_while_failing_closed": (
        SwallowsWhileFailingClosed,
        "faults.cache_aside",
        r"declares that it fails closed",
    ),
    "lost_revalidation": (
        LostRevalidation,
        "staleness.ttl",
        r"no regeneration of the key",
    ),
}

# Mutants only a server shows (real processes share it): name -> (strategies, the server
# the harness starts, the property that must fail, a pattern its reason must match).
SERVER_STRATEGY_MUTANTS: dict[str, tuple[type[Strategies], str, str, str]] = {
    "process_local_flights_redis": (
        ProcessLocalFlights,
        "redis",
        "single_flight.processes",
        r"the compute ran [2-9]\d* times",
    ),
    "process_local_flights_memcached": (
        ProcessLocalFlights,
        "memcached",
        "single_flight.processes",
        r"the compute ran [2-9]\d* times",
    ),
    "stale_if_error_redis": (
        StaleIfError,
        "redis",
        "faults.server_cache_aside",
        r"returned version 0 .* allowed only version 1",
    ),
    "replays_failed_writes_memcached": (
        ReplaysFailedWrites,
        "memcached",
        "faults.server_bounds",
        r"returned version 1 .* allowed only version 2",
    ),
}
