"""The strategy properties that need no time to pass run on a server you run, on a harness
clock that stands still, pass there, and reject a mutant each there.

The servers are harness-started but run on the real clock (no libfaketime), behind the
target ``cachespec check redis://host`` builds (:class:`UserServerTarget`: no harness clock, a
guest's namespace). docs/design.md, "A still clock".
"""

from __future__ import annotations

import re

import pytest
import redis
from strategy_mutants import STRATEGY_MUTANTS

from cachespec.conformance import servers, stillclock
from cachespec.conformance.clock import ManualClock
from cachespec.conformance.pools import REAL_TIME_SAFE_TTL
from cachespec.conformance.properties import BY_ID, PROPERTIES
from cachespec.conformance.report import checked_line
from cachespec.conformance.runner import (
    CANNOT_CHECK_HERE,
    Budget,
    run_property,
    run_suite,
)
from cachespec.conformance.servers import RunningServer
from cachespec.conformance.target import Session, UserServerTarget

# Each property that runs on a still clock, with a mutant of tests/strategy_mutants.py it
# must reject there, and the server it is shown on: half on each kind, which keeps the
# file's cost down (every property passes on both, below).
STILL_MUTANTS: dict[str, tuple[str, str]] = {
    "staleness.invalidation": ("forgets_to_invalidate", "redis"),
    "staleness.cache_aside": ("naive_cache_aside", "memcached"),
    "staleness.write_through": ("sets_after_source", "redis"),
    "staleness.events": ("events_miss_the_key", "memcached"),
    "efficacy.cache_aside": ("never_fills", "redis"),
    "efficacy.write_through": ("invalidating_write_through", "memcached"),
    "efficacy.events": ("bypasses_after_events", "redis"),
    "faults.cache_aside": ("no_fall_through", "memcached"),
    "faults.write_through": ("swallows_cache_failure", "redis"),
    "faults.source": ("caches_source_errors", "memcached"),
    "single_flight.one_compute": ("no_dedupe", "redis"),
    "single_flight.shared_outcome": ("seed_per_key_event", "memcached"),
    "early_refresh.xfetch": ("xfetch_sign_flipped", "redis"),
}
STILL = sorted(p.id for p in PROPERTIES if p.still_clock)

# The quick size: nothing on a still clock depends on when calls run, so a seed replays
# exactly. The mutants run programs of 30 steps, which shrink in a third of the time;
# each was caught so at seeds 1 to 3 (the costliest ones also at 100 steps).
QUICK = Budget("quick", scale=0.2, steps=100)
SHORT = Budget("quick, short programs", scale=0.2, steps=30)
SEED = 1


