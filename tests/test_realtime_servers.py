"""The TTL properties in real time reject their mutants on servers treated as a user's.

The servers are harness-started but run on the real clock (no libfaketime), and the target
is the one ``cachespec check redis://host`` builds (:class:`UserServerTarget`: no harness
clock, a guest's namespace), with the adapter swapped for a broken one
(tests/realtime_mutants.py). The real adapters pass the same properties in
test_server_conformance.py::test_a_server_you_run_is_checked_in_real_time_and_left_clean.
docs/design.md, "Real time".
"""

from __future__ import annotations

import pytest
from realtime_mutants import REAL_TIME_MUTANTS

from cachespec.backends import Backend, open_backend
from cachespec.conformance.properties import BY_ID
from cachespec.conformance.realtime import CLOCK
from cachespec.conformance.runner import Budget, run_property
from cachespec.conformance.servers import RunningServer
from cachespec.conformance.target import UserServerTarget

# The program each seed draws is fixed; the instants it runs at are not, and the judgement
# follows them, so each budget leaves room for an example that lands where either answer
# is allowed. Redis's examples cost a fraction of a second, memcached's several seconds.
# On Redis, twice the default: a 30 ms early expiry leaves a 20 ms window to catch it in,
# which a loaded machine's stalls sometimes cover in every example of ten (1 run in 20).
BUDGETS = {
    "redis": (Budget("rt", scale=2.0, steps=100), 1),
    "memcached": (Budget("rt", 0.5, 100), 5),
}


def _as_user(server: RunningServer, broken: type[Backend]) -> UserServerTarget:
    def opener(url: str, namespace: str) -> Backend:
        backend = open_backend(url, namespace=namespace)
        backend.__class__ = broken
        return backend

    return UserServerTarget(server.url, name=f"{server.url} ({broken.__name__})", opener=opener)


@pytest.mark.redis
@pytest.mark.memcached
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=getattr(pytest.mark, kind))
        for name, (kind, _, _) in REAL_TIME_MUTANTS.items()
    ],
)
def test_each_mutant_fails_its_property_in_real_time(
    name: str, request: pytest.FixtureRequest
) -> None:
    kind, broken, prop_id = REAL_TIME_MUTANTS[name]
    server: RunningServer = request.getfixturevalue(f"real_time_{kind}")
    target = _as_user(server, broken)
    assert not target.controls_time
    budget, seed = BUDGETS[kind]
    prop = BY_ID[prop_id]
    result = run_property(prop, target, target.guarantees(), budget, seed)
    assert result.status == "fail", (result.status, result.reason)
    assert result.clock == CLOCK
    # The violation is the model's, judged on measured times. The program that led to it
    # is printed when Hypothesis's replay reaches a failure too; it may fail elsewhere, at
    # other instants, and then the reason says so (docs/design.md, "Real time").
    assert "the model allowed" in result.reason, result.reason
    assert "state = replay(" in result.counterexample or "no program is printed" in result.reason
