"""Faults on the harness's Redis Cluster: a master killed or stopped, its replica promoted
(:mod:`cachespec.conformance.cluster_faults`). They apply where the backend declares a
failover (``Guarantees.failover``), and are "cannot check here" on any target but a cluster
the harness started."""

from __future__ import annotations

from cachespec.spec import Guarantees
from cachespec.spec.failover import declared_for

from ..checks import CannotCheck, Check, ThreadCheck
from ..cluster_faults import CLUSTER_WORKLOADS, run_cluster_trial
from ..target import ServerTarget, Target
from .base import PROPERTIES, Property
from .strategies import _strategies, guarded_fills


def declares_failover(g: Guarantees) -> str | None:
    return declared_for("faults.cluster_", g.failover) or guarded_fills(g)


def _cluster_fault(name: str, promise: str, *, needs_clock: bool = False) -> Property:
    workload = CLUSTER_WORKLOADS[name]

    def build(target: Target, g: Guarantees) -> Check:
        if not isinstance(target, ServerTarget):
            raise CannotCheck(
                f"faults.cluster_{name} fails a master of a cluster only the harness started: "
                f"{target.name} is not one (check `cachespec check redis-cluster`)"
            )
        strategies = _strategies(target)
        return ThreadCheck(lambda trial: run_cluster_trial(target, strategies, trial, workload))

    # Three trials: a stop, a kill, a kill that loses writes (failover.NODE_FAULTS); each
    # mutant in tests/cluster_mutants.py fails within them. ``cost``: seconds a trial
    # takes, halved (a server target counts double): a failover and a rejoin driven on the
    # harness's clock, calls waiting out the adapter's timeout on a stopped master
    # (measured: docs/cost.md, "Cluster faults").
    return Property(
        f"faults.cluster_{name}",
        promise,
        declares_failover,
        build,
        needs_clock=needs_clock,
        examples=3,
        cost=0.9,
    )


PROPERTIES.extend(
    [
        _cluster_fault(
            "calls",
            "while a master is stopped or killed and its replica promoted, every call returns "
            "or raises a CacheError within a bounded wait",
        ),
        # The efficacy twin of cluster_calls: a client that gives up passes that one.
        _cluster_fault(
            "recovers",
            "once a failed master's replica serves and the node is back, every kind of call "
            "goes through again",
        ),
        _cluster_fault(
            "keys",
            "through a failover, a read returns a miss or a value written under its key (a lost "
            "write reads as an older value or a miss, never another key's or a made-up one), "
            "and once the node is back, an acknowledged write reads back",
        ),
        _cluster_fault(
            "bounds",
            "through a failover, strategy reads return versions the source held, fresh after a "
            "write that returned once the node is back, and fresh past the fill TTL",
            needs_clock=True,
        ),
    ]
)
