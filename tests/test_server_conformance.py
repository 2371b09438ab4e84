"""The suite's teeth on real servers: each broken adapter fails the property named for it.

The servers are throwaway ones the harness starts under libfaketime (the same harness
``cachespec check redis`` uses). Correct adapters are checked by the tox envs ``redis``,
``memcached`` and ``fakeredis``, which run ``cachespec check`` on each at the default size.
"""

from __future__ import annotations

import re

import pytest
from adapter_mutants import ADAPTER_MUTANTS, mutant_target

from cachespec.conformance import run_suite

SEED = 20261127


def _cases() -> list[object]:
    return [
        pytest.param(name, marks=getattr(pytest.mark, ADAPTER_MUTANTS[name][0]), id=name)
        for name in sorted(ADAPTER_MUTANTS)
    ]


@pytest.mark.parametrize("name", _cases())
def test_the_suite_rejects_the_broken_adapter(name: str) -> None:
    prop, why = ADAPTER_MUTANTS[name][3:]
    target = mutant_target(name)
    report = run_suite(target, seed=SEED, only=[prop])
    result = report.result(prop)
    assert result.status == "fail", f"{name} passed {prop} at the default size, seed {SEED}"
    assert re.search(why, result.reason), result.reason
