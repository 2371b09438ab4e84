"""Every rule a focused machine enables runs in every example: no swarm testing.

Hypothesis's rule-based machines use *swarm testing*: each example first draws a random
subset of the machine's rules to disable (each with a probability drawn per example), so
that an example can dwell on a few operations. That pays on a machine of many rules, where
rules get in each other's way. A property's machine here is already a subset, chosen by
hand for that property's bugs (:class:`~cachespec.conformance.focus.Focus`), usually two
to five rules that the bug needs together: ``set`` and ``get`` for "get returns the value
last set". Swarm testing then turns one of them off in most examples, and Hypothesis's
mutations of such an example keep it off. Measured on ``ops.get_set`` against a backend
that keeps the first value written: at one seed, 47 of the first 49 examples ran no ``set``
or no ``get``. With swarm testing off, no stateful mutant of the suite needs more than 31
examples at any of 40 seeds; with it, many needed 50 to 110 (docs/cost.md, "Every rule in
every example").

The same holds for ``ops.mixed``, the machine of eleven rules meant to explore their
combinations, where swarm testing should pay if anywhere: its mutant needed up to 163
examples with it and 21 without (40 seeds). The rules that reach a state on purpose
(``fill``, ``advance_to_expiry``, ``clear``) do what swarm testing would do by chance.

Hypothesis has no public switch for this (its issue #4682 asks for control over the rule
subsets). The hook below replaces the strategy that draws the subset, an attribute of the
machine's rule strategy that has kept its name and meaning since swarm testing landed
(Hypothesis pull request #2238, 2019; checked on 6.170). If a release moves it, building a
machine raises :class:`SwarmHookMissing`: the budgets are set for examples that run every
rule, and would be too small for examples that do not. ``tests/test_swarm.py`` checks the
hook on the installed Hypothesis.
"""

from __future__ import annotations

from typing import Any

import hypothesis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine

# Private to Hypothesis: see the module docstring. A FeatureFlags built without data
# enables every feature, and draws nothing.
from hypothesis.strategies._internal.featureflags import FeatureFlags

# The attribute of Hypothesis's RuleStrategy that draws which rules an example may run.
_FLAGS_ATTRIBUTE = "enabled_rules_strategy"
_EVERY_RULE: st.SearchStrategy[FeatureFlags] = st.just(FeatureFlags())


class SwarmHookMissing(RuntimeError):
    """The installed Hypothesis no longer draws rule subsets where this module expects."""


class FocusedMachine(RuleBasedStateMachine):
    """A machine whose every example may run each of its rules (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        run_every_rule(self)


def run_every_rule(machine: RuleBasedStateMachine) -> None:
    """Make every example of ``machine`` draw from all its rules (whose preconditions hold)."""
    strategy: Any = getattr(machine, "_rules_strategy", None)
    if strategy is None or not hasattr(strategy, _FLAGS_ATTRIBUTE):
        raise SwarmHookMissing(
            f"Hypothesis {hypothesis.__version__} has no {_FLAGS_ATTRIBUTE} on a machine's "
            "rule strategy, which cachespec replaces to run every rule of a property in every "
            "example (its budgets assume it). Install a Hypothesis release that has it "
            "(6.170 does), and report this at the cachespec tracker."
        )
    setattr(strategy, _FLAGS_ATTRIBUTE, _EVERY_RULE)
