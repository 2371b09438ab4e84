"""What a backend promises, in terms the model can check.

A backend declares a :class:`Guarantees`; the conformance suite checks every property the
declaration implies and reports the others as skipped, with the reason. Defaults are
conservative where a capability is optional (no thread safety, no eviction profile, no item
size limit are assumed unless declared) and exact where the contract itself is exact (TTLs
are checked to the instant unless a resolution is declared).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class NoEviction:
    """The backend never evicts a live entry (it is unbounded, or bounded far above use)."""

    def describe(self) -> str:
        return "no eviction"

    def keeps(self, entries: int) -> bool:
        """Whether ``entries`` live entries, all just written, are all kept until used."""
        return True


@dataclass(frozen=True)
class ExactLRU:
    """At most ``capacity`` live entries; a full cache evicts the least recently used one.

    A hit (``get``, and each hit of ``get_many``) and a write (``set``, ``set_many``, a
    successful ``add``) make an entry the most recently used; a failed ``add`` does not. An
    expired entry never takes a place that a live one needs: it is dropped first.
    """

    capacity: int

    def __post_init__(self) -> None:
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int):
            raise TypeError(f"capacity must be an int, got {self.capacity!r}")
        if self.capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {self.capacity}")

    def describe(self) -> str:
        return f"exact LRU, capacity {self.capacity}"

    def keeps(self, entries: int) -> bool:
        return entries <= self.capacity


@dataclass(frozen=True)
class ApproximateLRU:
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

    def keeps(self, entries: int) -> bool:
        # Nothing goes below holds_at_least; the protects_recent most recently used never do.
        return entries <= max(self.holds_at_least, self.protects_recent)

    def describe(self) -> str:
        most = "memory-bounded" if self.holds_at_most is None else f"at most {self.holds_at_most}"
        refuses = "; may refuse a write when full" if self.refuses_when_full else ""
        return (
            f"approximate LRU: keeps {self.holds_at_least}, protects the "
            f"{self.protects_recent} most recent, {most}{refuses}"
        )


EvictionProfile = NoEviction | ExactLRU | ApproximateLRU

SERVER_EVICTION = ApproximateLRU(holds_at_least=0, protects_recent=0)
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

MEMCACHED_EVICTION = ApproximateLRU(holds_at_least=0, protects_recent=0, refuses_when_full=True)
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


@dataclass(frozen=True)
class Guarantees:
    """A backend's declared promises.

    ttl_resolution
        An entry may outlive its TTL by up to this many seconds; it never dies early. The
        model allows both outcomes only in ``[expires, expires + ttl_resolution)``.
    eviction
        The eviction profile (:class:`NoEviction`, :class:`ExactLRU`, :class:`ApproximateLRU`).
    max_value_size
        The largest value in bytes the backend stores; a larger one raises
        :class:`~cachespec.backends.ValueTooLarge` and leaves the old entry alone.
    max_ttl
        The longest TTL accepted, in seconds (``None``: any finite TTL).
    thread_safe
        The backend may be shared between threads; ``add`` is atomic across them.
    compare_and_set
        The backend offers the atomic ``compare_and_set`` and ``compare_and_delete``.
    clear
        The backend offers ``clear`` (the contract's default). ``False``: ``clear`` raises
        :class:`~cachespec.backends.Unsupported` and changes nothing; the suite skips the
        properties about ``clear``, with the reason, and leaves it out of the others. A
        namespace that does without it can be cheaper (memcached: one key per read).
    clock_granularity
        The backend orders some calls by its own clock: two calls less than this many seconds
        apart are a tie it may resolve either way (a ``clear`` that hides the values written
        strictly before its timestamp ties with a ``set`` at the same instant). The harness
        then moves its clock this much before each call of the operation machines, as real
        time does between two calls. ``0`` (the default): calls at one instant are ordered
        as they are made.
    opt_out
        Property id -> reason: properties the backend does not claim. Reported as skipped.
    expected_failures
        Property id -> reason: properties known to fail. They still run; a pass is reported
        as a failure ("declared as failing, but held"), as strict xfail would.
    """

    ttl_resolution: float = 0.0
    eviction: EvictionProfile = field(default_factory=NoEviction)
    max_value_size: int | None = None
    max_ttl: float | None = None
    thread_safe: bool = False
    compare_and_set: bool = False
    clear: bool = True
    clock_granularity: float = 0.0
    opt_out: Mapping[str, str] = field(default_factory=dict)
    expected_failures: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ttl_resolution) and self.ttl_resolution >= 0):
            raise ValueError(f"ttl_resolution must be >= 0 seconds, got {self.ttl_resolution!r}")
        granularity = self.clock_granularity
        if isinstance(granularity, bool) or not isinstance(granularity, (int, float)):
            raise TypeError(f"clock_granularity must be seconds, got {granularity!r}")
        if not (math.isfinite(granularity) and granularity >= 0):
            raise ValueError(
                f"clock_granularity must be >= 0 seconds, got {self.clock_granularity!r}"
            )
        if not isinstance(self.eviction, (NoEviction, ExactLRU, ApproximateLRU)):
            raise TypeError(f"eviction must be an eviction profile, got {self.eviction!r}")
        if self.max_value_size is not None and self.max_value_size < 0:
            raise ValueError(f"max_value_size must be >= 0, got {self.max_value_size}")
        if self.max_ttl is not None and not self.max_ttl > 0:
            raise ValueError(f"max_ttl must be > 0, got {self.max_ttl}")
        for name in ("thread_safe", "compare_and_set", "clear"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        both = set(self.opt_out) & set(self.expected_failures)
        if both:
            raise ValueError(f"a property cannot be both opted out and expected to fail: {both}")

    def describe(self) -> str:
        parts = [
            "exact TTLs" if self.ttl_resolution == 0 else f"TTL resolution {self.ttl_resolution}s",
            self.eviction.describe(),
            "no value size limit"
            if self.max_value_size is None
            else f"values up to {self.max_value_size} bytes",
            "thread-safe" if self.thread_safe else "not declared thread-safe",
        ]
        if not self.clear:
            parts.append("no clear")
        if self.clock_granularity:
            parts.append(f"calls ordered by a {self.clock_granularity}s clock")
        return "; ".join(parts)
