"""The properties the suite checks, with stable ids grouped by area.

Each property states one promise, says when it applies (from the backend's declared
guarantees), and builds the check that tests it. Ids are stable: reports, ``opt_out`` and
``expected_failures`` refer to them. One module per area; importing this package registers
them all.
"""

from __future__ import annotations

from . import (
    arguments,
    cluster_faults,
    faults,
    ring_faults,
    single_flight,
    stateful,
    strategies,
    threads,
)
from .base import PROPERTIES, Applies, Property

PROPERTIES.sort(key=lambda p: p.id)
BY_ID: dict[str, Property] = {p.id: p for p in PROPERTIES}

# The area modules, imported for what they register.
AREAS = (
    stateful,
    arguments,
    threads,
    strategies,
    single_flight,
    faults,
    ring_faults,
    cluster_faults,
)

__all__ = ["BY_ID", "PROPERTIES", "Applies", "Property"]
