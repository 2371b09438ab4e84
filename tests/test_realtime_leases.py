"""``single_flight.one_owner`` and ``takeover`` run in real time on a server you run: our
strategies pass there, and a lease mutant each already rejects on the harness clock is
rejected there.

The servers are harness-started but run on the real clock (no libfaketime), behind the
target ``cachespec check redis://host`` builds (:class:`UserServerTarget`). docs/design.md,
"Leases in real time".
"""

from __future__ import annotations

import pytest
from realtime_runs import fails_in_real_time, passes_in_real_time
from strategy_mutants import STRATEGY_MUTANTS

from cachespec.backends.cache import new_lease
from cachespec.backends.memory import MemoryBackend
from cachespec.conformance import rtleases
from cachespec.conformance.interleave import Task
from cachespec.conformance.properties import BY_ID
from cachespec.conformance.runner import Budget
from cachespec.conformance.servers import RunningServer

# Our strategies pass at a few examples: 3 on Redis (a fraction of a second each), 2 on
# memcached (up to one window of 6 s each: its declared resolution is 4.5 s).
PASSING = {"redis": Budget("rt", 0.3, 100), "memcached": Budget("rt", 0.34, 100)}
# A mutant's run ends at its first failure: at twice the default size, Redis's mutants fail
# within a few examples (docs/design.md, "Leases in real time").
REJECTING = {"redis": Budget("rt", 2.0, 100), "memcached": Budget("rt", 1.0, 100)}
# Each property's mutant: a release that deletes whoever's lease is there, and a lease
# written without a TTL (a dead holder's blocks the key forever).
MUTANTS = {
    "single_flight.one_owner": "releases_any_lease",
    "single_flight.takeover": "lease_without_expiry",
}
SEED = 1
REDIS, MEMCACHED = pytest.mark.redis, pytest.mark.memcached
# Where each runs. On memcached, a passing one_owner costs 12 s (the false-alarm runs cover
# it); its takeover mutant shows there by a dead holder's lease granted without expiry
# (docs/design.md, "Leases in real time").
PASSES = [
    pytest.param("redis", "single_flight.one_owner", marks=REDIS),
    pytest.param("redis", "single_flight.takeover", marks=REDIS),
    pytest.param("memcached", "single_flight.takeover", marks=MEMCACHED),
]
REJECTS = [
    pytest.param("redis", "single_flight.one_owner", marks=REDIS),
    pytest.param("redis", "single_flight.takeover", marks=REDIS),
    pytest.param("memcached", "single_flight.one_owner", marks=MEMCACHED),
    pytest.param("memcached", "single_flight.takeover", marks=MEMCACHED),
]


def test_the_mutants_are_the_lease_properties() -> None:
    for prop_id, mutant in MUTANTS.items():
        assert STRATEGY_MUTANTS[mutant][1] == prop_id
        assert BY_ID[prop_id].real_time
    assert sorted(MUTANTS) == sorted(rtleases.PROPERTIES)


@pytest.mark.parametrize(("kind", "prop_id"), PASSES)
def test_they_pass_in_real_time_on_a_server_you_run(
    kind: str, prop_id: str, request: pytest.FixtureRequest
) -> None:
    server: RunningServer = request.getfixturevalue(f"real_time_{kind}")
    passes_in_real_time(server, prop_id, PASSING[kind], SEED)


@pytest.mark.parametrize(("kind", "prop_id"), REJECTS)
def test_a_lease_mutant_is_rejected_in_real_time(
    kind: str, prop_id: str, request: pytest.FixtureRequest
) -> None:
    server: RunningServer = request.getfixturevalue(f"real_time_{kind}")
    fails_in_real_time(server, MUTANTS[prop_id], REJECTING[kind], SEED)


def test_a_lease_written_again_is_not_judged_by_its_grant() -> None:
    """The judgement of a lease granted without expiry stands on the grant's TTL only while
    nothing wrote the same bytes again (with a TTL, say): the ledger keeps those apart."""
    holder = Task("P0.0/C0")
    clock = iter(range(100))
    ledger = rtleases.RealTimeLedger(MemoryBackend(), lambda: holder, lambda: float(next(clock)))
    kept, rewritten, other = new_lease(), new_lease(), new_lease()
    assert ledger.add("hot", kept, None)
    assert ledger.add("warm", rewritten, None)
    assert [x.expires_at for x in ledger.leases] == [float("inf")] * 2
    ledger.set("warm", rewritten, 0.5)
    ledger.set("cold", other, 0.5)  # bytes never granted: nothing to keep apart
    assert ledger.rewritten == {rewritten}
    assert ledger.compare_and_set("warm", rewritten, kept, 0.5)  # hot's bytes, again
    assert ledger.rewritten == {rewritten, kept}
