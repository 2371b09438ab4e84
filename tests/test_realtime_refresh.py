"""``efficacy.early_refresh`` and ``efficacy.revalidate`` run in real time on a server you
run: our strategies pass there, and each early-refresh mutant is rejected there.

The servers are harness-started but run on the real clock (no libfaketime), behind the
target ``cachespec check redis://host`` builds (:class:`UserServerTarget`). docs/design.md,
"Early refresh in real time".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from realtime_runs import fails_in_real_time, passes_in_real_time
from strategy_mutants import STRATEGY_MUTANTS

from cachespec.conformance import rtrefresh
from cachespec.conformance.properties import BY_ID
from cachespec.conformance.runner import (
    CANNOT_CHECK_HERE,
    Budget,
    run_property,
)
from cachespec.conformance.servers import RunningServer
from cachespec.conformance.staleness import Strategies
from cachespec.conformance.target import UserServerTarget
from cachespec.spec.refresh import RefreshBound

# Our strategies pass at a few examples: 3 on Redis (half a second each, or less), 2 on
# memcached (steady reads about 8.5 s each: a TTL of 4 s and its linger; revalidate up to
# 3 s each).
PASSING = {"redis": Budget("rt", 0.3, 100), "memcached": Budget("rt", 0.34, 100)}
# A mutant's run ends at its first failure, most often in its first example
# (docs/design.md, "Early refresh in real time").
REJECTING = {"redis": Budget("rt", 1.0, 100), "memcached": Budget("rt", 0.34, 100)}
MUTANTS = {
    "never_refreshes_early": "efficacy.early_refresh",
    "refreshes_every_hit": "efficacy.early_refresh",
    "waits_for_refresher": "efficacy.revalidate",
    "each_refreshes": "efficacy.revalidate",
}
SEED = 1
REDIS, MEMCACHED = pytest.mark.redis, pytest.mark.memcached
PASSES = [
    pytest.param("redis", "efficacy.early_refresh", marks=REDIS),
    pytest.param("redis", "efficacy.revalidate", marks=REDIS),
    pytest.param("memcached", "efficacy.early_refresh", marks=MEMCACHED),
    pytest.param("memcached", "efficacy.revalidate", marks=MEMCACHED),
]
# Every mutant on Redis; on memcached one per property, the costlier to catch there: a key
# let go shows only once memcached has really dropped it (its linger), and a wait for the
# refresher only while the old entry is surely live.
REJECTS = [
    *(pytest.param("redis", name, marks=REDIS) for name in MUTANTS),
    pytest.param("memcached", "never_refreshes_early", marks=MEMCACHED),
    pytest.param("memcached", "waits_for_refresher", marks=MEMCACHED),
]


def test_the_mutants_are_the_refresh_properties() -> None:
    for mutant, prop_id in MUTANTS.items():
        assert STRATEGY_MUTANTS[mutant][1] == prop_id
        assert BY_ID[prop_id].real_time
    assert sorted(set(MUTANTS.values())) == sorted(rtrefresh.PROPERTIES)


# Each pool of real-time configurations: TTLs, read instants per TTL, and the margin.
POOLS = [
    (rtrefresh.FINE_TTLS, rtrefresh.FINE_READS, rtrefresh.FINE_MARGIN),
    (rtrefresh.COARSE_STEADY_TTLS, rtrefresh.COARSE_STEADY_READS, rtrefresh.COARSE_MARGIN),
    (rtrefresh.COARSE_REVALIDATE_TTLS, rtrefresh.COARSE_REVALIDATE_READS, rtrefresh.COARSE_MARGIN),
]


@settings(max_examples=300, database=None)
@given(
    st.sampled_from(POOLS).flatmap(
        lambda pool: st.tuples(st.just(pool[2]), rtrefresh.configs(*pool))
    )
)
def test_every_configuration_drawn_is_the_bounds_with_a_margin_for_late_reads(
    drawn: tuple[float, dict[str, float]],
) -> None:
    """RefreshBound accepts each configuration drawn in real time, with room for a late
    read instant on both sides of the refresh window."""
    margin, config = drawn
    fields = {k: v for k, v in config.items() if k not in ("callers", "processes")}
    bound = RefreshBound(**fields)
    assert bound.read_every + bound.compute + margin <= bound.lead + 1e-9
    assert bound.lead <= bound.ttl - bound.read_every - margin + 1e-9


@pytest.mark.parametrize(("kind", "prop_id"), PASSES)
def test_they_pass_in_real_time_on_a_server_you_run(
    kind: str, prop_id: str, request: pytest.FixtureRequest
) -> None:
    server: RunningServer = request.getfixturevalue(f"real_time_{kind}")
    assert rtrefresh.runs_here(prop_id, UserServerTarget(server.url))
    passes_in_real_time(server, prop_id, PASSING[kind], SEED)


@pytest.mark.parametrize(("kind", "mutant"), REJECTS)
def test_a_refresh_mutant_is_rejected_in_real_time(
    kind: str, mutant: str, request: pytest.FixtureRequest
) -> None:
    server: RunningServer = request.getfixturevalue(f"real_time_{kind}")
    result = fails_in_real_time(server, mutant, REJECTING[kind], SEED)
    # The program is printed (Hypothesis's replay draws the same steps: no precondition
    # depends on when calls ran), with the configuration the example ran as its first step.
    program = result.counterexample
    assert "state.configure(" in program, program
    assert all(f"{field}=" in program for field in ("ttl", "refresh_before", "beta", "draw"))


class WaitsForever(Strategies):
    """Every caller waits, forever, for something only time would end (it never does)."""

    def read(self, cache: Any, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        while True:
            cache._sleep(cache.lease_poll)


@pytest.mark.redis
@pytest.mark.parametrize("prop_id", rtrefresh.PROPERTIES)
def test_callers_that_always_wait_are_cannot_check_here_at_the_cost_of_one_allowance(
    prop_id: str, real_time_redis: RunningServer
) -> None:
    """Real time passes where every caller waits, within an example's allowance; past it
    the example is given up, and once one was, the run's later examples wait no more: every
    example given up is "cannot check here", not a failure, and not hundreds of allowances
    of sleep (Hypothesis tries about 460 examples before it calls a run unsatisfiable)."""
    target = UserServerTarget(real_time_redis.url)
    target.strategies = WaitsForever()
    result = run_property(BY_ID[prop_id], target, target.guarantees(), PASSING["redis"], SEED)
    assert (result.status, result.skip) == ("skip", CANNOT_CHECK_HERE), result
    assert "waited for time to pass" in result.reason, result.reason
