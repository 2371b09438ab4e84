"""A backend may do without ``add`` (Guarantees(add=False)), as it may without ``clear``: the
properties about add are skipped with the reason, and the others never call it."""

from __future__ import annotations

import pytest
from declared_strategies import PlainCacheAside, WithoutAdd, without_add

from cachespec.backends import NO_VALUE, Unsupported
from cachespec.conformance import Target, run_suite
from cachespec.conformance.focus import Rule
from cachespec.conformance.properties.stateful import FOCUSES
from cachespec.conformance.properties.stateful import without_add as focus_without_add
from cachespec.conformance.runner import NOT_DECLARED
from cachespec.spec import ExactLRU, Guarantees

# Properties whose programs or argument checks call add where it is offered.
CALLING_ADD = [
    "ops.add_refused",
    "ops.mixed",
    "values.falsy",
    "ttl.lives",
    "lru.capacity",
    "keys.type",
    "values.type",
    "ttl.invalid",
]


def _target() -> Target:
    return Target("declared_strategies:without_add", without_add)


def test_the_properties_about_add_are_not_declared_and_say_why() -> None:
    report = run_suite(_target(), seed=1, only=["ops.add", "ops.add_atomic"])
    for prop in ("ops.add", "ops.add_atomic"):
        result = report.result(prop)
        assert (result.status, result.skip) == ("skip", NOT_DECLARED)
        assert result.reason == "the backend declares add=False: it does not offer add"
    assert report.guarantees.endswith("; no add")


def test_the_others_leave_add_out_and_pass() -> None:
    # WithoutAdd's add raises Unsupported: any property that still called it would fail.
    report = run_suite(_target(), seed=1, only=CALLING_ADD)
    assert {r.id: r.status for r in report.results} == dict.fromkeys(CALLING_ADD, "pass")


def test_every_focus_drops_add_when_it_is_not_offered() -> None:
    g = Guarantees(eviction=ExactLRU(8), max_value_size=1024, add=False)
    offered = Guarantees(eviction=ExactLRU(8), max_value_size=1024)
    with_add = [focus(offered) for focus in FOCUSES.values()]
    assert any(Rule.ADD in focus.rules for focus in with_add)  # the test means something
    for focus in FOCUSES.values():
        assert Rule.ADD not in focus_without_add(focus(g), g).rules


def test_our_leases_need_add_and_a_strategy_that_needs_none_runs() -> None:
    only = ["staleness.ttl"]
    ours = run_suite(_target(), seed=1, size="quick", only=only).result("staleness.ttl")
    assert ours.skip == NOT_DECLARED
    assert "which needs add; the backend does not declare add=True" in ours.reason
    plain = run_suite(
        _target(), seed=1, size="quick", only=["staleness.ttl"], strategy=PlainCacheAside()
    ).result("staleness.ttl")
    assert plain.status == "pass"


def test_the_backend_refuses_add() -> None:
    backend = WithoutAdd(lambda: 0.0)
    with pytest.raises(Unsupported):
        backend.add("k", b"v")
    assert backend.get("k") is NO_VALUE
