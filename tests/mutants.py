"""Deliberately broken backends: each breaks one rule, and the suite must say which.

:class:`PlainBackend` (tests/plain_backend.py) is a second, deliberately simple
implementation of the contract (a dict and a recency list, no tricks); it passes the whole
suite, so a mutant's failure is its one change and nothing else. Each mutant overrides one
small method.

``MUTANTS`` maps a name to ``(factory, property that must fail)``; ``tests/test_mutants.py``
runs each at the default size and checks the report names that property.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections.abc import Callable, Iterable, Mapping
from typing import ClassVar

from declared_strategies import adds_despite_declaring, own_clear_only
from order_backends import ExpiryOrderedEvictsOldest, FIFORefreshesOnHit, RandomEvictsNewcomer
from plain_backend import CAPACITY, SIZE_LIMIT, Entry, PlainBackend, plain
from ttl_backends import ForgetsAfterADay, OneTTLFromFirstWrite

from cachespec.backends import (
    NO_VALUE,
    Backend,
    BackendFull,
    MemoryBackend,
    NoValue,
    Unsupported,
    ValueTooLarge,
)
from cachespec.backends.contract import check_key
from cachespec.spec import (
    MEMCACHED_EVICTION,
    SERVER_EVICTION,
    ApproximateLRU,
    Guarantees,
)


class StampedClear(PlainBackend):
    """Not a mutant: a design some caches document. ``clear`` records the time and hides
    every entry written strictly before it (nothing is walked; hidden entries go when next
    touched). Correct on a real clock, where time moves between two calls; at one instant
    of the harness's clock a ``set`` and a later ``clear`` tie, and ``clock_granularity``
    is how the backend says so."""

    def __init__(self, clock: Callable[[], float], *, granularity: float = 0.0) -> None:
        super().__init__(clock)
        self.guarantees = dataclasses.replace(self.guarantees, clock_granularity=granularity)
        self.cleared_at = -float("inf")
        self.written: dict[str, float] = {}

    def store(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        super().store(key, value, ttl, now)
        self.written[self.map_key(key)] = now

    def purge(self, key: str) -> None:
        stored = self.map_key(key)
        if self.written.get(stored, self.cleared_at) < self.cleared_at:
            self.forget(stored)
            del self.written[stored]

    def lookup(self, key: str, now: float) -> bytes | NoValue:
        self.purge(key)
        return super().lookup(key, now)

    def matches(self, key: str, expected: bytes, now: float) -> bool:
        self.purge(key)
        return super().matches(key, expected, now)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        with self.lock:
            self.purge(check_key(key))
            return super().add(key, value, ttl)

    def clear(self) -> None:
        with self.lock:
            self.cleared_at = self.clock()


# ------------------------------------------------------------------------- TTL mutants
class LateExpiry(PlainBackend):
    """Serves an entry at the very instant it expires (``<=`` for ``<``)."""

    def live(self, entry: Entry, now: float) -> bool:
        return entry.expires is None or now <= entry.expires


class TruncatedTTL(PlainBackend):
    """Drops the fraction of a TTL (``int(ttl)``): 1.5 s lives 1 s, 0.25 s not at all."""

    def expiry(self, ttl: float | None, now: float) -> float | None:
        return None if ttl is None else now + int(ttl)


class TTLKeptOnOverwrite(PlainBackend):
    """An overwrite keeps the old entry's expiry instead of starting a new TTL."""

    def store(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        old = self.entries.get(key)
        super().store(key, value, ttl, now)
        if old is not None and self.live(old, now):
            self.entries[key].expires = old.expires


class DefaultTTL(PlainBackend):
    """Reads ``ttl=None`` as "the default TTL" (one day) instead of "no expiry"."""

    def expiry(self, ttl: float | None, now: float) -> float | None:
        return now + (86_400 if ttl is None else ttl)


class ThirtyDayRule(PlainBackend):
    """memcached's rule passed through: a TTL over 30 days is read as a Unix time."""

    def expiry(self, ttl: float | None, now: float) -> float | None:
        if ttl is not None and ttl > 2_592_000:
            return ttl  # an absolute time in 1970: long past
        return super().expiry(ttl, now)


class ZeroMeansForever(PlainBackend):
    """Accepts ``ttl=0`` as "never expire" (cachelib's reading) instead of refusing it."""

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        super().set(key, value, None if ttl == 0 else ttl)


class WallClock(PlainBackend):
    """The seed's TTL cache: expiry on ``time.time()``, which the harness cannot move."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(time.time)


# ----------------------------------------------------------------------- LRU mutants
class NoRefreshOnHit(PlainBackend):
    """A hit does not make the entry most recently used."""

    def touch(self, key: str) -> None:
        pass


class EvictsNewest(PlainBackend):
    """A full cache evicts the most recently used entry other than the newcomer."""

    def victim(self) -> str:
        return self.order[-2]


class OneOverCapacity(PlainBackend):
    """Holds ``capacity + 1`` entries."""

    def over_capacity(self) -> bool:
        return self.capacity is not None and len(self.entries) > self.capacity + 1


class CountsExpired(PlainBackend):
    """Evicts the least recently used live entry even when an expired one could go."""

    def make_room(self, now: float) -> None:
        while self.over_capacity():
            live = [k for k in self.order if self.live(self.entries[k], now)]
            self.forget(live[0] if live else self.order[0])


class LazyCull(PlainBackend):
    """Declares an approximate LRU that keeps ``CAPACITY`` entries, and expires lazily: an
    expired entry goes only when read, so a full cache culls its least recently used entry,
    live or not. Issue #15's defect: a live entry is evicted while expired ones, which
    nobody read since, still hold slots."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.guarantees = Guarantees(
            eviction=ApproximateLRU(
                holds_at_least=CAPACITY, protects_recent=1, holds_at_most=CAPACITY
            ),
            thread_safe=True,
        )

    def make_room(self, now: float) -> None:
        while self.over_capacity():
            self.forget(self.order[0])


