"""The strategies over a backend: staleness bounds, their efficacy twins, and faults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from hypothesis.stateful import RuleBasedStateMachine

from cachespec.spec import Guarantees

from ..checks import Check, MachineCheck, ThreadCheck
from ..forged import check_forged_payload
from ..staleness import Plan, Strategies, build_staleness_machine
from ..target import Target
from .base import (
    PROPERTIES,
    Property,
)


# ------------------------------------------------------------------ staleness and faults
def guarded_fills(g: Guarantees) -> str | None:
    if g.compare_and_set:
        return None
    return (
        "the backend does not declare compare_and_set=True, which guarded fills, leases and "
        "write-through need"
    )


def caches_what_it_keeps(g: Guarantees) -> str | None:
    """The efficacy properties expect the one entry a strategy just cached to be read."""
    cannot = guarded_fills(g)
    if cannot is None and not g.eviction.keeps(1):
        cannot = (
            f"the backend declares {g.eviction.describe()}: even the entry just written may "
            "be evicted at once, so no read is promised a hit"
        )
    return cannot


def _strategies(target: Target) -> Strategies:
    chosen = target.strategies
    return chosen if isinstance(chosen, Strategies) else Strategies()


def _callers(
    prop_id: str,
    promise: str,
    build_machine: Callable[[str, Target, Strategies], type[RuleBasedStateMachine]],
    examples: int,
) -> Property:
    """A property run by a machine of scheduled callers over the strategies under test."""
    class_name = "".join(part.title() for part in prop_id.replace(".", "_").split("_"))

    def build(target: Target, g: Guarantees) -> Check:
        return MachineCheck(build_machine(class_name, target, _strategies(target)))

    return Property(
        prop_id, promise, guarded_fills, build, needs_clock=True, examples=examples, cost=0.035
    )


def _staleness(prop_id: str, promise: str, plan: Plan, examples: int) -> Property:
    def build(name: str, target: Target, strategies: Strategies) -> type[RuleBasedStateMachine]:
        return build_staleness_machine(name, target, plan, strategies)

    prop = _callers(prop_id, promise, build, examples)
    if plan.efficacy:
        return replace(prop, applies=caches_what_it_keeps)
    return prop


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
            30,
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
        Property(
            "faults.forged_payload",
            "a payload nobody signed reads as a counted miss and is never unpickled",
            guarded_fills,
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
