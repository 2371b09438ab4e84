"""The cache layer: values in, values out, over any backend, with guarded fills.

:class:`Cache` wraps a backend, a serializer and a default TTL. Its cache-aside read,
:meth:`Cache.get_or_compute`, is *guarded*: a fill computed before an invalidation can never
land after it (docs/design.md, the stale-set race). The guard is a lease written with the
backend's atomic ``add`` before the source is read, and replaced by the value only with an
atomic ``compare_and_set`` on that very lease: an invalidation (a ``delete``) in between
removes the lease, so the late fill finds nothing to replace and is dropped. The caller still
gets the value it computed; the cache just keeps out of it.

Entries are framed with one tag byte, so no user value can ever look like a lease
(:mod:`cachespec.backends.entries`, the one place that frames and parses them). A payload
that does not decode is counted, dropped from the backend, and read as a miss: it never
reaches the caller as an exception. Every backend call ``get_or_compute`` makes goes through
:class:`~cachespec.backends.tolerant.TolerantBackend`, so a cache that fails costs a compute,
never the call.
"""

from __future__ import annotations

import functools
import math
import random as _random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast

from cachespec.spec import NO_VALUE, NoValue, validate_ttl

from .contract import (
    Backend,
    CacheError,
    Clock,
    ConfigurationError,
    as_batch,
    check_key,
    check_seconds,
)
from .entries import (
    Corrupt,
    Lease,
    Plain,
    Refreshable,
    Refreshing,
    Versioned,
    claim,
    common_payload,
    entry_version,
    frame_refreshable,
    frame_value,
    frame_versioned,
    is_lease,
    new_lease,
    parse,
    refresh_meta,
)
from .serializers import DecodeError, JSONSerializer, Serializer
from .singleflight import Group, Wait, event_wait
from .tolerant import ErrorLog, TolerantBackend

V = TypeVar("V")
if TYPE_CHECKING:
    # The type of what a cache holds, Any unless a user says (``Cache[Price](backend)``), so
    # an unannotated Cache asks nothing of a `mypy --strict` user. TypeVar defaults (PEP 696)
    # are typing_extensions' before Python 3.13; the type checker reads them from typeshed,
    # so the library needs no runtime dependency for them.
    from typing_extensions import TypeVar as _TypeVarWithDefault

    T = _TypeVarWithDefault("T", default=Any)
else:
    T = TypeVar("T")


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT_TTL"

    def __reduce__(self) -> str:
        # A copy or an unpickled one is the module's singleton: identity is how it is told.
        return "DEFAULT_TTL"


DEFAULT_TTL: Final = _Default()
"""``ttl=DEFAULT_TTL`` (the default) means the cache's ``default_ttl``."""


@dataclass
class CacheStats:
    """Counters a user can read (and a dashboard can scrape)."""

    hits: int = 0
    misses: int = 0
    fills: int = 0
    fills_dropped: int = 0  # a guarded fill that lost its lease: an invalidation came first
    invalidations: int = 0
    decode_failures: int = 0
    errors: int = 0  # backend failures that get_or_compute fell through
    computes: int = 0  # times a compute function ran
    shared: int = 0  # results handed to callers that did not compute them
    lease_waits: int = 0  # callers that found another's lease and waited for its value
    lease_takeovers: int = 0  # a caller waited for another's lease, then computed itself
    early_refreshes: int = 0  # hits recomputed early (XFetch or soft TTL)
    stale_served: int = 0  # hits due for refresh served as they were: another caller refreshed
    fills_failed: int = 0  # computed values the serializer refused: returned, not cached

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _Held:
    """The answer of Cache._take_lease when the caller now holds the lease."""


_HELD: Final = _Held()

# How many times in a row a fill tries again when add finds the key taken and get finds it
# gone (see Cache._fill).
_VANISHED_ROUNDS = 3


def _unit_interval() -> float:
    """A draw in (0, 1], as XFetch's logarithm needs (never 0)."""
    return 1.0 - _random.random()


