"""``single_flight.no_hang`` runs in real time on a server you run: our strategies pass there,
and its mutants (a key left locked after a failed compute) are rejected there with "never
returned", judged on time that passed for real.

The servers are harness-started but run on the real clock (no libfaketime), behind the
target ``cachespec check redis://host`` builds (:class:`UserServerTarget`). docs/design.md,
"Hangs in real time".
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from realtime_runs import fails_in_real_time, passes_in_real_time
from strategy_mutants import STRATEGY_MUTANTS

from cachespec.backends import Backend
from cachespec.backends.cache import Cache
from cachespec.conformance import realtime, rthangs
from cachespec.conformance.interleave import TaskHung
from cachespec.conformance.properties import BY_ID
from cachespec.conformance.runner import Budget, run_property
from cachespec.conformance.servers import RunningServer
from cachespec.conformance.staleness import Strategies
from cachespec.conformance.target import UserServerTarget

PROP = "single_flight.no_hang"
# Our strategies at a few examples: 3 on Redis, 2 on memcached.
PASSING = {"redis": Budget("rt", 0.3, 100), "memcached": Budget("rt", 0.34, 100)}
# A strategy that leaves its lease after a failed compute, where some example must wait for
# it: 3 examples on Redis, the default 6 on memcached (at seed 1 its first 3 never waited).
SEEN_THROUGH = {"redis": Budget("rt", 0.3, 100), "memcached": Budget("rt", 1.0, 100)}
# A mutant's run ends at its first failure, which costs one lease window and a lease of
# sleep, twice (the replay sleeps too): about 1 s on Redis, 14 s on memcached, at the
# default size (10 and 6 examples).
REJECTING = {"redis": Budget("rt", 1.0, 100), "memcached": Budget("rt", 1.0, 100)}
# Both of the property's mutants: a per-key event a failed compute leaves unset, and a
# per-key lock a failed compute never releases.
MUTANTS = ("seed_flag_fixed", "key_locked_on_error")
SEED = 1
REDIS, MEMCACHED = pytest.mark.redis, pytest.mark.memcached
REJECTS = [
    pytest.param("redis", "seed_flag_fixed", marks=REDIS),
    pytest.param("redis", "key_locked_on_error", marks=REDIS),
    pytest.param("memcached", "key_locked_on_error", marks=MEMCACHED),
]


class LeavesItsLease(Strategies):
    """Slow, not hung: a failed compute leaves its lease to expire on the server, so the
    next caller waits for a lease only time frees (our Cache's own wait ends after the lease
    time, on the same clock). On a still clock such an example is given up; in real time it
    must be seen through to its end, with no false alarm."""

    def make_cache(self, backend: Backend, **options: Any) -> Cache:
        class Leaves(Cache):
            def _release_lease(self, key: str, lease: bytes) -> None:
                pass  # the lease's TTL ends it

        return Leaves(backend, serializer=self.serializer(), **options)


class _Clock:
    """A clock that sleeps by moving, within an allowance, as RealClock does."""

    def __init__(self, allowance: float) -> None:
        self.t, self.slept, self.allowance = 0.0, 0.0, allowance

    def now(self) -> float:
        return self.t

    def advance_to(self, when: float) -> float:
        if when > self.t and self.slept + when - self.t <= self.allowance:
            self.slept += when - self.t
            self.t = when
        return self.t


def _stuck(allowance: float, returned: list[int]) -> tuple[Any, _Clock, list[float]]:
    """The rounds in which every caller waits, of a machine with a 0.2 s lease and no lease
    taken, on ``_Clock``; what its still clock's Standstill was asked, and when."""
    machine: Any = object.__new__(rthangs.RealTimeHangMachine)
    clock, stood = _Clock(allowance), cast(list[float], [])
    machine.real_clock = clock
    machine.scheduler = SimpleNamespace(returned=lambda: returned[0])
    machine.ledger = SimpleNamespace(leases=[])
    machine.lease_ttl, machine.resolution = 0.2, 0.002 + realtime.SLACK
    machine.standstill = lambda: stood.append(clock.now())
    return machine, clock, stood


