"""``staleness.ttl`` runs in real time on a server you run: our strategies pass there, and a
fill that outlives the TTL it was given is rejected there.

The servers are harness-started but run on the real clock (no libfaketime), behind the
target ``cachespec check redis://host`` builds (:class:`UserServerTarget`: no harness clock,
a guest's namespace). docs/design.md, "Real time".
"""

from __future__ import annotations

import re

import pytest
import redis
from realtime_runs import fails_in_real_time, passes_in_real_time
from strategy_mutants import STALE_PAST_TTL, STRATEGY_MUTANTS

from cachespec.conformance import rtstaleness, servers
from cachespec.conformance.runner import Budget
from cachespec.conformance.servers import RunningServer
from cachespec.conformance.target import UserServerTarget

PROPERTY = "staleness.ttl"
# Redis's examples cost a fraction of a second (10 at this size); memcached's up to one
# window of 6 s each (its declared resolution is 4.5 s), so 2 there.
BUDGETS = {"redis": Budget("rt", 1.0, 100), "memcached": Budget("rt", 0.34, 100)}
# The mutant each server rejects. Two seconds too long (fills_ttl_too_long) is within
# memcached's declared resolution of 4.5 s most of the time, and a correct check may not
# call that stale; a fill with no TTL at all (an hour, as a guest writes it) overruns it.
MUTANTS = {"redis": "fills_ttl_too_long", "memcached": "fills_without_ttl"}
SEED = 1


def test_the_mutants_are_the_ttl_bounds() -> None:
    for mutant in MUTANTS.values():
        assert STRATEGY_MUTANTS[mutant][1] == PROPERTY


@pytest.mark.redis
@pytest.mark.memcached
@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=getattr(pytest.mark, k)) for k in ("redis", "memcached")]
)
def test_it_passes_in_real_time_on_a_server_you_run(
    kind: str, request: pytest.FixtureRequest
) -> None:
    server: RunningServer = request.getfixturevalue(f"real_time_{kind}")
    assert rtstaleness.runs_here(PROPERTY, UserServerTarget(server.url))
    passes_in_real_time(server, PROPERTY, BUDGETS[kind], SEED)
    if kind == "redis":  # a guest leaves nothing behind, leases included
        assert isinstance(server, servers.ManagedServer)
        client = redis.Redis(host=server.host, port=server.port)
        assert client.dbsize() == 0
        client.close()


@pytest.mark.redis
@pytest.mark.memcached
@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=getattr(pytest.mark, k)) for k in ("redis", "memcached")]
)
def test_a_fill_that_outlives_its_ttl_is_rejected_in_real_time(
    kind: str, request: pytest.FixtureRequest
) -> None:
    server: RunningServer = request.getfixturevalue(f"real_time_{kind}")
    result = fails_in_real_time(server, MUTANTS[kind], BUDGETS[kind], SEED)
    # The model's verdict, judged on measured times: an expiry overrun.
    assert re.search(STALE_PAST_TTL, result.reason), result.reason
    # The program is printed as found (Hypothesis's replay does not sleep, and passes: the
    # first run's violation stands), or the reason says why it is not.
    assert "state = replay(" in result.counterexample or "no program is printed" in result.reason