class Cache(Generic[T]):
    """Serialized values over a backend, with guarded cache-aside fills.

    ``default_ttl`` applies where a call passes no TTL (``None``: no expiry). ``lease_ttl``
    bounds how long a fill in progress blocks other fills (and callers waiting for it) if
    its caller dies. The backend must offer ``compare_and_set`` (its guarantees say so)
    unless ``guarded=False``, which gives the naive fill with the stale-set race (for
    comparison only).

    ``single_flight``: concurrent misses in this process share one computation (waiting at
    most ``flight_timeout`` seconds, then :class:`~cachespec.backends.singleflight.
    FlightTimeout`); one older than ``lease_ttl`` is not joined, as its lease would no
    longer hold off other processes either. ``wait_for_lease``: a caller that finds another
    process's lease polls for its value (every ``lease_poll`` seconds, doubling) instead of
    computing too.
    ``early_refresh``: XFetch with ``beta``; ``refresh_before``: the plain soft-TTL mode, a
    hit within that many seconds of its expiry is refreshed. While one caller of this
    process refreshes a key, the others get the cached value at once (stale-while-
    revalidate: it is still within its TTL). ``clock``, ``sleep`` and ``random`` (a draw in
    (0, 1]) are injectable, so that tests own time and chance.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        serializer: Serializer | None = None,
        default_ttl: float | None = None,
        lease_ttl: float = 30.0,
        guarded: bool = True,
        single_flight: bool = True,
        flight_timeout: float | None = None,
        wait_for_lease: bool = True,
        lease_poll: float = 0.01,
        early_refresh: bool = False,
        beta: float = 1.0,
        refresh_before: float | None = None,
        clock: Clock = time.time,
        sleep: Callable[[float], object] = time.sleep,
        random: Callable[[], float] = _unit_interval,
        flight_wait: Wait | None = None,
    ) -> None:
        if guarded and not backend.guarantees.compare_and_set:
            raise ConfigurationError(
                f"{type(backend).__name__} does not offer compare_and_set, which guarded fills "
                "need; use a backend that does, or guarded=False (stale fills possible)"
            )
        self.backend = backend
        self.serializer: Serializer = serializer or JSONSerializer()
        self.default_ttl = validate_ttl(default_ttl)
        leased = validate_ttl(lease_ttl)
        if leased is None:
            # A lease that never expires outlives a caller that dies holding it: the key
            # would never be filled again (docs/design.md). Refused, not defaulted.
            raise ConfigurationError("lease_ttl must be a number of seconds, not None")
        self.lease_ttl: float = leased
        # A poll of 0 s would busy-loop on the backend while another caller holds the lease
        # (the doubling backoff stays at 0).
        self.lease_poll = check_seconds("lease_poll", lease_poll)
        # A negative timeout would make every waiter give up at once; waiting without limit
        # is spelled None (threading.Event.wait refuses inf).
        if flight_timeout is not None:
            check_seconds("flight_timeout", flight_timeout, allow_zero=True)
        # XFetch's beta scales how early a hit is refreshed: 0 would never refresh early and a
        # negative beta would refresh late, so only a finite beta > 0 means what it says.
        self.beta = check_seconds("beta", beta)
        if early_refresh and refresh_before is not None:
            # Each mode refreshes on its own condition and the two would silently combine;
            # the caller has to pick one.
            raise ConfigurationError(
                f"early_refresh=True (XFetch) and refresh_before={refresh_before!r} (soft TTL) "
                "are two early-refresh modes; pass one of them, not both"
            )
        self.guarded = guarded
        self.wait_for_lease = wait_for_lease
        self.early_refresh = early_refresh
        self.refresh_before = None if refresh_before is None else validate_ttl(refresh_before)
        self._clock = clock
        self._sleep = sleep
        self._random = random
        # How this cache waits for another caller's work (single-flight's wait), public so
        # that code layered on the cache can wait the same way (the harness schedules it).
        self.flight_wait: Wait = flight_wait or event_wait
        self._flights: Group[Any] | None = None
        if single_flight:
            # A flight is shared for as long as a lease would be, no longer: a reader that
            # comes later computes anew, so that sharing never stretches staleness past it.
            self._flights = Group(
                timeout=flight_timeout,
                wait=self.flight_wait,
                max_age=self.lease_ttl,
                clock=clock,
            )
        self.stats = CacheStats()  # guarded by _stats_lock
        self._stats_lock = threading.Lock()
        self._error_log = ErrorLog(type(backend).__name__, clock)  # guarded by _stats_lock
        # The only route from get_or_compute to the backend (backends/tolerant.py).
        self._tolerant = TolerantBackend(backend, self._report)

    # ------------------------------------------------------------------------------ reads
    def get(self, key: str) -> T | NoValue:
        """The cached value, or :data:`NO_VALUE` (a lease or an undecodable entry is a miss)."""
        found = self._read(key)
        self._count("hits" if found is not NO_VALUE else "misses")
        return cast("T | NoValue", found)  # what was stored: T, by the user's word

    def get_many(self, keys: Iterable[str]) -> dict[str, T]:
        found: dict[str, T] = {}
        # A lone str is one key, not a batch of its characters; the backend checks each key.
        wanted = as_batch(keys)
        for key, raw in self.backend.get_many(wanted).items():
            value = self._decode(key, raw)
            if value is not NO_VALUE:
                found[key] = cast(T, value)
        with self._stats_lock:
            self.stats.hits += len(found)
            self.stats.misses += len(set(wanted)) - len(found)
        return found

    def get_or_compute(
        self, key: str, compute: Callable[[], V], ttl: float | _Default | None = DEFAULT_TTL
    ) -> V:
        """The cached value, or ``compute()``'s, which then fills the cache (guarded).

        * Concurrent misses on ``key`` in this process run ``compute`` once (single-flight):
          the others get that value, or that exception.
        * Across processes, the caller holding the key's lease computes; the others wait
          for its value (polling with backoff) until the lease runs out, then take over.
        * A fill computed before an invalidation is returned but never cached.
        * With ``early_refresh``, a hit may recompute before the entry expires (XFetch).
        * A failing cache never fails the call: it falls through to ``compute``.
        """
        seconds = self._ttl(ttl)
        if key.__class__ is not str:
            check_key(key)  # raises TypeError
        raw = self._tolerant.get(key)
        if raw is None:
            # The cache failed: the source answers, once for the callers that come together
            # (a cache that is down must not turn a herd loose on the source).
            return self._in_flight(key, functools.partial(self._compute_value, compute))
        if raw is not NO_VALUE and not self.early_refresh and self.refresh_before is None:
            # The hot path: a fill or a plain value, and no early refresh to consider (the general
            # path below reaches the same answer, with more checks on the way).
            # A payload that does not decode, or decodes to NO_VALUE (pickle can store it),
            # goes the general way: counted, dropped, a miss.
            payload = common_payload(raw)
            if payload is not None:
                try:
                    found = self.serializer.loads(payload)
                except DecodeError:
                    found = NO_VALUE
                if found is not NO_VALUE:
                    with self._stats_lock:
                        self.stats.hits += 1
                    # The serializer gives back what was stored: V, which mypy cannot know
                    # (cast() would cost a call on the hot path).
                    return found  # type: ignore[return-value]
        found = self._decode(key, raw)
        fill: Callable[[], V]
        if found is NO_VALUE or raw is NO_VALUE:
            self._count("misses")
            fill = functools.partial(self._fill, key, compute, seconds)
        elif self._refresh_now(raw):
            if self._flights is not None and self._flights.running(key):
                self._count("stale_served")  # another caller refreshes it: serve this one
                return cast(V, found)
            self._count("early_refreshes")
            fill = functools.partial(self._refresh, key, raw, compute, seconds)
        else:
            # A claimed entry is being refreshed by another caller: its old value is served.
            self._count("stale_served" if isinstance(parse(raw), Refreshing) else "hits")
            return cast(V, found)
        return self._in_flight(key, fill, seconds)

    def _in_flight(self, key: str, fill: Callable[[], V], ttl: float | None = None) -> V:
        """``fill()``, shared with this process's concurrent callers of ``key``
        (single-flight), when the cache has it on. A flight older than ``ttl`` is not joined
        (nor one older than the lease time): its compute read the source longer ago than an
        entry it filled could have lived, so sharing it would stretch staleness past the TTL
        (found by drawing a lease time longer than the fill TTL; docs/design.md)."""
        if self._flights is None:
            return fill()
        led: list[bool] = []

        def lead() -> V:
            led.append(True)
            return fill()

        value: V = self._flights.do(key, lead, max_age=ttl)[0]
        if not led:
            self._count("shared")  # another caller's computation answered this one
        return value

    def _compute_value(self, compute: Callable[[], V]) -> V:
        return self._compute(compute)[0]

    def _compute(self, compute: Callable[[], V]) -> tuple[V, float]:
        """Run ``compute``, counted and timed on the cache's clock."""
        self._count("computes")
        started = self._clock()
        value = compute()
        return value, self._clock() - started

    def _fill(self, key: str, compute: Callable[[], V], seconds: float | None) -> V:
        """Compute under this key's lease, and fill only if the lease is still ours."""
        backend = self._tolerant
        if not self.guarded:
            value, _ = self._compute(compute)
            payload = self._encode(value)
            if payload is not None and backend.set(key, frame_value(payload), seconds):
                self._count("fills")
            return value
        lease = new_lease()
        answer = self._take_lease(key, lease, compute)
        if answer is not _HELD:
            return cast(V, answer)  # another caller's value, or the source's: no fill
        try:
            value, data = self._computed_entry(compute, seconds)
        except BaseException:
            self._release_lease(key, lease)
            raise
        landed = None if data is None else backend.compare_and_set(key, lease, data, seconds)
        if landed:
            self._count("fills")
        elif landed is None:
            # Not storable, or the cache refused the fill (too large, full, gone): the lease
            # must not keep every other caller waiting out its time for a value never coming.
            self._release_lease(key, lease)
        else:
            self._count("fills_dropped")  # an invalidation removed the lease meanwhile
        return value

    def _take_lease(self, key: str, lease: bytes, compute: Callable[[], V]) -> V | _Held:
        """Hold ``key``'s lease (:data:`_HELD`), or answer without it: another caller's
        value once it lands, or the source's when the cache fails or waiting is off."""
        backend = self._tolerant
        waited = False
        holder: bytes | NoValue = NO_VALUE  # the other caller's lease we are waiting out
        deadline = 0.0
        delay = self.lease_poll
        vanished = 0  # rounds in which add found the key taken and get found it absent
        while True:
            added = backend.add(key, lease, self.lease_ttl)
            if added:
                break
            raw = None if added is None else backend.get(key)
            if raw is None:  # the cache failed: the source answers, and nothing is filled
                return self._compute(compute)[0]
            if raw is NO_VALUE:
                # The key went between the add and the get (it expired, or was invalidated):
                # add again. A backend whose add keeps refusing a key its get calls absent is
                # at odds with itself; after a few rounds the source answers, unfilled.
                vanished += 1
                if vanished > _VANISHED_ROUNDS:
                    return self._compute(compute)[0]
                continue
            found = self._decode(key, raw)
            if found is not NO_VALUE:
                if waited:
                    self._count("shared")
                return cast(V, found)
            # Another caller holds the lease. Wait for its value: a holder that dies leaves a
            # lease that expires on the backend, and then our add takes over. Each new holder
            # gets its own lease time.
            if raw != holder:
                holder, deadline = raw, self._clock() + self.lease_ttl
            if not self.wait_for_lease:
                return self._compute(compute)[0]
            if self._clock() >= deadline:
                # The lease outlived its time: written without a TTL (forged, or by a backend
                # that dropped it) or never expired. Treated as expired: we take it over, on
                # its exact bytes, so that the key is filled again rather than every caller
                # waiting out the lease time forever (docs/design.md, "Single-flight"). If
                # that fails, the source answers and nothing is filled.
                if backend.compare_and_set(key, raw, lease, self.lease_ttl):
                    if not waited:
                        self._count("lease_waits")
                    waited = True
                    break
                return self._compute(compute)[0]
            if not waited:
                self._count("lease_waits")
            waited = True
            self._sleep(delay)
            delay = min(delay * 2, self.lease_poll * 32)
        if waited:
            self._count("lease_takeovers")
        return _HELD

    def _refresh(self, key: str, old: bytes, compute: Callable[[], V], seconds: float | None) -> V:
        """Recompute a live entry early, once across processes.

        The entry is first replaced by a claimed copy of itself (``r`` + token + ``old``,
        same expiry): callers elsewhere read the old value from it and do not refresh too.
        Whoever loses that compare-and-set serves the value it read. The new value replaces
        the claimed copy only if it is still exactly that (compare-and-set), so an
        invalidation that came meanwhile is never overwritten; if the refresher dies, the
        claimed copy simply expires when the old entry would have."""
        backend = self._tolerant
        meta = refresh_meta(old)
        assert meta is not None  # _refresh_now said so
        left = meta[0] - self._clock()
        claimed = claim(old)
        keep = None if math.isinf(meta[0]) else max(left, 0.001)
        if not backend.compare_and_set(key, old, claimed, keep):
            self._count("stale_served")  # another caller claimed it first (or it changed)
            return cast(V, self._decode(key, old))
        try:
            value, data = self._computed_entry(compute, seconds)
        except BaseException:
            # Back to the plain old entry, so that the next caller may try again.
            backend.compare_and_set(key, claimed, old, keep)
            raise
        landed = None if data is None else backend.compare_and_set(key, claimed, data, seconds)
        if landed:
            self._count("fills")
        elif landed is None:
            backend.compare_and_set(key, claimed, old, keep)  # as if the refresh had failed
        else:
            self._count("fills_dropped")
        return value

    def _computed_entry(
        self, compute: Callable[[], V], seconds: float | None
    ) -> tuple[V, bytes | None]:
        """``compute``'s value, and the fill entry that stores it (None: it cannot be stored)."""
        value, duration = self._compute(compute)
        payload = self._encode(value)
        if payload is None:
            return value, None
        return value, frame_refreshable(self._expiry(seconds), duration, payload)

    def _encode(self, value: object) -> bytes | None:
        """``value``'s payload, or None if the serializer fails on it: a computed value that
        cannot be stored still goes back to its caller, with the failed fill counted and
        logged (a refusal is an EncodeError, but a RecursionError or a custom
        ``__reduce__``'s exception must not lose the value either)."""
        try:
            return self.serializer.dumps(value)
        except Exception as exc:
            with self._stats_lock:
                self.stats.fills_failed += 1
                unlogged = self._error_log.due()
            if unlogged is not None:
                self._error_log.write("storing a computed value", exc, unlogged, "not cached")
            return None

    def _release_lease(self, key: str, lease: bytes) -> None:
        """Give up our lease after a failed compute: only if it is still ours (a lease that
        expired may have been taken over; deleting the key would release the new owner's)."""
        self._tolerant.compare_and_delete(key, lease)

    def _expiry(self, seconds: float | None) -> float:
        return math.inf if seconds is None else self._clock() + seconds

    def _refresh_now(self, raw: bytes) -> bool:
        """Whether a hit is refreshed early: within ``refresh_before`` seconds of its
        expiry (soft TTL), or by XFetch (Vattani et al., VLDB 2015) when
        ``now - delta * beta * ln(rand) >= expiry``, ``rand`` in (0, 1]."""
        if not self.early_refresh and self.refresh_before is None:
            return False
        meta = refresh_meta(raw)
        if meta is None:
            return False
        expiry, delta = meta
        now = self._clock()
        if self.refresh_before is not None and now >= expiry - self.refresh_before:
            return True
        return self.early_refresh and now - delta * self.beta * math.log(self._random()) >= expiry

    def _report(self, operation: str, exc: CacheError) -> None:
        """A backend call of the read-through path failed: count it, and log it (rarely)."""
        with self._stats_lock:
            self.stats.errors += 1
            unlogged = self._error_log.due()
        if unlogged is not None:
            self._error_log.write(operation, exc, unlogged)

    # ----------------------------------------------------------------------------- writes
    def set(self, key: str, value: T, ttl: float | _Default | None = DEFAULT_TTL) -> None:
        """Store ``value`` unconditionally (it is serialized first: nothing is written if
        that fails)."""
        data = frame_value(self.serializer.dumps(value))
        try:
            self.backend.set(key, data, self._ttl(ttl))
        finally:
            self.supersede([key])

    def invalidate(self, key: str) -> None:
        """Remove ``key``'s entry (a value, or a fill's lease: the fill will be dropped)."""
        try:
            self.backend.delete(key)
        finally:
            self.supersede([key])
        self._count("invalidations")

    def invalidate_many(self, keys: Iterable[str]) -> None:
        # Refused before anything is deleted: "ab" would otherwise delete keys "a" and "b".
        doomed = as_batch(keys)
        try:
            self.backend.delete_many(doomed)
        finally:
            self.supersede(doomed)
        with self._stats_lock:
            self.stats.invalidations += len(doomed)

    def supersede(self, keys: Iterable[str]) -> None:
        """Computations of ``keys`` in flight in this process may hold an old value: callers
        that come after this returns start a new one instead of joining them.

        Every write and invalidation through this cache calls it; a writer that changes the
        backend around the cache (as write-through does) must too. Without it, a read that
        starts after an invalidation could join a flight whose compute read the source before
        the change, and get the old value (a stale-set race in the process's memory)."""
        if self._flights is not None:
            for key in keys:
                self._flights.forget(key)

    # ---------------------------------------------------------------------------- helpers
    def _ttl(self, ttl: float | _Default | None) -> float | None:
        return self.default_ttl if ttl is DEFAULT_TTL else validate_ttl(ttl)

    def _read(self, key: str) -> object:
        return self._decode(key, self.backend.get(key))

    def _decode(self, key: str, raw: bytes | NoValue) -> object:
        """The value in ``raw``, or NO_VALUE for a miss, a lease or an undecodable entry."""
        if raw is NO_VALUE:
            return NO_VALUE
        payload = common_payload(raw)  # the usual shape, read without building an entry
        if payload is None:
            match parse(raw):
                case Lease():
                    return NO_VALUE
                case Plain(payload) | Versioned(_, payload) | Refreshable(_, _, payload):
                    pass
                case Refreshing(fill):
                    payload = fill.payload
                case Corrupt():
                    return self._drop(key, raw)
                case unknown:  # a kind added to entries.py and not handled here
                    raise AssertionError(f"Cache._decode does not handle {unknown!r}")
        try:
            return self.serializer.loads(payload)
        except DecodeError:
            return self._drop(key, raw)

    def _drop(self, key: str, raw: bytes) -> NoValue:
        """An entry that does not decode: counted, and removed if it is still the same bytes
        (a fresh fill must not be lost). Best effort: a cache that fails here must not fail
        the read."""
        self._count("decode_failures")
        if self.backend.guarantees.compare_and_set:
            self._tolerant.compare_and_delete(key, raw)
        return NO_VALUE

    def _count(self, name: str) -> None:
        with self._stats_lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)


# The entry helpers are re-exported for code layered on the cache (strategies, the suite's
# mutants), which framed entries through this module before entries.py held them.
__all__ = [
    "DEFAULT_TTL",
    "Cache",
    "CacheStats",
    "entry_version",
    "frame_refreshable",
    "frame_value",
    "frame_versioned",
    "is_lease",
    "new_lease",
    "refresh_meta",
]
