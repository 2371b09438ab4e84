"""Faults on a server the harness started: kill -9, SIGSTOP/SIGCONT and restarts mid-run
(:mod:`cachespec.conformance.faults`). Each is "cannot check here" on any other target."""

from __future__ import annotations

from cachespec.spec import Guarantees

from ..checks import Check, ThreadCheck
from ..faults import WORKLOADS, run_trial
from ..target import ServerTarget, Target, TargetError
from .base import PROPERTIES, Property
from .strategies import _strategies, guarded_fills


def _server_fault(
    name: str, promise: str, *, needs_clock: bool = False, cost: float = 0.22
) -> Property:
    workload = WORKLOADS[name]

    def build(target: Target, g: Guarantees) -> Check:
        if not isinstance(target, ServerTarget):  # needs_server keeps the others out
            raise TargetError(f"faults.server_{name} needs a server the harness started")
        strategies = _strategies(target)
        return ThreadCheck(lambda trial: run_trial(target, strategies, trial, workload))

    # Three trials: a stop, a kill and a restart (faults.FAULTS). Each mutant in tests/
    # fails the first trial, the stop (docs/design.md, "Faults on a harness server").
    # ``cost``: seconds a trial takes on a server, halved (a server target counts double);
    # mostly calls waiting out the adapter's timeout on a stopped server, not CPU.
    return Property(
        f"faults.server_{name}",
        promise,
        guarded_fills,
        build,
        needs_clock=needs_clock,
        needs_server=True,
        examples=3,
        cost=cost,
    )


PROPERTIES.extend(
    [
        _server_fault(
            "calls",
            "through kill -9, SIGSTOP and a restart of the server, every call returns or "
            "raises a CacheError within a bounded wait",
            cost=0.4,  # every kind of call, each waiting out the timeout on a stopped server
        ),
        # The efficacy twin of server_calls: a client that gives up passes that one.
        _server_fault(
            "recovers",
            "once the server is back from kill -9, SIGSTOP or a restart, every kind of call "
            "goes through again",
        ),
        _server_fault(
            "cache_aside",
            "through a server outage, cache-aside reads return the source's value or one "
            "the bounds allow, never older",
            needs_clock=True,
        ),
        _server_fault(
            "bounds",
            "through a server outage, a read after a write-through or invalidation returned "
            "is fresh, and after one that raised, stale at most the fill TTL",
            needs_clock=True,
        ),
        _server_fault(
            "keys",
            "through a server outage, no read returns a value written under another key",
        ),
        _server_fault(
            "connections",
            "after a server outage the client holds no more connections than before it, "
            "and none once closed (counted on the server)",
        ),
    ]
)