class ApproximateEvictsNewest(PlainBackend):
    """Declares an approximate profile protecting the 2 most recent, then evicts the newest."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.guarantees = Guarantees(
            eviction=ApproximateLRU(holds_at_least=CAPACITY, protects_recent=2),
            thread_safe=True,
        )

    def victim(self) -> str:
        return self.order[-2]


class EvictedComesBack(PlainBackend):
    """Declares a server's memory eviction (no entry protected) and hides every other read
    of an entry instead of evicting it: a key seen gone is back at the next read."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock, capacity=None)
        self.guarantees = Guarantees(eviction=SERVER_EVICTION, thread_safe=True)
        self.reads = 0

    def is_hit(self, entry: Entry) -> bool:
        self.reads += 1
        return self.reads % 2 == 0


class RefusalKeepsOld(PlainBackend):
    """Declares memcached's profile (a write may be refused when full) and refuses every
    third write as Redis's ``OOM`` does: the key keeps its old value, which the profile
    forbids (memcached deletes it, so that no stale value outlives a refused write)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock, capacity=None)
        self.guarantees = Guarantees(eviction=MEMCACHED_EVICTION, thread_safe=True)
        self.writes = 0

    def store(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        self.writes += 1
        if self.writes % 3 == 0:
            raise BackendFull(f"refused {key!r}: out of memory", (key,))
        super().store(key, value, ttl, now)


# --------------------------------------------------------------------- value mutants
class FalsyIsMiss(PlainBackend):
    """The seed's ``if cached:``: an empty value reads as a miss."""

    def is_hit(self, entry: Entry) -> bool:
        return bool(entry.value)


