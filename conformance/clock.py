"""Time belongs to the harness.

The suite never sleeps and never reads the real clock. A :class:`ManualClock` is handed to
in-process backends as their clock; servers the harness starts follow a clock the harness
moves the same way. ``tick`` is the smallest step the backend can tell apart: ``0.0`` means
any two distinct floats (an in-process backend compares the very floats the model does).
"""

from __future__ import annotations

import math
from typing import Protocol


class HarnessClock(Protocol):
    """A clock that only the harness moves, and only forwards."""

    tick: float

    def now(self) -> float: ...

    def advance_to(self, when: float) -> float:
        """Move to ``when`` (never backwards) and return the new time."""
        ...


class ManualClock:
    """An exact clock for in-process backends: call it for the time, move it with advance."""

    tick = 0.0

    def __init__(self, start: float = 1_000.0) -> None:
        # Not 0: a backend that treats 0 as "no expiry" must not get lucky.
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if not seconds >= 0:
            raise ValueError(f"the clock never goes backwards (advance by {seconds!r})")
        return self.advance_to(self._now + seconds)

    def advance_to(self, when: float) -> float:
        if when < self._now:
            raise ValueError(f"the clock never goes backwards ({when!r} < {self._now!r})")
        self._now = when
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now!r})"


def just_before(clock: HarnessClock, when: float) -> float:
    """The latest instant before ``when`` that the backend can tell apart from it."""
    return math.nextafter(when, -math.inf) if clock.tick == 0 else when - clock.tick
