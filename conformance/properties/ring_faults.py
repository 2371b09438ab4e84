"""Faults on one node of a memcached ring the harness started: kill -9, SIGSTOP/SIGCONT and
restarts of a node mid-run, and the node's return (:mod:`cachespec.conformance.ring_faults`).
They apply where the backend declares a ring (``Guarantees.failover = RingRemap()``), and are
"cannot check here" on any target but a ring the harness started."""

from __future__ import annotations

from cachespec.spec import Guarantees
from cachespec.spec.failover import declared_for

from ..checks import CannotCheck, Check, ThreadCheck
from ..ring_faults import RING_WORKLOADS, run_ring_trial
from ..servers.ring import MEMCACHED_RING
from ..target import ServerTarget, Target
from .base import PROPERTIES, Property
from .strategies import _strategies, guarded_fills


def declares_ring(g: Guarantees) -> str | None:
    """Ring faults apply to a backend that declares a ring (a single server declares no
    failover: its check skips them as not declared, rather than as something it cannot
    check)."""
    return declared_for("faults.ring_", g.failover) or guarded_fills(g)


def _ring_fault(
    name: str, promise: str, *, needs_clock: bool = True, cost: float = 0.3
) -> Property:
    workload = RING_WORKLOADS[name]

    def build(target: Target, g: Guarantees) -> Check:
        if not (isinstance(target, ServerTarget) and target.server_kind is MEMCACHED_RING):
            raise CannotCheck(
                f"stops, kills and brings back one node of a memcached ring the harness "
                f"started: {target.name} is not one (check `cachespec check memcached-ring`)"
            )
        strategies = _strategies(target)
        return ThreadCheck(lambda trial: run_ring_trial(target, strategies, trial, workload))

    # Three trials: a stop, a kill and a restart of one node (faults.FAULTS); each mutant in
    # tests/ring_mutants.py fails the first, the stop, where the node keeps its entries.
    # needs_clock: the node comes back when the trial moves the harness's clock.
    return Property(
        f"faults.ring_{name}",
        promise,
        declares_ring,
        build,
        needs_clock=needs_clock,
        examples=3,
        cost=cost,
    )


PROPERTIES.extend(
    [
        _ring_fault(
            "calls",
            "through kill -9, SIGSTOP and a restart of one ring node, and its return, every "
            "call returns or raises a CacheError within a bounded wait",
        ),
        # The efficacy twin of ring_calls: a client that gives up passes that one.
        _ring_fault(
            "recovers",
            "once a ring node is back from kill -9, SIGSTOP or a restart, every kind of call "
            "goes through again, and keys that hash to it are stored there",
        ),
        _ring_fault(
            "keys",
            "through a ring node's outage and return, no read returns a value written under "
            "another key",
        ),
        _ring_fault(
            "bounds",
            "through a ring node's outage and return, a read after a write-through or "
            "invalidation returned is fresh, and past the fill TTL none is stale",
        ),
        _ring_fault(
            "returning",
            "a ring node that comes back never serves an entry superseded while it was away, "
            "to the client that dropped it or to one that opens later",
        ),
        _ring_fault(
            "clear",
            "a clear that returned while the counter's node was away is not undone when the "
            "node comes back",
        ),
    ]
)