class TruncatesBigValues(PlainBackend):
    """Keeps only the first 64 KiB of a value."""

    def store(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        super().store(key, value[:65_536], ttl, now)


class AcceptsStr(PlainBackend):
    """Stores ``str`` values instead of refusing them."""

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if isinstance(value, str):
            value = value.encode()
        super().set(key, value, ttl)


class DeletesOnOversize(PlainBackend):
    """memcached's server behaviour: a too-large write refuses but deletes the old entry."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock, max_value_size=SIZE_LIMIT)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if isinstance(value, bytes) and len(value) > SIZE_LIMIT:
            self.delete(key)
        super().set(key, value, ttl)


# ------------------------------------------------------------------------ key mutants
class TruncatesKeys(PlainBackend):
    """Cuts keys to 250 characters, as a naive memcached adapter would."""

    def map_key(self, key: str) -> str:
        return key[:250]


class StrictUTF8Keys(PlainBackend):
    """Encodes keys as strict UTF-8, so a lone surrogate is an error."""

    def map_key(self, key: str) -> str:
        return key.encode("utf-8").decode("utf-8")


class CoercesKeys(PlainBackend):
    """Accepts any key and stores it under ``str(key)``."""

    def get(self, key: str) -> bytes | NoValue:
        return super().get(str(key))

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        super().set(str(key), value, ttl)


# ------------------------------------------------------------------ operation mutants
class SetKeepsFirst(PlainBackend):
    """``set`` on a live key keeps the old value (it behaves like ``add``)."""

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.add(key, value, ttl)


class MissIsNone(PlainBackend):
    """The seed's LRU cache: a miss returns ``None``."""

    def lookup(self, key: str, now: float) -> bytes | NoValue:
        found = super().lookup(key, now)
        return None if found is NO_VALUE else found  # type: ignore[return-value]


class DeleteRaisesOnMissing(PlainBackend):
    """``del d[key]``: deleting a missing key raises ``KeyError``."""

    def delete(self, key: str) -> None:
        with self.lock:
            if key not in self.entries:
                raise KeyError(key)
            self.forget(key)


class OverwritingAdd(PlainBackend):
    """``add`` that writes even over a live entry (and still says it did not)."""

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        stored = super().add(key, value, ttl)
        if not stored:
            self.set(key, value, ttl)
        return stored


class NonAtomicAdd(PlainBackend):
    """``add`` as get-then-set, with no lock around the pair."""

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        if self.get(key) is not NO_VALUE:
            return False
        self.set(key, value, ttl)
        return True


class GetManyDropsLast(PlainBackend):
    """``get_many`` loses the last requested hit."""

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        found = super().get_many(keys)
        if found:
            found.pop(list(found)[-1])
        return found


class GetManyMisplaces(PlainBackend):
    """``get_many`` pairs keys with values in the wrong order (zip over mismatched lists)."""

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        found = super().get_many(keys)
        return dict(zip(sorted(found), found.values(), strict=True))


class SetManyDropsLast(PlainBackend):
    """``set_many`` forgets the last item."""

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        super().set_many(dict(list(items.items())[:-1]), ttl)


class DeleteManyFirstOnly(PlainBackend):
    """``delete_many`` deletes only the first key."""

    def delete_many(self, keys: Iterable[str]) -> None:
        super().delete_many(list(keys)[:1])


class ClearKeepsTimed(PlainBackend):
    """``clear`` removes only entries without a TTL."""

    def clear(self) -> None:
        with self.lock:
            for key in [k for k, e in self.entries.items() if e.expires is None]:
                self.forget(key)


class WithoutClear(PlainBackend):
    """Correct: declares ``clear=False`` and refuses ``clear`` with ``Unsupported``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.guarantees = dataclasses.replace(self.guarantees, clear=False)

    def clear(self) -> None:
        raise Unsupported("this backend declares clear=False")


class ClearDoesNothing(WithoutClear):
    """Declares ``clear=False``, yet ``clear`` returns as if it had worked: a caller who
    clears to drop stale data keeps serving it, and nothing tells them."""

    def clear(self) -> None:
        pass


class RefusedClearWipes(WithoutClear):
    """Declares ``clear=False`` and raises ``Unsupported``, but only after emptying itself."""

    def clear(self) -> None:
        PlainBackend.clear(self)
        super().clear()


class AddRemembersCleared(PlainBackend):
    """``add`` refuses keys it wrote before a ``clear`` (a stale "seen" set): only the mixed
    property combines ``clear`` with ``add``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.seen: set[str] = set()

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        if key in self.seen and key not in self.entries:
            return False
        stored = super().add(key, value, ttl)
        self.seen.add(key)
        return stored


class SharedStore(PlainBackend):
    """All instances share one store under key prefixes, and ``clear`` empties all of it."""

    shared: ClassVar[dict[str, Entry]] = {}
    shared_order: ClassVar[list[str]] = []

    def __init__(self, clock: Callable[[], float], namespace: str = "main") -> None:
        super().__init__(clock, capacity=None)
        self.prefix = namespace + ":"
        self.entries = SharedStore.shared
        self.order = SharedStore.shared_order
        self.clear()  # a fresh session starts empty (this clears everyone: the bug)

    def map_key(self, key: str) -> str:
        return self.prefix + key


class UnlockedWrites(PlainBackend):
    """Writes without the lock: concurrent inserts overshoot the capacity."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock, capacity=64)

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        for key, value in items.items():
            if key not in self.entries and len(self.entries) >= (self.capacity or 0):
                oldest = next(iter(self.entries), None)
                if oldest is not None:
                    self.entries.pop(oldest, None)
            self.entries[key] = Entry(value, self.expiry(ttl, self.clock()))

    def lookup(self, key: str, now: float) -> bytes | NoValue:
        entry = self.entries.get(key)
        return NO_VALUE if entry is None or not self.live(entry, now) else entry.value

    def store(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        self.set_many({key: value}, ttl)


class CompareIgnoresValue(PlainBackend):
    """``compare_and_set`` replaces any live value, whatever it is."""

    def matches(self, key: str, expected: bytes, now: float) -> bool:
        entry = self.entries.get(self.map_key(key))
        return entry is not None and self.live(entry, now)


class CompareIgnoresExpiry(PlainBackend):
    """The comparison matches an expired entry still in the store."""

    def matches(self, key: str, expected: bytes, now: float) -> bool:
        entry = self.entries.get(self.map_key(key))
        return entry is not None and entry.value == expected


class NonAtomicCompareAndSet(PlainBackend):
    """``compare_and_set`` as get, compare, set, with no lock around them."""

    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        if self.get(key) != expected:
            return False
        self.set(key, value, ttl)
        return True


class UnsafeHeapRebuild(MemoryBackend):
    """The memory backend with a bug it once had: its expiry heap was rebuilt by iterating
    the OrderedDict in Python while lock-free readers reorder it ("mutated during
    iteration" in a writer)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock=clock)

    def _rebuild_expiries(self) -> None:
        heap = [e for e in self._data.values() if isinstance(e, tuple)]
        heapq.heapify(heap)
        self._expiries = heap


Factory = Callable[..., Backend]

# name -> (factory, the property that must fail, a pattern its reason must match: the
# failure must be the bug, not an accident of the check)
MUTANTS: dict[str, tuple[Factory, str, str]] = {
    "late_expiry": (LateExpiry, "ttl.expires", r"allowed only a miss: .* expired at"),
    "truncated_ttl": (TruncatedTTL, "ttl.lives", r"live until"),
    "ttl_kept_on_overwrite": (
        TTLKeptOnOverwrite,
        "ttl.overwrite",
        r"expired at|live until|with no TTL",
    ),
    "default_ttl": (DefaultTTL, "ttl.never", r"returned a miss .* with no TTL"),
    "thirty_day_rule": (ThirtyDayRule, "ttl.long", r"returned a miss .* ttl=\d{7,}"),
    "zero_means_forever": (ZeroMeansForever, "ttl.invalid", r"ttl=0(\.0)? returned normally"),
    # Real time moves a little between a run and its replay: either a plain violation or
    # the report that the backend answered the same program differently.
    "wall_clock": (WallClock, "ttl.expires", r"expired at|live until|differently"),
    "no_refresh_on_hit": (NoRefreshOnHit, "lru.hit_refreshes", r"evicted at|allowed only b"),
    "evicts_newest": (EvictsNewest, "lru.evicts_lru", r"evicted at|allowed only b"),
    "one_over_capacity": (OneOverCapacity, "lru.capacity", r"evicted at|live entries"),
    "counts_expired": (CountsExpired, "lru.expired_first", r"returned a miss|gave a miss"),
    "lazy_cull": (LazyCull, "lru.expired_first", r"gave a miss .* allowed only"),
    # tests/ttl_backends.py: caches that declare one TTL for the whole cache, or none.
    "one_ttl_from_first_write": (
        OneTTLFromFirstWrite,
        "ttl.lives",
        r"the model allowed only .* with ttl=1\.5, live until",
    ),
    "forgets_after_a_day": (ForgetsAfterADay, "ttl.never", r"miss .* with no TTL"),
    # tests/order_backends.py: eviction orders other than LRU.
    "fifo_refreshes_on_hit": (
        FIFORefreshesOnHit,
        "lru.declared_order",
        r"evicted at .*\(FIFO|allowed only b",
    ),
    "expiry_ordered_evicts_oldest": (
        ExpiryOrderedEvictsOldest,
        "lru.declared_order",
        r"evicted at .*\(expiry-ordered|allowed only b",
    ),
    "random_evicts_newcomer": (
        RandomEvictsNewcomer,
        "lru.recent_survive",
        r"gave a miss|returned a miss",
    ),
    "approximate_evicts_newest": (
        ApproximateEvictsNewest,
        "lru.recent_survive",
        r"gave a miss|returned a miss",
    ),
    "evicted_comes_back": (EvictedComesBack, "lru.recent_survive", r"allowed only a miss"),
    "refusal_keeps_old": (RefusalKeepsOld, "lru.recent_survive", r"or a miss"),
    "falsy_is_miss": (FalsyIsMiss, "values.falsy", r"miss .*; the model allowed only b"),
    "truncates_big_values": (TruncatesBigValues, "values.roundtrip", r"\(65536 bytes\)"),
    "accepts_str": (AcceptsStr, "values.type", r"returned normally; expected TypeError"),
    # The deleted entry reads as a miss, or lets a later add in.
    "deletes_on_oversize": (
        DeletesOnOversize,
        "values.size_limit",
        r"miss .* allowed only|returned True; the model allowed only False",
    ),
    "truncates_keys": (TruncatesKeys, "keys.distinct", r"share one entry|never written|holds b"),
    "strict_utf8_keys": (StrictUTF8Keys, "keys.any_unicode", r"UnicodeEncodeError"),
    "coerces_keys": (CoercesKeys, "keys.type", r"returned normally; expected TypeError"),
    "set_keeps_first": (SetKeepsFirst, "ops.get_set", r"allowed only b"),
    "miss_is_none": (MissIsNone, "ops.get_set", r"returned None"),
    "delete_raises_on_missing": (DeleteRaisesOnMissing, "ops.delete", r"KeyError"),
    # Read back as the overwritten value or past the overwritten TTL, or seen in its own
    # or a later add's answer.
    "overwriting_add": (OverwritingAdd, "ops.add", r"allowed only"),
    "non_atomic_add": (NonAtomicAdd, "ops.add_atomic", r"concurrent calls of add.* returned True"),
    "get_many_drops_last": (GetManyDropsLast, "ops.get_many", r"gave a miss"),
    "get_many_misplaces": (GetManyMisplaces, "ops.get_many", r"gave b'.*' for"),
    # The dropped item reads as a miss, or as the value it should have replaced.
    "set_many_drops_last": (SetManyDropsLast, "ops.set_many", r"allowed only b'"),
    "delete_many_first_only": (DeleteManyFirstOnly, "ops.delete_many", r"was deleted at"),
    "clear_keeps_timed": (ClearKeepsTimed, "ops.clear", r"removed by clear"),
    "clear_does_nothing": (ClearDoesNothing, "ops.clear", r"clear\(\) .* returned normally"),
    # Declares a store-wide clear (Guarantees.clear_store_wide) and clears its own namespace.
    "own_clear_only": (own_clear_only, "ops.clear_namespace", r"removed by clear"),
    "adds_despite_declaring": (
        adds_despite_declaring,
        "ops.add_refused",
        r"returned normally; expected Unsupported",
    ),
    "refused_clear_wipes": (RefusedClearWipes, "ops.clear", r"miss .* allowed only b"),
    "add_remembers_cleared": (AddRemembersCleared, "ops.mixed", r"returned False"),
    "shared_store": (SharedStore, "ops.clear_namespace", r"miss .* allowed only b"),
    "unlocked_writes": (UnlockedWrites, "ops.threads", r"capacity is 64|raised|never written"),
    "unsafe_heap_rebuild": (UnsafeHeapRebuild, "ops.threads", r"mutated during iteration"),
    "compare_ignores_value": (
        CompareIgnoresValue,
        "ops.compare_and_set",
        r"returned True; the model allowed only False",
    ),
    "compare_ignores_expiry": (
        CompareIgnoresExpiry,
        "ops.compare_and_set",
        r"returned True; the model allowed only False: .* expired",
    ),
    "non_atomic_compare_and_set": (
        NonAtomicCompareAndSet,
        "ops.compare_and_set_atomic",
        r"concurrent calls of compare_and_set.* returned True",
    ),
}

__all__ = ["MUTANTS", "PlainBackend", "ValueTooLarge", "WithoutClear", "plain"]
