"""Single-flight and early refresh: one compute per miss, leases, XFetch."""

from __future__ import annotations

from dataclasses import replace

from hypothesis.stateful import RuleBasedStateMachine

from cachespec.spec import Guarantees

from .. import rthangs, rtleases, rtrefresh
from ..checks import BatchCheck, Check, GivenCheck, ThreadCheck
from ..flights import (
    HERD,
    FlightPlan,
    build_flight_machine,
    check_herd,
)
from ..processes import PROCESSES, THREADS_PER_PROCESS, check_processes
from ..refresh import RefreshMachine, RevalidateMachine, SteadyReadsMachine, build_refresh_machine
from ..staleness import Strategies
from ..target import Target
from ..xfetch import XFETCH_CASES, check_xfetch
from .base import (
    PROPERTIES,
    Property,
    StrategyApplies,
    always,
    thread_safe,
)
from .strategies import _callers, _strategies, in_real_time_there, keeps_what_it_caches, needs

# What each kind of property runs of the strategy under test, and the promise it checks
# (properties/strategies.py, ``needs``; docs/design.md, "Strategy promises").
SINGLE_FLIGHT = needs("read", promised=("single_flight",))
HANGS = needs("read")  # every caller returns: promised by every strategy
LEASES = needs("read", "leases", promised=("leases",))
REFRESH = needs("read", "early_refresh", promised=("early_refresh",))


# ------------------------------------------------------------ single-flight, early refresh
def _flights(
    prop_id: str, promise: str, plan: FlightPlan, examples: int, gate: StrategyApplies
) -> Property:
    """A flight property: in real time where the harness cannot move the server's clock
    if time is its subject, on a still clock there otherwise (docs/design.md, "A still
    clock")."""

    def build(name: str, target: Target, strategies: Strategies) -> type[RuleBasedStateMachine]:
        return build_flight_machine(name, target, plan, strategies)

    prop = _callers(prop_id, promise, build, examples, gate)
    if rtleases.runs_in_real_time(prop_id):
        # A lease's expiry runs in real time where the server keeps its own time
        # (rtleases.py; docs/design.md, "Leases in real time").
        return in_real_time_there(prop, plan, rtleases)
    if rthangs.runs_in_real_time(prop_id):
        # So does a wait only time ends: there time passes for real, and is measured
        # (rthangs.py; docs/design.md, "Hangs in real time").
        return in_real_time_there(prop, plan, rthangs)
    return replace(prop, still_clock=True)


def _refresh(
    prop_id: str,
    promise: str,
    kind: type[RefreshMachine],
    examples: int,
    cost: float,
) -> Property:
    """An efficacy property of early refresh (conformance/refresh.py): like the other
    efficacy twins, it expects the entry just written to be read. Where the server keeps
    its own time it runs in real time (rtrefresh.py; docs/design.md, "Early refresh in real
    time")."""

    def build(name: str, target: Target, strategies: Strategies) -> type[RuleBasedStateMachine]:
        return build_refresh_machine(name, target, strategies, kind)

    prop = in_real_time_there(_callers(prop_id, promise, build, examples, REFRESH), kind, rtrefresh)
    return replace(prop, applies=keeps_what_it_caches, cost=cost)


def _herd(target: Target, g: Guarantees) -> Check:
    strategies = _strategies(target)
    # Each trial costs a quarter second: the first compute waits for a second one that
    # must never come.
    return ThreadCheck(lambda trial: check_herd(target, strategies, trial))


def _processes(target: Target, g: Guarantees) -> Check:
    strategies = _strategies(target)
    # One set of processes runs every trial (starting interpreters is the cost), each
    # trial paying PROCESS_BESIDE once.
    return BatchCheck(lambda trials: check_processes(target, strategies, trials))


def _xfetch(target: Target, g: Guarantees) -> Check:
    strategies = _strategies(target)
    return GivenCheck(
        "early_refresh_xfetch", XFETCH_CASES, lambda case: check_xfetch(target, strategies, case)
    )


PROPERTIES.extend(
    [
        _flights(
            "single_flight.one_compute",
            "concurrent misses on a key in one process run one compute; the next miss "
            "after it starts a new one",
            FlightPlan("one_compute"),
            30,
            SINGLE_FLIGHT,
        ),
        _flights(
            "single_flight.shared_outcome",
            "every caller that waited gets the leader's value or the leader's very exception",
            FlightPlan("shared_outcome"),
            30,
            SINGLE_FLIGHT,
        ),
        _flights(
            "single_flight.no_hang",
            "every caller returns (a bounded wait): a failed compute never leaves the key locked",
            FlightPlan("no_hang"),
            60,
            HANGS,
        ),
        _flights(
            "single_flight.one_owner",
            "a fill lease has one owner at a time on the harness's clock; only it releases it",
            FlightPlan("one_owner", processes=2, moves_time=True, outlives_leases=True),
            40,
            LEASES,
        ),
        _flights(
            "single_flight.takeover",
            "a dead holder's lease stops blocking the key within the lease time",
            FlightPlan("takeover", processes=2, crashes=True, moves_time=True),
            30,
            LEASES,
        ),
        Property(
            "single_flight.threads",
            f"{HERD} real threads missing one key at once run one compute and all get its value",
            thread_safe,
            _herd,
            examples=10,
            cost=0.26,
            strategy_applies=SINGLE_FLIGHT,
        ),
        Property(
            "single_flight.processes",
            f"{PROCESSES} processes x {THREADS_PER_PROCESS} threads missing one key on a "
            "shared server run one compute and all get its value",
            always,
            _processes,
            needs_processes=True,
            examples=2,
            cost=3.0,
            strategy_applies=SINGLE_FLIGHT,
        ),
        _refresh(
            "efficacy.early_refresh",
            "a key read steadily never expires into a miss, and two computes of it start at "
            "least ttl - lead + compute apart across all callers (no refresh storm)",
            SteadyReadsMachine,
            30,
            0.05,  # measured on memory://, 2026-12-05: 1.6 s for 30 examples
        ),
        _refresh(
            "efficacy.revalidate",
            "while one caller refreshes a key, every other caller gets the old value at once: "
            "no wait, no second compute",
            RevalidateMachine,
            30,
            0.09,  # 2.7 s for 30
        ),
        Property(
            "early_refresh.xfetch",
            "a hit refreshes early exactly when now - delta * beta * ln(rand) >= expiry",
            always,
            _xfetch,
            needs_clock=True,
            # It moves the clock, never past an expiry, and its TTLs outlive it (xfetch.py).
            still_clock=True,
            examples=100,
            cost=0.005,
            strategy_applies=REFRESH,
        ),
    ]
)
