"""No false alarms: correct backends pass every property they promise, over many seeds."""

from __future__ import annotations

import pytest
from mutants import PlainBackend, StampedClear, plain

from cachespec.conformance import ManualClock, Target, run_suite


def assert_clean(backend: str | Target, **kwargs: object) -> None:
    report = run_suite(backend, **kwargs)  # type: ignore[arg-type]
    problems = {
        r.id: f"{r.reason}\n{r.counterexample}" for r in report.results if r.status == "fail"
    }
    assert problems == {}, f"seed {report.seed}"


# memory:// at the default size is tox's memory env, with a new seed on every CI run: a
# false alarm at any seed surfaces there, and the CI budget pays for that run once
# (docs/cost.md). The plain reference backend is what every mutant in mutants.py changes
# one thing of, so it must pass each property those mutants are caught by, at the size
# that catches them; the strategies over it are the ones memory:// runs.
@pytest.mark.slow
def test_the_plain_reference_backend_passes_at_the_default_size() -> None:
    assert_clean(Target("plain", plain), seed=99, only=BACKEND_LEVEL)


# The configurations change capacity and size limits, which the backend properties see.
# The strategy properties (staleness, faults, single-flight, early refresh) run a cache over
# the backend and cost ten times as much; they are checked at the default size above and on
# every server in the tox envs.
BACKEND_LEVEL = ["keys.*", "lru.*", "ops.*", "ttl.*", "values.*"]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(
    "url",
    [
        "memory://?capacity=1",
        "memory://?capacity=3",
        "memory://?capacity=none",
        "memory://?capacity=16&max_value_size=100",
    ],
)
def test_memory_configurations_pass_quick_runs(url: str, seed: int) -> None:
    assert_clean(url, size="quick", seed=seed, only=BACKEND_LEVEL)


def test_plain_backend_with_a_size_limit_passes_quick_runs() -> None:
    def limited(clock: object) -> PlainBackend:
        return PlainBackend(clock, max_value_size=64)  # type: ignore[arg-type]

    assert_clean(Target("plain-limited", limited), size="quick", seed=5, only=BACKEND_LEVEL)


def test_a_clear_by_timestamp_is_checked_once_it_declares_its_clock_granularity() -> None:
    """issue #15: a clear that hides what was written strictly before it ties with a set at
    the same instant. Undeclared, the failure says it is a tie; declared, the harness moves
    time between calls, as real time does, and the design passes."""
    tied = run_suite(Target("stamped", StampedClear), size="quick", seed=1, only=["ops.clear"])
    result = tied.result("ops.clear")
    assert result.status == "fail"
    assert "the same instant on the harness's clock as its last write" in result.reason
    assert "declare clock_granularity" in result.reason

    def declared(clock: ManualClock) -> StampedClear:
        return StampedClear(clock, granularity=1e-6)

    assert_clean(Target("stamped-1us", declared), seed=1, only=["ops.clear", "ops.mixed"])
