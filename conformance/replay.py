"""Replay a counterexample: the program a failing run prints starts with these imports.

    from cachespec.conformance.replay import Blob, replay
    state = replay('memory://?capacity=4', 'lru.evicts_lru')
    keys_0 = state.new_key(key='k0')
    state.set(key=keys_0, value=b'red', ttl=None)
    state.teardown()

Each call runs one step against a fresh backend beside the model and raises the same
``Violation`` the run reported.
"""

from __future__ import annotations

from typing import Any

from .checks import MachineCheck
from .pools import Blob
from .properties import BY_ID
from .staleness import resolve_strategies
from .target import TargetError, resolve_target

__all__ = ["Blob", "replay"]


def replay(backend: str, property_id: str, strategy: str | None = None) -> Any:
    """A fresh state machine of ``property_id`` against ``backend`` (with the strategies
    ``strategy`` names, for the strategy properties), ready to step by hand.

    Typed ``Any``: its methods are the property's rules, which differ by property."""
    if property_id not in BY_ID:
        raise TargetError(f"unknown property {property_id!r}")
    target = resolve_target(backend)
    if strategy is not None:
        target.strategies = resolve_strategies(strategy)
        target.strategy_spec = strategy
    check = BY_ID[property_id].build(target, target.guarantees())
    if not isinstance(check, MachineCheck):
        raise TargetError(f"{property_id} is not a state machine; rerun it with --seed instead")
    return check.machine()
