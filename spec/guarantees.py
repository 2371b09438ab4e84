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
from typing import ClassVar

from .eviction import EvictionProfile, NoEviction
from .failover import AsyncReplicaFailover, Failover, RingRemap
from .ttl import validate_ttl

# ---------------------------------------------------------------- what a TTL can be
# A backend declares how its entries expire (docs/design.md, "TTL declarations"). The suite
# writes the TTLs the declaration allows, the model gives each entry the lifetime it
# promises, and the TTL properties apply as it says.


@dataclass(frozen=True)
class PerEntry:
    """Each write's ``ttl`` argument is its entry's TTL (``None``: no expiry). The
    contract's own reading, and the default."""

    expires: ClassVar[bool] = True
    per_entry: ClassVar[bool] = True

    def lifetime(self, ttl: float | None) -> float | None:
        """The TTL the entry a write with ``ttl`` makes lives by."""
        return ttl

    def describe(self) -> str:
        return "per-entry TTLs"


@dataclass(frozen=True)
class CacheWide:
    """One TTL for the whole cache (``cachetools.TTLCache(ttl=...)``): every entry lives
    ``seconds`` from its last write, an overwrite included. The suite writes only
    ``ttl=None`` ("the cache's TTL"); what the backend does with another TTL argument is
    its own (it validates it with ``validate_ttl``, then ignores or refuses it)."""

    seconds: float
    expires: ClassVar[bool] = True
    per_entry: ClassVar[bool] = False

    def __post_init__(self) -> None:
        # The same rule as a write's TTL: a positive finite number of seconds.
        object.__setattr__(self, "seconds", validate_ttl(self.seconds))

    def lifetime(self, ttl: float | None) -> float | None:
        return self.seconds

    def describe(self) -> str:
        return f"one TTL for the whole cache ({self.seconds:g}s)"


@dataclass(frozen=True)
class NoExpiry:
    """No entry ever expires (a plain LRU with no TTL at all). The suite writes only
    ``ttl=None``; a TTL argument is the backend's to ignore or refuse."""

    expires: ClassVar[bool] = False
    per_entry: ClassVar[bool] = False

    def lifetime(self, ttl: float | None) -> float | None:
        return None

    def describe(self) -> str:
        return "no expiry"


TTLDeclaration = PerEntry | CacheWide | NoExpiry


