"""Fixtures the test modules share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import Phase
from hypothesis import settings as Settings

from cachespec.conformance import runner, servers
from cachespec.conformance.servers import RunningServer


@pytest.fixture
def unshrunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs stop at the first failing example instead of shrinking it.

    For the tests that a mutant is rejected: what they check is that the property fails,
    naming the right violation, within the default budget; shrinking only makes the
    program shorter, and it cost most of those tests' time (one took 42 s). The shrunk
    programs are tested where they matter: tests/test_replay.py, tests/test_cli.py.
    """
    original = runner.hypothesis_settings

    def without_shrinking(budget: runner.Budget, examples: int) -> Settings:
        return Settings(original(budget, examples), phases=[Phase.explicit, Phase.generate])

    monkeypatch.setattr(runner, "hypothesis_settings", without_shrinking)


# Throwaway servers on the real clock (no libfaketime): the tests of what a check does on a
# server you run treat them as yours (test_realtime_servers.py, test_still_clock.py,
# test_realtime_staleness.py).
@pytest.fixture(scope="module")
def real_time_redis() -> Iterator[RunningServer]:
    with servers.start_redis(fake_time=False) as server:
        yield server


@pytest.fixture(scope="module")
def real_time_memcached() -> Iterator[RunningServer]:
    with servers.start_memcached(fake_time=False) as server:
        yield server
