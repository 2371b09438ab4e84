"""``single_flight.processes`` when things go wrong around it: the harness's failures are
named as such, never blamed on the cache, and targets it cannot reach are skipped."""

from __future__ import annotations

import os
from typing import Any

import pytest

from cachespec.backends import Backend, open_backend
from cachespec.backends.cache import Cache
from cachespec.conformance import run_suite
from cachespec.conformance.staleness import Strategies
from cachespec.conformance.target import ServerTarget

PROP = "single_flight.processes"


class DiesInTheChild(Strategies):
    """A herd process that exits before it reports (as a crash or a kill would)."""

    def make_cache(self, backend: Backend, **options: Any) -> Cache:
        os._exit(3)


class Unpicklable(Strategies):
    def __init__(self) -> None:
        self.hook = lambda: None  # a lambda does not pickle


@pytest.mark.redis
def test_a_process_that_dies_before_reporting_is_named_not_waited_out() -> None:
    result = run_suite("redis", seed=1, only=[PROP], strategy=DiesInTheChild()).result(PROP)
    assert result.status == "fail"
    assert "exited with code 3 before reporting" in result.reason


@pytest.mark.redis
def test_strategies_that_cannot_travel_say_so() -> None:
    result = run_suite("redis", seed=1, only=[PROP], strategy=Unpicklable()).result(PROP)
    assert result.status == "fail"
    assert "cannot be sent to another process" in result.reason


@pytest.mark.redis
def test_a_target_with_its_own_opener_is_skipped_not_run_on_the_plain_adapter() -> None:
    # Other processes would open the URL with the plain adapter, not the one under test.
    target = ServerTarget("redis (own opener)", "redis", {}, opener=open_backend_plain)
    result = run_suite(target, seed=1, only=[PROP]).result(PROP)
    assert result.status == "skip"
    assert "lives in this process" in result.reason


def open_backend_plain(url: str, namespace: str) -> Backend:
    return open_backend(url, namespace=namespace)