@dataclass(frozen=True)
class Guarantees:
    """A backend's declared promises.

    ttl
        How entries expire: :class:`PerEntry` (each write's ``ttl``, the default),
        :class:`CacheWide` (one TTL for every entry) or :class:`NoExpiry`. The machines
        write the TTLs it allows, and the TTL properties apply as it says (``ttl.never``
        needs entries without expiry, ``ttl.long`` per-entry TTLs, ``ttl.expires`` any
        expiry), each skipped with the reason otherwise.
    ttl_resolution
        An entry may outlive its TTL by up to this many seconds; it never dies early. The
        model allows both outcomes only in ``[expires, expires + ttl_resolution)``.
    eviction
        The eviction profile: an :class:`~cachespec.spec.eviction.EvictionProfile`
        (:class:`NoEviction`, :class:`ExactLRU`, :class:`ApproximateLRU`, or a new one).
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
    clear_store_wide
        ``clear`` empties every namespace of the store, not only its own (a library whose
        namespaces are key prefixes over one dict, and whose ``clear`` empties the dict).
        ``ops.clear_namespace`` then checks that, instead of failing it: a clear in one
        namespace must leave the other empty too (docs/design.md, "Strategy promises").
    add
        The backend offers ``add`` (the contract's default). ``False``: ``add`` raises
        :class:`~cachespec.backends.Unsupported` and writes nothing; the suite skips the
        properties about ``add`` (``ops.add``, ``ops.add_atomic``), with the reason, leaves
        it out of the others' programs and argument checks, and runs over such a backend
        only the strategies that need no ``add`` (ours takes its fill leases with it:
        docs/design.md, "A backend without add").
    clock_granularity
        The backend orders some calls by its own clock: two calls less than this many seconds
        apart are a tie it may resolve either way (a ``clear`` that hides the values written
        strictly before its timestamp ties with a ``set`` at the same instant). The harness
        then moves its clock this much before each call of the operation machines, as real
        time does between two calls. ``0`` (the default): calls at one instant are ordered
        as they are made.
    failover
        How a node's failure reaches the callers of a backend of several nodes: ``None``
        (the default: one server, or nothing declared), :class:`AsyncReplicaFailover`
        (:mod:`.failover`: a write acknowledged just before a failover may be lost, and
        nothing worse happens; checked by ``faults.cluster_*``) or :class:`RingRemap` (a
        failed node's keys go to the others and any change of the ring empties the
        namespace; checked by ``faults.ring_*``). Reported; the fault properties of the
        other kinds do not apply.
    opt_out
        Property id -> reason: properties the backend does not claim. Reported as skipped.
    expected_failures
        Property id -> reason: properties known to fail. They still run; a pass is reported
        as a failure ("declared as failing, but held"), as strict xfail would.
    """

    ttl_resolution: float = 0.0
    ttl: TTLDeclaration = field(default_factory=PerEntry)
    eviction: EvictionProfile = field(default_factory=NoEviction)
    max_value_size: int | None = None
    max_ttl: float | None = None
    thread_safe: bool = False
    compare_and_set: bool = False
    clear: bool = True
    clear_store_wide: bool = False
    add: bool = True
    clock_granularity: float = 0.0
    failover: Failover | None = None
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
        if not isinstance(self.ttl, (PerEntry, CacheWide, NoExpiry)):
            raise TypeError(
                f"ttl must be PerEntry(), CacheWide(seconds) or NoExpiry(), got {self.ttl!r}"
            )
        if not isinstance(self.eviction, EvictionProfile):
            raise TypeError(f"eviction must be an eviction profile, got {self.eviction!r}")
        if self.max_value_size is not None and self.max_value_size < 0:
            raise ValueError(f"max_value_size must be >= 0, got {self.max_value_size}")
        if self.max_ttl is not None and not self.max_ttl > 0:
            raise ValueError(f"max_ttl must be > 0, got {self.max_ttl}")
        for name in ("thread_safe", "compare_and_set", "clear", "clear_store_wide", "add"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.failover is not None and not isinstance(
            self.failover, (AsyncReplicaFailover, RingRemap)
        ):
            raise TypeError(
                "failover must be None, AsyncReplicaFailover() or RingRemap(), "
                f"got {self.failover!r}"
            )
        both = set(self.opt_out) & set(self.expected_failures)
        if both:
            raise ValueError(f"a property cannot be both opted out and expected to fail: {both}")

    def describe(self) -> str:
        parts = [
            self._describe_ttl(),
            self.eviction.describe(),
            "no value size limit"
            if self.max_value_size is None
            else f"values up to {self.max_value_size} bytes",
            "thread-safe" if self.thread_safe else "not declared thread-safe",
        ]
        if not self.clear:
            parts.append("no clear")
        elif self.clear_store_wide:
            parts.append("clear empties the whole store")
        if not self.add:
            parts.append("no add")
        if self.clock_granularity:
            parts.append(f"calls ordered by a {self.clock_granularity}s clock")
        if self.failover is not None:
            parts.append(self.failover.describe())
        return "; ".join(parts)

    def _describe_ttl(self) -> str:
        if not self.ttl.expires:
            return self.ttl.describe()
        if self.ttl.per_entry:  # the words the header always had
            if self.ttl_resolution == 0:
                return "exact TTLs"
            return f"TTL resolution {self.ttl_resolution}s"
        precision = "exact" if self.ttl_resolution == 0 else f"resolution {self.ttl_resolution}s"
        return f"{self.ttl.describe()}, {precision}"
