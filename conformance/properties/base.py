"""What a property is, when one applies (from the declared guarantees), and the registry
the area modules add theirs to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cachespec.backends import Backend
from cachespec.spec import Guarantees

from ..checks import Check
from ..pools import (
    LONG_TTLS,
)
from ..target import Target

Applies = Callable[[Guarantees], "str | None"]
# Given the strategies under test (``Target.strategies``; None: ours) and the backend's
# guarantees: why the property does not apply to that strategy there, or None.
StrategyApplies = Callable[[Any, Guarantees], "str | None"]


@dataclass(frozen=True)
class Property:
    id: str
    promise: str
    applies: Applies
    build: Callable[[Target, Guarantees], Check]
    # Moves the clock or writes short TTLs: skipped where the harness does not own the clock.
    needs_clock: bool = False
    # Examples (or trials) at the default size; a size scales it (runner.Budget). Set from
    # how many examples this property's mutants take to fail, with a margin (docs/cost.md).
    examples: int = 150
    # Seconds one example costs on memory:// at the default size, in one worker kept to
    # one core (measured 2026-12-05: docs/cost.md), for the forecast a run prints and for
    # handing the costliest properties out first.
    cost: float = 0.026
    # Runs real processes on the backend: skipped where no other process can reach it.
    needs_processes: bool = False
    # Kills, stops and restarts the server: only where the harness started it (faults.py).
    needs_server: bool = False
    # A strategy property: whether the strategy under test declares what it checks, and
    # whether the backend offers what that strategy needs (properties/strategies.py;
    # docs/design.md, "Strategy promises").
    strategy_applies: StrategyApplies | None = None
    # Its verdict needs no time to pass: where the harness cannot move the server's clock
    # (a user's server), it runs on a harness clock that stands still, with every TTL
    # outliving the example (conformance/stillclock.py; docs/design.md, "A still clock").
    still_clock: bool = False
    # Its own build runs it in real time where the server keeps its own time (a user's
    # server): staleness.ttl (conformance/rtstaleness.py; docs/design.md, "Real time").
    real_time: bool = False

    def not_applying(self, target: Target, g: Guarantees) -> str | None:
        """Why this property does not apply to ``target`` with ``g`` declared, or None."""
        reason = self.applies(g)
        if reason is None and self.strategy_applies is not None:
            reason = self.strategy_applies(target.strategies, g)
        return reason

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]


# ------------------------------------------------------------------------ applicability
def always(_: Guarantees) -> str | None:
    return None


# The eviction predicates ask the profile (cachespec.spec.eviction.EvictionProfile.skip_reason):
# a new profile decides them in its own class (docs/design.md, "Eviction profiles").
def exact_lru(g: Guarantees) -> str | None:
    return g.eviction.skip_reason("exact_lru")


def approximate_lru(g: Guarantees) -> str | None:
    return g.eviction.skip_reason("approximate_lru")


def bounded(g: Guarantees) -> str | None:
    return g.eviction.skip_reason("bounded")


def evicting(g: Guarantees) -> str | None:
    return g.eviction.skip_reason("evicting")


def expired_first(g: Guarantees) -> str | None:
    """Every profile that keeps a number of entries, whatever its order (the rule in
    cachespec.spec.eviction.EvictionProfile.expired_make_room), in a cache whose entries
    expire."""
    return expiring(g) or g.eviction.skip_reason("expired_first")


def declared_order(g: Guarantees) -> str | None:
    """A profile that names each victim by an order other than LRU (FIFO, expiry-ordered)."""
    return g.eviction.skip_reason("declared_order")


# The TTL predicates ask the declaration (Guarantees.ttl; docs/design.md, "TTL declarations").
def expiring(g: Guarantees) -> str | None:
    """Entries expire: per-entry TTLs or one TTL for the whole cache."""
    if g.ttl.expires:
        return None
    return f"the backend declares {g.ttl.describe()}: no entry expires"


def unexpiring_entries(g: Guarantees) -> str | None:
    """Some entries are written without expiry: per-entry TTLs (``ttl=None``) or none at all."""
    if g.ttl.per_entry or not g.ttl.expires:
        return None
    return f"the backend declares {g.ttl.describe()}: every entry expires"


def per_entry_ttls(g: Guarantees) -> str | None:
    if g.ttl.per_entry:
        return None
    return f"the backend declares {g.ttl.describe()}, not a TTL per entry"


def size_limited(g: Guarantees) -> str | None:
    if g.max_value_size is not None:
        return None
    return "the backend declares no value size limit (max_value_size=None)"


def thread_safe(g: Guarantees) -> str | None:
    return None if g.thread_safe else "the backend does not declare thread_safe=True"


def long_ttls_allowed(g: Guarantees) -> str | None:
    not_per_entry = per_entry_ttls(g)
    if not_per_entry is not None:
        return not_per_entry
    if g.max_ttl is None or g.max_ttl >= max(LONG_TTLS):
        return None
    return f"the backend declares max_ttl={g.max_ttl}s"


def offers_add(g: Guarantees) -> str | None:
    """The properties about ``add``; a backend may do without it (Guarantees.add)."""
    return None if g.add else "the backend declares add=False: it does not offer add"


def atomic_ops(g: Guarantees) -> str | None:
    if g.compare_and_set:
        return None
    return "the backend does not declare compare_and_set=True"


def fresh_backend(target: Target) -> tuple[Any, Backend]:
    """A session of ``target`` and its main backend, for the checks that are not machines."""
    session = target.session()
    return session, session.backend()


# Every property, in the order its module registered it (sorted by id on import).
PROPERTIES: list[Property] = []
