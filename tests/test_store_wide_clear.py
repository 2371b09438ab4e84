"""A clear documented as store-wide (Guarantees(clear_store_wide=True)) is checked as
declared: a clear in one namespace empties the other too (its mutant, own_clear_only, is in
tests/mutants.py)."""

from __future__ import annotations

import dataclasses
import re

import pytest
from declared_strategies import PrefixNamespace, prefix_namespace

from cachespec.conformance import ManualClock, Target, run_suite
from cachespec.spec import Guarantees

SEED = 20261127


def test_a_store_wide_clear_passes_as_declared() -> None:
    target = Target("declared_strategies:prefix_namespace", prefix_namespace)
    report = run_suite(target, seed=SEED, only=["ops.clear_namespace", "ops.clear"])
    assert [r.status for r in report.results] == ["pass", "pass"]
    assert "clear empties the whole store" in report.guarantees


def undeclared(clock: ManualClock, namespace: str = "default") -> PrefixNamespace:
    backend = prefix_namespace(clock, namespace)
    backend.guarantees = dataclasses.replace(backend.guarantees, clear_store_wide=False)
    return backend


def test_without_the_declaration_the_same_clear_fails_the_namespaces() -> None:
    target = Target("test_store_wide_clear:undeclared", undeclared)
    result = run_suite(target, seed=SEED, only=["ops.clear_namespace"]).result(
        "ops.clear_namespace"
    )
    assert result.status == "fail"
    assert re.search(r"gave no entry for '.'|a miss .* allowed only b", result.reason), (
        result.reason
    )


def test_the_flag_is_a_bool() -> None:
    with pytest.raises(TypeError, match="clear_store_wide must be a bool"):
        Guarantees(clear_store_wide="yes")  # type: ignore[arg-type]
