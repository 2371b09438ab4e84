"""The strategies over a backend: staleness bounds, their efficacy twins, and faults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from hypothesis.stateful import RuleBasedStateMachine

from cachespec.spec import Guarantees
from cachespec.spec.promises import Promises

from .. import rtstaleness, stillclock
from ..checks import Check, MachineCheck, ThreadCheck
from ..forged import check_forged_payload
from ..staleness import Plan, Strategies, build_staleness_machine
from ..target import Target
from .base import (
    PROPERTIES,
    Property,
    StrategyApplies,
    always,
)


# ------------------------------------------------------------------ staleness and faults
def guarded_fills(g: Guarantees) -> str | None:
    """The backend offers what our Cache's guarded fills and leases need (the server fault
    properties, which run ours whatever the strategy)."""
    if g.compare_and_set:
        return None
    return (
        "the backend does not declare compare_and_set=True, which guarded fills, leases and "
        "write-through need"
    )


def keeps_what_it_caches(g: Guarantees) -> str | None:
    """The efficacy properties expect the one entry a strategy just cached to be read."""
    if not g.eviction.keeps(1):
        return (
            f"the backend declares {g.eviction.describe()}: even the entry just written may "
            "be evicted at once, so no read is promised a hit"
        )
    return None


# ------------------------------------------- what the strategy under test needs, promises
# The parts of a strategy a property runs: Strategies' methods, and two mechanisms of our
# Cache. What ours needs of the backend is ours to say; what a third party's own code needs
# is its declaration's (Promises.needs_compare_and_set; docs/design.md, "Strategy promises").
OURS_NEED = {
    "read": "our guarded read (a fill lease by add, then a compare-and-set fill)",
    "write_through": "our write-through (copies moved forward by compare_and_set, into an "
    "absent key under a lease)",
    "leases": "fill leases (taken by add, released by compare_and_delete)",
    "early_refresh": "our early refresh (which replaces an entry by compare_and_set)",
}
# The method that brings each part: our Cache's mechanisms come with the read that uses
# them (leases) or the cache it builds (early refresh).
_METHOD = {"leases": "read", "early_refresh": "make_cache"}
# Promises a property checks, by field: the words a skip gives.
_PROMISE = {
    "single_flight": "single-flight (Promises(single_flight=False)): duplicate computes are "
    "no failure",
    "leases": "fill leases with one owner (Promises(leases=False))",
    "early_refresh": "early refresh (Promises(early_refresh=False))",
}


def _missing(g: Guarantees, *, ours: bool, part: str, declared: Promises) -> str | None:
    """The backend operation ``part`` needs and ``g`` does not offer, if any."""
    if ours:
        wants_compare = wants_add = part in OURS_NEED
        wants_add = wants_add and part != "early_refresh"  # it claims by compare_and_set
    else:
        wants_compare, wants_add = declared.needs_compare_and_set, declared.needs_add
    if wants_compare and not g.compare_and_set:
        return "compare_and_set"
    if wants_add and not g.add:
        return "add"
    return None


def theirs(strategies: Strategies, part: str) -> bool:
    """Whether the strategy under test brings its own ``part`` instead of inheriting ours."""
    method = _METHOD.get(part, part)
    return getattr(type(strategies), method) is not getattr(Strategies, method)


def needs(
    *parts: str, promised: tuple[str, ...] = ()
) -> Callable[[Strategies | None, Guarantees], str | None]:
    """A property's strategy gate: it runs ``parts`` of the strategy under test and checks
    the ``promised`` fields of its declaration."""

    def gate(chosen: Strategies | None, g: Guarantees) -> str | None:
        strategies = chosen if isinstance(chosen, Strategies) else Strategies()
        declared = strategies.promises
        for promise in promised:
            if not getattr(declared, promise):
                return f"the strategy {strategies.name!r} does not promise {_PROMISE[promise]}"
        for part in parts:
            missing = _missing(g, ours=not theirs(strategies, part), part=part, declared=declared)
            if missing is None:
                continue
            if theirs(strategies, part):
                return (
                    f"the strategy {strategies.name!r} declares that it needs {missing} "
                    f"(Promises(needs_{missing}=True), the default); the backend does not "
                    f"declare {missing}=True"
                )
            return (
                f"runs {OURS_NEED[part]}, which needs {missing}; the backend does not declare "
                f"{missing}=True"
            )
        return None

    return gate


def _strategies(target: Target) -> Strategies:
    chosen = target.strategies
    return chosen if isinstance(chosen, Strategies) else Strategies()


def _callers(
    prop_id: str,
    promise: str,
    build_machine: Callable[[str, Target, Strategies], type[RuleBasedStateMachine]],
    examples: int,
    gate: StrategyApplies,
) -> Property:
    """A property run by a machine of scheduled callers over the strategies under test."""
    class_name = "".join(part.title() for part in prop_id.replace(".", "_").split("_"))

    def build(target: Target, g: Guarantees) -> Check:
        machine = build_machine(class_name, target, _strategies(target))
        if stillclock.stands_still(target):
            return stillclock.StillMachineCheck(machine)
        return MachineCheck(machine)

    return Property(
        prop_id,
        promise,
        always,
        build,
        needs_clock=True,
        examples=examples,
        cost=0.035,
        strategy_applies=gate,
    )


# The strategy's method each writer of a staleness plan runs, beside its read.
_WRITER_PART = {
    "source": (),
    "invalidate": ("write_and_invalidate",),
    "write_through": ("write_through",),
    "event": ("handle_event",),
}


def _staleness(prop_id: str, promise: str, plan: Plan, examples: int) -> Property:
    def build(name: str, target: Target, strategies: Strategies) -> type[RuleBasedStateMachine]:
        return build_staleness_machine(name, target, plan, strategies)

    gate = needs("read", *_WRITER_PART[plan.writer])
    prop = _callers(prop_id, promise, build, examples, gate)
    # Bounds of 0 (after an invalidation, a write, an event) and efficacy need no time to
    # pass: they run on a still clock where the harness cannot move the server's. TTL only
    # is about nothing else: it runs there in real time (rtstaleness.py; docs/design.md,
    # "A still clock", "Real time").
    if plan.writer == "source":
        prop = in_real_time_there(prop, plan, rtstaleness)
    else:
        prop = replace(prop, still_clock=True)
    if plan.efficacy:
        return replace(prop, applies=keeps_what_it_caches)
    return prop


class RealTimeKind(Protocol):
    """A module that runs some callers' properties in real time (rtstaleness.py,
    rtleases.py): whether it runs ``prop_id`` on ``target``, and the check it builds."""

    def runs_here(self, prop_id: str, target: Target) -> bool: ...

    def build(
        self, name: str, target: Target, plan: Any, strategies: Strategies, g: Guarantees
    ) -> Check: ...


def in_real_time_there(prop: Property, plan: object, kind: RealTimeKind) -> Property:
    """``prop``, but on a server that keeps its own time ``kind`` runs it in real time
    (docs/design.md, "Real time")."""
    name = "".join(part.title() for part in prop.id.replace(".", "_").split("_"))
    on_harness_clock = prop.build

    def real_time_there(target: Target, g: Guarantees) -> Check:
        if kind.runs_here(prop.id, target):
            return kind.build(name, target, plan, _strategies(target), g)
        return on_harness_clock(target, g)

    return replace(prop, build=real_time_there, real_time=True)


def _forged_payload(target: Target, g: Guarantees) -> Check:
    strategies = _strategies(target)
    return ThreadCheck(lambda trial: check_forged_payload(target, strategies, trial))


PROPERTIES.extend(
    [
        _staleness(
            "staleness.ttl",
            "with TTL only, a read is at most the TTL (plus the resolution) stale",
            Plan("source"),
            70,
        ),
        _staleness(
            "staleness.invalidation",
            "a read that starts after an invalidation returned is fresh",
            Plan("invalidate", sequential=True),
            30,
        ),
        _staleness(
            "staleness.cache_aside",
            "cache-aside reads are never stale after an invalidation, whatever the "
            "interleaving (no stale-set race)",
            Plan("invalidate"),
            90,
        ),
        _staleness(
            "staleness.write_through",
            "a read that starts after a write-through returned sees it or newer, whatever "
            "the interleaving",
            Plan("write_through"),
            150,
        ),
        _staleness(
            "staleness.events",
            "event invalidation: fresh once an event is handled; stale at most the "
            "safety-net TTL when one is lost",
            Plan("event"),
            # events_miss_the_key (the bound of 0 after an event) needed up to 45 examples
            # over 10 seeds on memory://, where time rules thin out its reads.
            60,
        ),
        _staleness(
            "faults.cache_aside",
            "when the cache fails, cache-aside reads fall through to the source and the "
            "bounds still hold",
            Plan("invalidate", cache_faults=True),
            30,
        ),
        _staleness(
            "faults.write_through",
            "when the cache fails under write-through, the staleness bound still holds",
            Plan("write_through", cache_faults=True),
            30,
        ),
        _staleness(
            "faults.source",
            "when the source fails, nothing it never held reaches the cache",
            Plan("invalidate", source_faults=True),
            30,
        ),
        # Its unguarded Cache needs nothing of the backend: only the serializer is checked.
        Property(
            "faults.forged_payload",
            "a payload nobody signed reads as a counted miss and is never unpickled",
            always,
            _forged_payload,
            examples=20,
            cost=0.002,
        ),
        # Efficacy: the twins of the staleness properties. A strategy that is safe because
        # it never caches passes those; it fails these (docs/design.md, "Efficacy").
        _staleness(
            "efficacy.cache_aside",
            "after a cache-aside read, the reads of that key hit until a write, an "
            "invalidation or the TTL, without calling the source",
            Plan("invalidate", sequential=True, efficacy=True),
            30,
        ),
        _staleness(
            "efficacy.write_through",
            "after a write-through returned, reads of that key hit, without calling the "
            "source, until a later write or the TTL (an absent key too)",
            Plan("write_through", sequential=True, efficacy=True),
            30,
        ),
        _staleness(
            "efficacy.events",
            "after a change event is handled, the next read refills once and the reads "
            "after it hit, until the next event or the TTL",
            Plan("event", sequential=True, efficacy=True),
            30,
        ),
    ]
)
