"""The focused machines run every rule in every example (conformance/swarm.py).

The budgets of the stateful properties are measured with swarm testing off; this checks,
on the installed Hypothesis, that the hook still turns it off, and that a machine left to
Hypothesis's default still has it (so that the first check can see the difference).
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from cachespec.conformance.swarm import FocusedMachine, SwarmHookMissing, run_every_rule

STEPS = 40
EXAMPLES = 60


def _rules_run(base: type[RuleBasedStateMachine]) -> list[Counter[str]]:
    """The rules each example of a two-rule machine on ``base`` ran."""
    examples: list[Counter[str]] = []

    class TwoRules(base):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:
            super().__init__()
            examples.append(Counter())

        @rule()
        def left(self) -> None:
            examples[-1]["left"] += 1

        @rule()
        def right(self) -> None:
            examples[-1]["right"] += 1

    run_state_machine_as_test(
        TwoRules,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    return examples


def _one_sided(examples: list[Counter[str]]) -> int:
    """Examples long enough to run both rules that ran only one."""
    return sum(1 for ran in examples if ran.total() >= STEPS // 2 and len(ran) < 2)


def test_a_focused_machine_runs_both_rules_in_every_long_example() -> None:
    examples = _rules_run(FocusedMachine)
    assert sum(1 for ran in examples if ran.total() >= STEPS // 2) >= EXAMPLES // 2
    # Only Hypothesis's first example, its simplest, runs the first rule throughout.
    assert _one_sided(examples) <= 1


def test_hypothesis_alone_switches_rules_off() -> None:
    # The control: without the hook, swarm testing leaves one rule out of some examples.
    # (Measured: 48 of 62 examples at this derandomized seed.)
    assert _one_sided(_rules_run(RuleBasedStateMachine)) >= EXAMPLES // 4


def test_a_hypothesis_without_the_hook_is_refused_rather_than_run() -> None:
    # Budgets assume every rule runs; a release that moved the attribute must not run them
    # with swarm testing silently back on.
    class NoFlags:
        _rules_strategy = object()

    with pytest.raises(SwarmHookMissing, match="enabled_rules_strategy"):
        run_every_rule(NoFlags())  # type: ignore[arg-type]
