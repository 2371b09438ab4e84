"""Arming on a schedule: one daemon thread that, at each due instant, arms a sampled timing.

A timing that samples by rate (``time_calls(..., per_second=N)``) puts a one-shot wrapper in
front of ``get_or_compute`` only when it is armed; the wrapper removes itself as it runs.
Between two armings the method runs unwrapped, with nothing added to its path: the cost of
timing moves off the hot path and into this thread, which wakes ``N`` times a second at
most (docs/design.md, "Metrics"). One thread serves every timing in the process.

The schedule reads ``time.monotonic``: it is the library's own pacing, not a cache's
semantics, so it takes no injected clock. Tests arm by hand (:meth:`Armable.arm`), and a
timing arms once as it starts, so nothing waits for the thread.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Armable(Protocol):
    """What the ticker arms."""

    @property
    def interval(self) -> float:
        """Seconds between two armings."""

    def arm(self) -> None:
        """Make the next call a sampled one (idempotent)."""


class Ticker:
    """Arms each registered timing every ``interval`` seconds, on one daemon thread that
    exists only while some timing is registered."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        # Both guarded by _wake:
        self._due: dict[Armable, float] = {}  # a timing -> when it is next armed
        self._thread: threading.Thread | None = None

    def add(self, timing: Armable) -> None:
        """Arm ``timing`` now, then every ``interval`` seconds until :meth:`remove`."""
        timing.arm()
        with self._wake:
            self._due[timing] = time.monotonic() + timing.interval
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="cachespec-metrics-sampler", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def remove(self, timing: Armable) -> None:
        """Arm ``timing`` no more (a no-op if it is not registered)."""
        with self._wake:
            self._due.pop(timing, None)
            self._wake.notify()

    def _run(self) -> None:
        with self._wake:
            while self._due:
                now = time.monotonic()
                for timing, due in list(self._due.items()):
                    if due <= now:
                        timing.arm()
                        self._due[timing] = now + timing.interval
                self._wake.wait(timeout=max(0.0, min(self._due.values(), default=now) - now))
            self._thread = None  # the next add starts a new one


TICKER = Ticker()

__all__ = ["TICKER", "Armable", "Ticker"]