class _Watched(UserServerTarget):
    """A user's server whose sessions' clocks are kept, to show that none moved."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.clocks: list[ManualClock] = []

    def open_session(self) -> Session:
        session = super().open_session()
        assert isinstance(session.clock, ManualClock)
        self.clocks.append(session.clock)
        return session


def test_every_property_on_a_still_clock_has_a_mutant_there() -> None:
    assert sorted(STILL_MUTANTS) == STILL
    for prop_id, (mutant, _) in STILL_MUTANTS.items():
        assert STRATEGY_MUTANTS[mutant][1] == prop_id
    # Every other strategy property that needs the clock is about time itself, and runs
    # there in real time instead: TTL only, the leases, the hangs and early refresh
    # (rtstaleness.py, rtleases.py, rthangs.py, rtrefresh.py; test_realtime_staleness.py,
    # test_realtime_leases.py, test_realtime_hangs.py, test_realtime_refresh.py).
    for prop_id in (
        "staleness.ttl",
        "single_flight.one_owner",
        "single_flight.takeover",
        "single_flight.no_hang",
        "efficacy.early_refresh",
        "efficacy.revalidate",
    ):
        assert BY_ID[prop_id].real_time
    clocked = [p for p in PROPERTIES if p.strategy_applies is not None and p.needs_clock]
    assert [p.id for p in clocked if not (p.still_clock or p.real_time)] == []


def test_a_wait_only_time_ends_ends_the_example_and_others_do_not() -> None:
    returned, given_up = [0], []
    standstill = stillclock.Standstill(lambda: returned[0], lambda: given_up.append(True))
    for _ in range(stillclock.WAITING_ROUNDS):
        standstill()  # every caller waits, and none returns: not yet
    returned[0] += 1  # one returned: what they waited for had happened
    for _ in range(stillclock.WAITING_ROUNDS):
        standstill()
    assert not given_up
    standstill()
    assert given_up == [True]
    # In a teardown the example's verdict is made: no rejection, the callers stay unjudged.
    standstill.closing = True
    with pytest.raises(stillclock.StoodStill):
        standstill()


@pytest.mark.redis
@pytest.mark.memcached
@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_they_pass_on_a_server_you_run_and_the_clock_never_moves(
    kind: str, request: pytest.FixtureRequest
) -> None:
    server: RunningServer = request.getfixturevalue(f"real_time_{kind}")
    target = _Watched(server.url)
    assert not target.controls_time
    guarantees = target.guarantees()
    start = ManualClock().now()
    for prop_id in STILL:
        target.clocks.clear()
        result = run_property(BY_ID[prop_id], target, guarantees, QUICK, SEED)
        assert (result.status, result.clock) == ("pass", stillclock.CLOCK), (prop_id, result)
        assert target.clocks
        if prop_id == "early_refresh.xfetch":
            # It moves the clock toward an expiry (a compute of up to 8 s, then the TTL
            # less a second or more), never to it: the server, whose clock moved less,
            # agrees about every entry (xfetch.py).
            expiry = start + 8 + REAL_TIME_SAFE_TTL
            assert all(clock.now() < expiry for clock in target.clocks)
        else:  # the machines' clocks stood still
            assert all(clock.now() == start for clock in target.clocks), prop_id
    if kind == "redis":  # a guest leaves nothing behind
        assert isinstance(server, servers.ManagedServer)
        client = redis.Redis(host=server.host, port=server.port)
        assert client.dbsize() == 0
        client.close()


@pytest.mark.redis
@pytest.mark.memcached
@pytest.mark.parametrize(
    "prop_id",
    [pytest.param(p, marks=getattr(pytest.mark, kind)) for p, (_, kind) in STILL_MUTANTS.items()],
)
def test_each_rejects_its_mutant_on_a_still_clock(
    prop_id: str, request: pytest.FixtureRequest
) -> None:
    mutant, kind = STILL_MUTANTS[prop_id]
    strategies, _, why = STRATEGY_MUTANTS[mutant]
    server: RunningServer = request.getfixturevalue(f"real_time_{kind}")
    target = UserServerTarget(server.url)
    target.strategies = strategies()
    result = run_property(BY_ID[prop_id], target, target.guarantees(), SHORT, SEED)
    assert (result.status, result.clock) == ("fail", stillclock.CLOCK), result
    assert re.search(why, result.reason), result.reason
    if prop_id != "early_refresh.xfetch":  # a machine's: a program that replays it
        assert "state = replay(" in result.counterexample, result.counterexample


@pytest.mark.redis
def test_require_all_fails_only_what_cannot_be_checked_there(
    real_time_redis: RunningServer,
) -> None:
    # faults.server_keys: it kills and restarts the server, which only a harness server may
    # be. (efficacy.early_refresh, and ttl.never before it, were the example until they ran
    # there in real time: rtrefresh.py, the guest reaper.)
    only = ["staleness.invalidation", "faults.server_keys"]
    target = UserServerTarget(real_time_redis.url)
    report = run_suite(target, size="quick", seed=SEED, only=only, require_all=True)
    assert not report.passed
    assert report.result("staleness.invalidation").status == "pass"
    failed = report.result("faults.server_keys")
    assert (failed.status, failed.skip) == ("fail", CANNOT_CHECK_HERE)
    assert "only a server the harness started may be" in failed.reason, failed.reason
    # It failed without running: not counted as checked, and the line says why.
    assert report.checked == 1
    assert checked_line(report) == "checked 1 of 2 (1 cannot check here)"
