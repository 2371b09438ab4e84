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

from .checks import MachineCheck
from .machines import CacheMachine, NamespaceMachine
from .pools import Blob
from .properties import BY_ID
from .target import TargetError, resolve_target

__all__ = ["Blob", "replay"]


def replay(backend: str, property_id: str) -> CacheMachine | NamespaceMachine:
    """A fresh state machine of ``property_id`` against ``backend``, ready to step by hand."""
    if property_id not in BY_ID:
        raise TargetError(f"unknown property {property_id!r}")
    target = resolve_target(backend)
    check = BY_ID[property_id].build(target, target.guarantees())
    if not isinstance(check, MachineCheck):
        raise TargetError(f"{property_id} is not a state machine; rerun it with --seed instead")
    machine = check.machine()
    assert isinstance(machine, (CacheMachine, NamespaceMachine))
    return machine
