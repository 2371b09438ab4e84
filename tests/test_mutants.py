"""Every property catches something: each mutant fails the property named beside it.

The runs use the default size, as ``cachespec check`` does, with seeds fixed here so that
a failure reproduces; the mutants were also checked over other seeds when they were added.
"""

from __future__ import annotations

import re

import pytest
from adapter_mutants import ADAPTER_MUTANTS
from mutants import MUTANTS, WithoutClear
from strategy_mutants import SERVER_STRATEGY_MUTANTS, STRATEGY_MUTANTS

from cachespec.conformance import PROPERTIES, Target, run_suite
from cachespec.conformance.runner import CANNOT_CHECK_HERE

SEEDS = (20261127, 4242)

# Whether each mutant is rejected, not how short its program shrinks (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("unshrunk")


def test_every_property_has_a_mutant() -> None:
    caught = {prop for _, prop, _ in MUTANTS.values()}
    caught |= {prop for _, prop, _ in STRATEGY_MUTANTS.values()}
    caught |= {prop for _, _, prop, _ in SERVER_STRATEGY_MUTANTS.values()}
    caught |= {prop for _, _, _, prop, _ in ADAPTER_MUTANTS.values()}
    assert {p.id for p in PROPERTIES} - caught == set()


@pytest.mark.parametrize("name", sorted(MUTANTS))
@pytest.mark.parametrize("seed", SEEDS)
def test_the_suite_rejects_the_mutant_naming_the_property(name: str, seed: int) -> None:
    factory, prop, why = MUTANTS[name]
    report = run_suite(Target(f"mutants:{name}", factory), seed=seed, only=[prop])
    result = report.result(prop)
    assert result.status == "fail", f"{name} passed {prop} at the default size, seed {seed}"
    assert re.search(why, result.reason), result.reason
    assert not report.passed


def test_a_backend_without_clear_passes_by_refusing_it() -> None:
    clearing = ["ops.clear", "ops.mixed", "ops.clear_namespace"]
    report = run_suite(Target("mutants:WithoutClear", WithoutClear), seed=SEEDS[0], only=clearing)
    # Its factory makes a store per call: no two namespaces of one store to compare.
    statuses = [report.result(prop).status for prop in clearing]
    assert statuses == ["pass", "pass", "skip"], report.results
    assert report.result("ops.clear_namespace").skip == CANNOT_CHECK_HERE


@pytest.mark.parametrize("name", sorted(STRATEGY_MUTANTS))
def test_the_suite_rejects_the_broken_strategy(name: str) -> None:
    strategies, prop, why = STRATEGY_MUTANTS[name]
    report = run_suite("memory://", seed=SEEDS[0], only=[prop], strategy=strategies())
    result = report.result(prop)
    assert result.status == "fail", f"{name} passed {prop} at the default size"
    assert re.search(why, result.reason), result.reason


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=getattr(pytest.mark, SERVER_STRATEGY_MUTANTS[name][1]), id=name)
        for name in sorted(SERVER_STRATEGY_MUTANTS)
    ],
)
def test_the_suite_rejects_the_broken_strategy_on_a_server(name: str) -> None:
    strategies, server, prop, why = SERVER_STRATEGY_MUTANTS[name]
    report = run_suite(server, seed=SEEDS[0], only=[prop], strategy=strategies())
    result = report.result(prop)
    assert result.status == "fail", f"{name} passed {prop} at the default size"
    assert re.search(why, result.reason), result.reason
