"""What a property's machine runs: its rules and the pools it draws from (a *focus*).

A property is a focus over :class:`~cachespec.conformance.machines.CacheMachine`: the rules
it enables and what they draw, so that a run spends its budget where that property's bugs
live and its counterexample reads as being about that property (machines.py builds the
machine; properties/stateful.py declares the foci).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hypothesis import strategies as st

from .pools import (
    AT,
    BEFORE,
    PAST,
    PLAIN_KEYS,
    PLAIN_VALUES,
    REAL_TIME_SAFE_TTL,
    SMALL_STEPS,
    Blob,
)

Value = bytes | Blob


class Rule(enum.Enum):
    """The rules a :class:`Focus` can enable, each the machine method of the same name.

    A focus names its rules by member, not by string, so that a misspelt rule fails the type
    check and the import rather than the first run that builds its machine. The methods
    themselves are built per focus (they close over its pools: :func:`_rules`), so there is
    no module-level function to point at; the member is the stable handle."""

    SET = "set"
    GET = "get"
    ADD = "add"
    DELETE = "delete"
    GET_MANY = "get_many"
    SET_MANY = "set_many"
    DELETE_MANY = "delete_many"
    COMPARE_AND_SET = "compare_and_set"
    COMPARE_AND_DELETE = "compare_and_delete"
    CLEAR = "clear"
    ADVANCE = "advance"
    ADVANCE_TO_EXPIRY = "advance_to_expiry"
    FILL = "fill"
    FILL_EXPIRED = "fill_expired"
    GET_OLDEST = "get_oldest"
    SURVIVORS = "check_survivors"


# The rules that move the clock: a focus with one of them needs a clock the harness owns.
CLOCK_RULES = frozenset({Rule.ADVANCE, Rule.ADVANCE_TO_EXPIRY, Rule.FILL_EXPIRED})


@dataclass(frozen=True)
class Focus:
    """Which rules a property's machine runs, and what it draws."""

    rules: tuple[Rule, ...]
    keys: tuple[str, ...] = PLAIN_KEYS
    values: st.SearchStrategy[Value] = PLAIN_VALUES
    ttls: tuple[float | None, ...] = (None,)
    steps: tuple[float, ...] = SMALL_STEPS
    offsets: tuple[str, ...] = (BEFORE, AT, PAST)
    # Read every key ever written at the end and check it against the model.
    survivors_at_teardown: bool = False
    # Step over expiry windows (see CacheMachine.move_clock).
    avoid_windows: bool = False
    # The size of each value ``fill`` writes: a server that evicts by memory needs bytes,
    # not entries, to fill up.
    fill_bytes: int = 1
    # Keys a careless mapping would confuse with each other (truncated, case-folded,
    # normalised, escaped): each example starts with one group in play, so that a
    # collision needs two draws from that group, not two lucky draws from the whole pool.
    key_groups: tuple[tuple[str, ...], ...] = ()

    @property
    def needs_clock(self) -> bool:
        """Whether the machine moves the clock, or writes TTLs short enough to run out on
        their own: either needs a clock the harness controls."""
        moves = CLOCK_RULES & set(self.rules)
        short = any(t is not None and t < REAL_TIME_SAFE_TTL for t in self.ttls)
        return bool(moves) or short
