"""The kit a third party uses: three lines in their test file, or the plugin's option."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachespec.conformance import PROPERTIES

pytest_plugins = ["pytester"]

THREE_LINES = """
from cachespec.conformance import conformance_tests
from cachespec.backends import MemoryBackend
TestMine = conformance_tests(lambda clock: MemoryBackend(8, clock=clock), size="quick", seed=1)
"""


def test_three_lines_check_a_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine=THREE_LINES)
    result = pytester.runpytest_subprocess("-q", "-rs")
    # Exact LRU and no size limit: lru.recent_survive, lru.declared_order and
    # values.size_limit do not apply; a factory's backend lives in the test's process:
    # single_flight.processes cannot run, nor the six faults.server_* (no server the harness
    # started to kill) nor the six faults.ring_* (no ring); each call of this factory makes
    # a store of its own, so ops.clear_namespace has no two namespaces of one store to compare;
    # it offers add, so ops.add_refused (for a backend that declares add=False) does not apply;
    # and the four faults.cluster_* are for a backend that declares a failover.
    result.assert_outcomes(passed=len(PROPERTIES) - 22, skipped=22)
    result.stdout.fnmatch_lines(["*lives in this process*", "*no value size limit*"])
    result.stdout.fnmatch_lines(["*only a server the harness started*"])
    result.stdout.fnmatch_lines(
        ["*declares no failover (one server)*faults.ring_* check another kind*"]
    )
    result.stdout.fnmatch_lines(["*takes no namespace argument*"])


def test_a_broken_backend_fails_the_right_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_broken="""
from cachespec.conformance import conformance_tests
from cachespec.backends import MemoryBackend

class Forgetful(MemoryBackend):
    def get(self, key):
        found = super().get(key)
        return found if found != b"" else super().get("no such key")

TestBroken = conformance_tests(lambda clock: Forgetful(8, clock=clock), seed=3)
"""
    )
    result = pytester.runpytest_subprocess("-q", "-k", "values_falsy")
    result.assert_outcomes(failed=1, deselected=len(PROPERTIES) - 1)
    result.stdout.fnmatch_lines(
        ["*values.falsy: an empty or falsy-looking value is a hit*", "*state = replay(*"]
    )


def test_the_plugin_option_runs_the_shipped_suite(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "-q",
        "--pyargs",
        "cachespec.conformance.suite",
        "--cachespec-backend",
        "memory://?capacity=4",
        "--cachespec-size",
        "quick",
        "--cachespec-seed",
        "2",
        "-k",
        "ops_ or lru_",
    )
    chosen = [p for p in PROPERTIES if p.area in ("ops", "lru")]
    # lru.recent_survive is for approximate profiles and lru.declared_order for orders other
    # than LRU: skipped with their reasons; memory:// makes a store per namespace, so
    # ops.clear_namespace cannot compare two of one store; ops.add_refused is for a backend
    # without add.
    result.assert_outcomes(
        passed=len(chosen) - 4, skipped=4, deselected=len(PROPERTIES) - len(chosen)
    )


def test_the_shipped_suite_without_a_backend_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("-q", "--pyargs", "cachespec.conformance.suite")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*no backend to check; pass --cachespec-backend*"])


OWN_STRATEGY = """
import sys
sys.path.insert(0, {tests!r})
from cachespec.conformance import conformance_tests
from declared_strategies import PlainCacheAside, without_compare
TestMine = conformance_tests(
    without_compare, size="quick", seed=1, strategy=PlainCacheAside()
)
"""


def test_a_third_partys_strategy_over_a_backend_without_compare(pytester: pytest.Pytester) -> None:
    """The kit takes a strategy of one's own; over a backend that declares no
    compare_and_set, the properties it needs nothing for run (they used to be skipped)."""
    pytester.makepyfile(test_mine=OWN_STRATEGY.format(tests=str(Path(__file__).parent)))
    result = pytester.runpytest_subprocess("-q", "-rs", "-k", "staleness_ttl or efficacy_cache")
    result.assert_outcomes(passed=2, deselected=len(PROPERTIES) - 2)