def _rounds(machine: Any, count: int) -> None:
    for _ in range(count):
        machine._let_time_pass()


def test_a_hang_is_judged_only_past_its_due_instant_after_rounds_that_slept() -> None:
    returned = [0]
    machine, clock, stood = _stuck(10.0, returned)
    machine._let_time_pass()  # the first round of a streak: no time passes
    assert clock.now() == 0.0
    _rounds(machine, 3)
    returned[0] = 1  # a caller returned: a new streak, from here
    start = clock.now()
    with pytest.raises(TaskHung, match="of real time"):
        _rounds(machine, 100)
    # A lease window since the streak began (0.2 s, 2 ms and the slack twice), then the
    # late rounds, each a quarter lease that was slept.
    due = start + 0.2 + 0.002 + 2 * realtime.SLACK
    assert clock.now() >= due + rthangs.LATE_ROUNDS * 0.05
    assert not stood
    # Where the allowance refuses every sleep, no round is evidence, however much time
    # passes by itself (a loaded machine): the still clock's Standstill decides (it gives
    # the example up), never a hang.
    machine, clock, stood = _stuck(0.0, [0])
    for _ in range(100):
        machine._let_time_pass()
        clock.t += 0.1
    assert len(stood) == 99


def test_the_mutants_are_the_property_s() -> None:
    for mutant in MUTANTS:
        assert STRATEGY_MUTANTS[mutant][1] == PROP
    assert BY_ID[PROP].real_time
    assert rthangs.PROPERTIES == (PROP,)


@pytest.mark.parametrize(
    "kind", [pytest.param("redis", marks=REDIS), pytest.param("memcached", marks=MEMCACHED)]
)
def test_ours_passes_in_real_time_on_a_server_you_run(
    kind: str, request: pytest.FixtureRequest
) -> None:
    server: RunningServer = request.getfixturevalue(f"real_time_{kind}")
    passes_in_real_time(server, PROP, PASSING[kind], SEED)


@pytest.mark.parametrize(
    "kind", [pytest.param("redis", marks=REDIS), pytest.param("memcached", marks=MEMCACHED)]
)
def test_a_wait_for_a_lease_only_time_frees_is_seen_through(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: RunningServer = request.getfixturevalue(f"real_time_{kind}")
    target = UserServerTarget(server.url)
    target.strategies = LeavesItsLease()
    slept: list[float] = []  # what each round in which every caller waited slept
    let_time_pass = rthangs.RealTimeHangMachine._let_time_pass

    def watched(machine: rthangs.RealTimeHangMachine) -> None:
        before = machine.real_clock.slept
        try:
            let_time_pass(machine)
        finally:
            slept.append(machine.real_clock.slept - before)

    monkeypatch.setattr(rthangs.RealTimeHangMachine, "_let_time_pass", watched)
    result = run_property(BY_ID[PROP], target, target.guarantees(), SEEN_THROUGH[kind], SEED)
    assert (result.status, result.clock) == ("pass", realtime.CLOCK), result
    # The callers waited for the lease, time passed for real, and they returned.
    assert sum(slept) > 0, slept


@pytest.mark.parametrize(("kind", "mutant"), REJECTS)
def test_a_key_left_locked_is_rejected_in_real_time(
    kind: str, mutant: str, request: pytest.FixtureRequest
) -> None:
    server: RunningServer = request.getfixturevalue(f"real_time_{kind}")
    result = fails_in_real_time(server, mutant, REJECTING[kind], SEED)
    # Judged on time that passed for real, and the program that got there is printed: its
    # replay sleeps too, and fails as the first run did (rthangs.ReplaySleeps).
    assert "of real time" in result.reason, result.reason
    assert "failed elsewhere" not in result.reason, result.reason
    assert "state = replay(" in result.counterexample, result.counterexample
