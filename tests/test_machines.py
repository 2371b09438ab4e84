"""The machines' rules: a focus names them by member, and each member builds its rule."""

from __future__ import annotations

from cachespec.conformance.machines import CLOCK_RULES, Focus, Rule, build_machine
from cachespec.conformance.target import resolve_target


def test_every_rule_member_builds_the_method_of_its_name() -> None:
    machine = build_machine("EveryRule", resolve_target("memory://"), Focus(rules=tuple(Rule)))
    for member in Rule:
        method = getattr(machine, member.value)
        assert callable(method), member
        # A Hypothesis rule carries its marker; a plain attribute of that name would not run.
        assert any(name.startswith("hypothesis_stateful_rule") for name in vars(method)), member


def test_a_focus_needs_the_clock_exactly_when_it_moves_it() -> None:
    assert not Focus(rules=(Rule.SET, Rule.GET)).needs_clock
    for member in CLOCK_RULES:
        assert Focus(rules=(Rule.SET, member)).needs_clock
    assert Focus(rules=(Rule.SET,), ttls=(0.5,)).needs_clock  # a TTL that runs out by itself
