"""Eviction profiles: what a backend promises about the live entries it may drop.

A profile carries its whole behaviour through :class:`EvictionProfile`: what the model does
when an entry is inserted and when an operation settles, the count bound, whether a write
may be refused, and which eviction properties apply (with the reason when one does not).
Nothing outside this module switches on a profile's class, so a new profile is one subclass
here (and a mutant that breaks it, in tests/mutants.py): docs/design.md, "Eviction profiles".

The server profiles (:data:`SERVER_EVICTION`, :data:`MEMCACHED_EVICTION`,
:data:`REDIS_SERVER_EVICTION`) live here side by side, so that they can be compared.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

# The eviction-related properties a profile decides about (conformance/properties/base.py):
# "exact_lru": eviction order and hit refresh (lru.evicts_lru, lru.hit_refreshes, ...);
# "approximate_lru": the weaker promises of a sampling or segmented LRU;
# "bounded": a bound on the number of live entries (lru.capacity);
# "evicting": any property that fills the cache to make it evict;
# "expired_first": expired entries make room before a live one goes (every profile that
# promises to keep a number of entries: EvictionProfile.expired_make_room);
# "declared_order": an order other than LRU that names each victim (FIFO, expiry-ordered).
EvictionCheck = Literal[
    "exact_lru", "approximate_lru", "bounded", "evicting", "expired_first", "declared_order"
]

# What the model tells a profile about one entry when it asks for a victim: the key, and
# when its entry expires (None: never). Given in the model's order, next to go first.
Candidate = tuple[str, float | None]


class EvictionProfile(ABC):
    """What a backend promises about eviction; the model and the suite ask only this.

    A subclass defines the abstract members below; :meth:`keeps`, :meth:`expired_make_room`
    and :meth:`skip_reason` follow from them (override them only if a profile needs other
    words or numbers).

    One rule holds for every profile, whatever its order: an expired entry never holds a
    slot that a live one needs. The ``held`` that :meth:`evicts_to_insert` and
    :meth:`may_have_evicted` are given counts only the entries that may still be live (the
    model drops the surely expired ones first), so a profile's count promises are about
    live entries; see :meth:`expired_make_room` and docs/design.md, "Expired entries make
    room".
    """

    @property
    @abstractmethod
    def evicts(self) -> bool:
        """Whether the backend may drop a live entry nobody deleted (``False``: it never
        evicts, so no property that fills the cache applies)."""

    @property
    @abstractmethod
    def exact_lru_order(self) -> bool:
        """Whether evictions follow exact LRU order: an insert into a full namespace evicts
        exactly the least recently used entry, and a hit makes an entry the most recently
        used. The properties about eviction order apply only then."""

    @property
    @abstractmethod
    def may_refuse_writes(self) -> bool:
        """Whether a write may be refused for want of memory (``BackendFull``); each key it
        touched then holds the new value or nothing. Without it such an error is a failure."""

    @abstractmethod
    def describe(self) -> str:
        """The profile in a few words, for reports and messages."""

    @abstractmethod
    def live_count_bound(self) -> int | None:
        """The most live entries the backend may hold (``None``: no bound by count)."""

    @abstractmethod
    def room(self) -> int:
        """How many entries the backend keeps before it may evict any (0: it promises no
        such count, so a cache is filled by bursts instead, or it never evicts)."""

    @abstractmethod
    def evicts_to_insert(self, held: int) -> bool:
        """Whether inserting a new key where the model holds ``held`` entries first evicts
        the least recently used one (the model removes it, or weakens when it cannot tell
        which entry that is). A profile that says yes declares a :meth:`live_count_bound`."""

    @abstractmethod
    def may_have_evicted(self, held: int) -> int:
        """After an operation leaves ``held`` entries, how many of the least recently used
        ones the backend may have dropped without saying which or when (the model then
        allows each of them to be missing, never to hold a wrong value)."""

    # -- with defaults: an LRU's answers. A profile with another order overrides them. ----
    @property
    def hit_is_use(self) -> bool:
        """Whether a hit moves an entry to the back of the order (LRU: yes; FIFO: no). A
        write always does: an overwrite is a new write."""
        return True

    def victim(self, candidates: Sequence[Candidate]) -> str:
        """Which entry an insert into a full cache evicts, when :meth:`evicts_to_insert` says
        one goes. ``candidates`` are every entry, all live, in the model's order (least
        recently used, or first written, first)."""
        return candidates[0][0]

    @property
    def names_victim(self) -> bool:
        """Whether the profile names the entry each eviction takes (:meth:`victim`), so that
        the order can be checked; the machines then step over expiry windows, where the
        model could not tell which entry goes."""
        return self.exact_lru_order

    def keeps(self, entries: int) -> bool:
        """Whether ``entries`` live entries, all just written, are all kept until used."""
        return not self.evicts or entries <= self.room()

    def expired_make_room(self) -> bool:
        """Whether the rule "never evict a live entry while an expired one holds a slot" can
        be checked: the profile promises to keep :meth:`room` live entries, so a cache that
        counted its expired entries toward that number (a lazily expiring cache that culls
        by its own order, expired or not) would drop a live entry the promise covers.

        The rule is not a choice a profile makes: it follows from counting live entries,
        which every profile does. A profile that promises no count (``room() == 0``: a
        server evicting by memory) gives the rule nothing to bite on.
        """
        return self.evicts and self.room() > 0

    def skip_reason(self, check: EvictionCheck) -> str | None:
        """Why the properties of kind ``check`` do not apply to this profile (``None``: they
        do). The reason is what a report prints beside each skipped property."""
        if check == "exact_lru":
            if self.exact_lru_order:
                return None
            return f"the backend declares {self.describe()}, not exact LRU"
        if check == "approximate_lru":
            if self.evicts and not self.exact_lru_order:
                return None
            if self.exact_lru_order:
                return "the backend declares exact LRU, which lru.evicts_lru checks more strictly"
            return f"the backend declares {self.describe()}"
        if check == "bounded":
            if self.live_count_bound() is not None:
                return None
            return f"the backend declares no bound on its number of entries ({self.describe()})"
        if check == "declared_order":
            if self.names_victim and not self.exact_lru_order:
                return None
            if self.exact_lru_order:
                return "the backend declares exact LRU, which lru.evicts_lru checks"
            return f"the backend declares {self.describe()}, which names no entry to evict"
        if check == "expired_first":
            if self.expired_make_room():
                return None
            if not self.evicts:
                return f"the backend declares {self.describe()}: no live entry is ever evicted"
            return (
                f"the backend declares {self.describe()}: it promises to keep no number of "
                "entries, so no eviction is wrong"
            )
        return None if self.evicts else f"the backend declares {self.describe()}"


@dataclass(frozen=True)
class NoEviction(EvictionProfile):
    """The backend never evicts a live entry (it is unbounded, or bounded far above use)."""

    @property
    def evicts(self) -> bool:
        return False

    @property
    def exact_lru_order(self) -> bool:
        return False

    @property
    def may_refuse_writes(self) -> bool:
        return False

    def describe(self) -> str:
        return "no eviction"

    def live_count_bound(self) -> int | None:
        return None

    def room(self) -> int:
        return 0

    def evicts_to_insert(self, held: int) -> bool:
        return False

    def may_have_evicted(self, held: int) -> int:
        return 0


@dataclass(frozen=True)
class ExactLRU(EvictionProfile):
    """At most ``capacity`` live entries; a full cache evicts the least recently used one.

    A hit (``get``, and each hit of ``get_many``) and a write (``set``, ``set_many``, a
    successful ``add`` or ``compare_and_set``) make an entry the most recently used; a failed
    ``add`` or compare-and-X, and a miss, do not. An expired entry never takes a place that
    a live one needs: it is dropped first.
    """

    capacity: int

    def __post_init__(self) -> None:
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int):
            raise TypeError(f"capacity must be an int, got {self.capacity!r}")
        if self.capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {self.capacity}")

    @property
    def evicts(self) -> bool:
        return True

    @property
    def exact_lru_order(self) -> bool:
        return True

    @property
    def may_refuse_writes(self) -> bool:
        return False

    def describe(self) -> str:
        return f"exact LRU, capacity {self.capacity}"

    def live_count_bound(self) -> int | None:
        return self.capacity

    def room(self) -> int:
        return self.capacity

    def evicts_to_insert(self, held: int) -> bool:
        return held >= self.capacity

    def may_have_evicted(self, held: int) -> int:
        # Every eviction is decided at an insert, where the model makes it itself.
        return 0


def _capacity(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"capacity must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"capacity must be at least 1, got {value}")


@dataclass(frozen=True)
class _CountBounded(EvictionProfile):
    """At most ``capacity`` live entries, nothing evicted below it, and a hit is not a use:
    the shared half of FIFO, ExpiryOrdered and RandomEviction."""

    capacity: int

    def __post_init__(self) -> None:
        _capacity(self.capacity)

    @property
    def evicts(self) -> bool:
        return True

    @property
    def exact_lru_order(self) -> bool:
        return False

    @property
    def may_refuse_writes(self) -> bool:
        return False

    @property
    def hit_is_use(self) -> bool:
        return False  # the model's order is write order

    def live_count_bound(self) -> int | None:
        return self.capacity

    def room(self) -> int:
        return self.capacity


@dataclass(frozen=True)
class _Counted(_CountBounded):
    """One evicted at each insert into a full cache, the victim named by the subclass's
    order: FIFO and ExpiryOrdered."""

    @property
    def names_victim(self) -> bool:
        return True

    def evicts_to_insert(self, held: int) -> bool:
        return held >= self.capacity

    def may_have_evicted(self, held: int) -> int:
        return 0  # every eviction is decided at an insert, where the model makes it


@dataclass(frozen=True)
class FIFO(_Counted):
    """At most ``capacity`` live entries; a full cache evicts the entry written first
    (``cachetools.FIFOCache``). A hit changes nothing; an overwrite is a new write, so the
    entry goes to the back. Expired entries make room first, as under every profile."""

    def describe(self) -> str:
        return f"FIFO, capacity {self.capacity}"


@dataclass(frozen=True)
class ExpiryOrdered(_Counted):
    """At most ``capacity`` live entries; a full cache evicts the entry that expires soonest
    (Redis's ``volatile-ttl``, done exactly). Entries without a TTL go after every entry
    with one; ties go in write order. A hit changes nothing."""

    def describe(self) -> str:
        return f"expiry-ordered, capacity {self.capacity}"

    def victim(self, candidates: Sequence[Candidate]) -> str:
        def soonest(indexed: tuple[int, Candidate]) -> tuple[bool, float, int]:
            index, (_, expires) = indexed
            return (expires is None, 0.0 if expires is None else expires, index)

        return min(enumerate(candidates), key=soonest)[1][0]


@dataclass(frozen=True)
class RandomEviction(_CountBounded):
    """At most ``capacity`` live entries; a full cache evicts any one of them, never the
    entry being written (``cachetools.RRCache``). Nothing goes while the cache holds fewer;
    which entry went, the model cannot know, so past the capacity it lets every entry but
    the last written be missing (never hold a wrong value, never come back)."""

    def describe(self) -> str:
        return f"random eviction, capacity {self.capacity}"

    def evicts_to_insert(self, held: int) -> bool:
        return False  # it never says which: may_have_evicted lets any but the newest go

    def may_have_evicted(self, held: int) -> int:
        return 0 if held <= self.capacity else held - 1


@dataclass(frozen=True)
class ApproximateLRU(EvictionProfile):
    """A weaker eviction promise, for backends that sample (Redis) or segment (memcached).

    * Nothing is evicted while the namespace holds at most ``holds_at_least`` live entries.
    * Past that, any entry may be evicted, except the ``protects_recent`` most recently used.
    * Never more than ``holds_at_most`` live entries (``None``: bounded by memory, not count).
    * ``refuses_when_full``: a write may instead be refused for want of memory. It raises
      :class:`~cachespec.backends.BackendFull`, and each key it touched then holds the new
      value or nothing, never the value it held before (a refused ``add`` changes nothing).
      Without it, such an error is a failure like any other.
    """

    holds_at_least: int
    protects_recent: int
    holds_at_most: int | None = None
    refuses_when_full: bool = False

    def __post_init__(self) -> None:
        for name in ("holds_at_least", "protects_recent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if self.protects_recent > self.holds_at_least:
            raise ValueError("protects_recent cannot exceed holds_at_least")
        if self.holds_at_most is not None and self.holds_at_most < self.holds_at_least:
            raise ValueError("holds_at_most cannot be below holds_at_least")
        if not isinstance(self.refuses_when_full, bool):
            raise TypeError(f"refuses_when_full must be a bool, got {self.refuses_when_full!r}")

    @property
    def evicts(self) -> bool:
        return True

    @property
    def exact_lru_order(self) -> bool:
        return False

    @property
    def may_refuse_writes(self) -> bool:
        return self.refuses_when_full

    def describe(self) -> str:
        most = "memory-bounded" if self.holds_at_most is None else f"at most {self.holds_at_most}"
        refuses = "; may refuse a write when full" if self.refuses_when_full else ""
        return (
            f"approximate LRU: keeps {self.holds_at_least}, protects the "
            f"{self.protects_recent} most recent, {most}{refuses}"
        )

    def live_count_bound(self) -> int | None:
        return self.holds_at_most

    def room(self) -> int:
        return self.holds_at_least

    def evicts_to_insert(self, held: int) -> bool:
        # It never promises which entry an insert evicts: may_have_evicted says what may go.
        return False

    def may_have_evicted(self, held: int) -> int:
        # Nothing goes below holds_at_least; the protects_recent most recently used never do.
        if held <= self.holds_at_least:
            return 0
        return held - self.protects_recent


SERVER_EVICTION: Final = ApproximateLRU(holds_at_least=0, protects_recent=0)
"""What a server that evicts by memory promises a namespace (Redis under ``maxmemory`` with
``allkeys-lru``): nothing about which entry goes, or when. Redis samples a few keys, and with
its 1 s LRU clock keys used within one second look equally idle; its eviction pool keeps
candidates scored in an earlier round, so even the key used last can go next; and an eviction
that runs over its time budget goes on from a timer, between later commands, so an entry
that hit a moment ago can be gone at the next read (seen here). How many entries fit
depends on their sizes and on the server's other memory (each client connection costs Redis
about 35 KiB).
What remains checkable: an entry is never served with a wrong value, and once seen gone it
stays gone until it is written again.
"""

MEMCACHED_EVICTION: Final = ApproximateLRU(
    holds_at_least=0, protects_recent=0, refuses_when_full=True
)
"""What memcached under memory pressure promises a namespace: what :data:`SERVER_EVICTION`
promises, and a write may be refused (``SERVER_ERROR out of memory storing object``).
memcached evicts per slab class, so a write of one size cannot take memory from items of
another. It evicts from the tail of its class's cold LRU. An item read twice is protected
(docs/facts.md saw it kept) once a background thread has moved it to the warm segment; until
then a write that needs room evicts it like any other (memcached's ``lru_pull_tail``), so
the protection depends on that thread's timing and is not promised. When no item of the
class can be freed (everything left sits in warm), it refuses the write. A refused ``set`` deletes
the key's old entry ("avoid stale data persisting in cache because we failed alloc", its
source says), so a key holds the new value or nothing: never the one before.
"""

REDIS_SERVER_EVICTION: Final = dataclasses.replace(SERVER_EVICTION, refuses_when_full=True)
"""What a plain Redis namespace with ``server_evicts`` declares: :data:`SERVER_EVICTION`,
and a write may be refused. Redis refuses a write (``OOM command not allowed``) when it
cannot free enough memory by evicting; it then keeps the key's old value, so the adapter
deletes the keys the write touched before it raises :class:`~cachespec.backends.BackendFull`
(see ``RedisBackend._refused`` in cachespec.backends.redis): each holds the new value or
nothing, never the old one."""
