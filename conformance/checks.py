"""How a property runs: a state machine, a ``@given`` test, or real threads.

Each kind takes the run's Hypothesis settings and a seed, and raises on failure; the runner
turns the exception into a report row with a counterexample.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import given, seed
from hypothesis import settings as Settings
from hypothesis import strategies as st

# The seedable form of run_state_machine_as_test (Hypothesis split it out for HypoFuzz).
from hypothesis.stateful import RuleBasedStateMachine, get_state_machine_test

from .cores import every_core


class CheckFailed(AssertionError):
    """A non-Hypothesis check (real threads) found a violation; the message is the story."""


class CannotCheck(BaseException):
    """The harness cannot check this property on this target, for a reason of the
    target's design, not a defect: the runner reports it as "cannot check here".

    A BaseException, so that Hypothesis does not shrink it (each replay would only find the
    same limit) and the runner reports it at once."""

    #: Whether another target of the same backend could check it ("cannot check here");
    #: False for :class:`DoesNotApply` ("not applicable").
    could_elsewhere: bool = True


class DoesNotApply(CannotCheck):
    """What the property is about does not exist in this backend, on any target (two
    namespaces of one store, where every open of the scheme is a store of its own): the
    runner reports it as "not applicable" (docs/design.md, "What a skip says")."""

    could_elsewhere = False


@dataclass(frozen=True)
class MachineCheck:
    """A stateful property: Hypothesis picks the program, the model judges each step."""

    machine: type[RuleBasedStateMachine]

    def run(self, settings: Settings, seed_value: int, examples: int) -> None:
        test = get_state_machine_test(self.machine, settings=settings)
        seed(seed_value)(test)()


@dataclass(frozen=True)
class GivenCheck:
    """A property over single calls: bad arguments, each with its own fresh backend."""

    name: str
    strategy: st.SearchStrategy[Any]
    body: Callable[[Any], None]

    def run(self, settings: Settings, seed_value: int, examples: int) -> None:
        body = self.body

        def check(case: Any) -> None:
            body(case)

        check.__name__ = check.__qualname__ = self.name
        seed(seed_value)(settings(given(self.strategy)(check)))()


@dataclass(frozen=True)
class ThreadCheck:
    """A property only real concurrency shows: one trial of racing threads per example."""

    body: Callable[[int], None]

    def run(self, settings: Settings, seed_value: int, examples: int) -> None:
        # Every core: on the one a worker keeps to, threads never race (cores.py).
        with fast_thread_switching(), every_core():
            for trial in range(examples):
                self.body(trial)


@dataclass(frozen=True)
class BatchCheck:
    """A property whose trials run together (real processes: starting them is the cost).

    ``body(n)`` runs ``n`` trials, one per example."""

    body: Callable[[int], None]

    def run(self, settings: Settings, seed_value: int, examples: int) -> None:
        self.body(examples)


@contextlib.contextmanager
def fast_thread_switching() -> Iterator[None]:
    """Make the interpreter switch threads every microsecond instead of every 5 ms.

    A check-then-act race in Python code only shows when a switch lands between the check
    and the act; with the default interval that takes luck, with this it takes a few trials.
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


Check = MachineCheck | GivenCheck | ThreadCheck | BatchCheck
