"""The machines' rules: a focus names them by member, and each member builds its rule."""

from __future__ import annotations

import weakref
from typing import ClassVar

from cachespec.backends import Backend, MemoryBackend, NoValue
from cachespec.conformance import ManualClock, Target, run_suite
from cachespec.conformance.focus import CLOCK_RULES, Focus, Rule
from cachespec.conformance.machines import build_machine
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


class _Namespaced(Backend):
    """One namespace of a store shared per clock, as the README shows a factory keeping it."""

    stores: ClassVar[weakref.WeakKeyDictionary[object, MemoryBackend]] = weakref.WeakKeyDictionary()

    def __init__(self, clock: ManualClock, namespace: str = "main") -> None:
        self.shared = self.stores.setdefault(clock, MemoryBackend(clock=clock))
        self.guarantees = self.shared.guarantees
        self.prefix = namespace + ":"

    def get(self, key: str) -> bytes | NoValue:
        return self.shared.get(self.prefix + key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.shared.set(self.prefix + key, value, ttl)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return self.shared.add(self.prefix + key, value, ttl)

    def delete(self, key: str) -> None:
        self.shared.delete(self.prefix + key)

    def clear(self) -> None:
        self.shared.delete_many([self.prefix + key for key in ("a", "b")])  # the machine's keys


def test_namespaces_are_compared_only_when_they_share_a_store() -> None:
    one_store = run_suite(Target("namespaced", _Namespaced), seed=1, only=["ops.clear_namespace"])
    assert one_store.result("ops.clear_namespace").status == "pass"
    apart = run_suite(
        Target("apart", lambda clock, namespace: MemoryBackend(clock=clock)),
        seed=1,
        only=["ops.clear_namespace"],
    )
    result = apart.result("ops.clear_namespace")
    assert (result.status, result.skip) == ("skip", "cannot check here")
    assert "a store of its own" in result.reason
