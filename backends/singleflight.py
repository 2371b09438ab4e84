"""One computation per key at a time, in this process (Go's ``singleflight``).

``Group.do(key, fn)`` runs ``fn`` once for all the callers that ask for ``key`` while it
runs: the first caller (the leader) computes, the others wait and get the leader's value, or
the leader's exception. When the flight ends, the key is free again: the next call starts a
new flight. A failing ``fn`` ends its flight like a successful one, so no key is ever left
locked, and different keys never wait for each other.

A flight older than ``max_age`` is not joined (its value may be far out of date by now):
the caller starts a new one. A waiter waits at most ``timeout`` seconds (``None``: as long
as the leader takes) and then raises :class:`FlightTimeout`. How a waiter waits is
injectable (``wait``): production code blocks on an event; the conformance harness waits at
scheduling points so that it can choose the interleaving, and on its own clock so that a
hang is caught by a bounded wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .contract import CacheError

V = TypeVar("V")

Wait = Callable[[threading.Event, "float | None"], bool]
"""``wait(done, timeout) -> bool``: block until ``done`` is set (True) or the timeout passes
(False). The default is ``threading.Event.wait``."""


class FlightTimeout(CacheError, TimeoutError):
    """A waiter gave up on another caller's computation after the group's timeout."""


@dataclass
class _Flight:
    """One computation in progress. ``done`` is set once ``value``/``error`` are final."""

    started: float = 0.0  # on the group's clock
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None
    waiters: int = 0  # guarded by Group._lock


def event_wait(done: threading.Event, timeout: float | None) -> bool:
    """The production :data:`Wait`: block on the event."""
    return done.wait(timeout)


class Group(Generic[V]):
    """Deduplicates concurrent computations of the same key."""

    def __init__(
        self,
        *,
        timeout: float | None = None,
        wait: Wait = event_wait,
        max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``max_age``: a flight older than this (on ``clock``) is not joined; the caller
        starts a new one. A value computed long ago may be far out of date by the time it
        is shared (a stuck source, a paused process), so sharing is bounded in age too."""
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}  # guarded by _lock
        self._timeout = timeout
        self._wait = wait
        self._max_age = max_age
        self._clock = clock

    def do(self, key: str, fn: Callable[[], V], *, max_age: float | None = None) -> tuple[V, bool]:
        """``fn()``'s value (or exception) for every concurrent caller of ``key``, and
        whether the result was shared with other callers. ``max_age``: this caller joins
        no flight older than this either (its own bound on how old a value may be)."""
        now = self._clock()
        limit = self._max_age
        if max_age is not None:
            limit = max_age if limit is None else min(limit, max_age)
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None and limit is not None and now - flight.started >= limit:
                flight = None  # too old to share: ours replaces it in the table
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight(started=now)
            else:
                flight.waiters += 1
        if not leader:
            if not self._wait(flight.done, self._timeout):
                raise FlightTimeout(
                    f"waited {self._timeout} s for another caller's computation of {key!r}"
                )
            if flight.error is not None:
                raise flight.error
            return flight.value, True
        try:
            flight.value = fn()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                # The flight is over: the next caller of the key starts a new one (unless
                # forget() already let one start).
                if self._flights.get(key) is flight:
                    del self._flights[key]
                shared = flight.waiters > 0
            flight.done.set()
        return flight.value, shared

    def forget(self, key: str) -> None:
        """Let the next caller of ``key`` start a new flight even while this one runs."""
        with self._lock:
            self._flights.pop(key, None)

    def running(self, key: str) -> bool:
        """Whether a computation of ``key`` is in flight."""
        with self._lock:
            return key in self._flights

    def in_flight(self) -> list[str]:
        with self._lock:
            return list(self._flights)
