"""Running a strategy property in real time on a server treated as yours, for the tests of
each real-time kind (test_realtime_staleness.py, test_realtime_leases.py,
test_realtime_hangs.py, test_realtime_refresh.py): ours passes there, and a mutant from
strategy_mutants.py fails there, judged on the real clock.

The servers are harness-started on the real clock (no libfaketime), behind the target
``cachespec check redis://host`` builds (:class:`UserServerTarget`).
"""

from __future__ import annotations

import re

from strategy_mutants import STRATEGY_MUTANTS

from cachespec.conformance import realtime
from cachespec.conformance.properties import BY_ID
from cachespec.conformance.runner import Budget, Result, in_real_time, run_property, why_skipped
from cachespec.conformance.servers import RunningServer
from cachespec.conformance.target import UserServerTarget


def passes_in_real_time(server: RunningServer, prop_id: str, budget: Budget, seed: int) -> None:
    """``prop_id`` runs in real time on ``server`` as a user's, and ours passes it."""
    target = UserServerTarget(server.url)
    assert not target.controls_time
    guarantees = target.guarantees()
    prop = BY_ID[prop_id]
    assert prop.real_time
    assert why_skipped(prop, target, guarantees) is None
    assert in_real_time(prop, target) is True
    result = run_property(prop, target, guarantees, budget, seed)
    assert (result.status, result.clock) == ("pass", realtime.CLOCK), result


def fails_in_real_time(server: RunningServer, mutant: str, budget: Budget, seed: int) -> Result:
    """The strategy ``mutant`` fails the property it breaks, in real time on ``server`` as
    a user's, for the reason it must (strategy_mutants.py's pattern)."""
    strategies, prop_id, pattern = STRATEGY_MUTANTS[mutant]
    target = UserServerTarget(server.url)
    target.strategies = strategies()
    result = run_property(BY_ID[prop_id], target, target.guarantees(), budget, seed)
    assert (result.status, result.clock) == ("fail", realtime.CLOCK), result
    assert re.search(pattern, result.reason), result.reason
    return result
