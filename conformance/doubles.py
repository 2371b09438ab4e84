"""The harness's stand-ins around the strategies under test: the source of truth they read
and write, and backends that record or fail the calls made through them.

They are the staleness machine's (:mod:`.staleness`), apart so that each module keeps to
one concern: these record and inject, the machine drives and judges.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from typing import Any

from cachespec.backends import Backend, BackendUnavailable
from cachespec.spec.staleness import SourceOfTruth, Version

from .clock import HarnessClock
from .wrapped import Wrapped


class Source:
    """The database the strategies read and write, recording every version in the model."""

    def __init__(
        self,
        truth: SourceOfTruth,
        clock: HarnessClock,
        step: Callable[[], int],
        caller: Callable[[], object],
    ) -> None:
        self._truth = truth
        self._clock = clock
        self._step = step
        self._caller = caller  # who is calling: the versions it handled are its to cache
        self.down = False  # set by the driver between steps, read by the one running task
        self._counter = itertools.count(1)
        # The versions each caller read or wrote, which its cache writes may carry. Only
        # the one running task touches it (the scheduler runs one at a time).
        self._handled: dict[int, list[Version]] = {}

    def read(self, key: str) -> object:
        if self.down:
            raise ConnectionError("the source is down (injected)")
        version = self._truth.current(key)
        self._handled.setdefault(id(self._caller()), []).append(version)
        return version.value

    def write(self, key: str, value: object) -> int:
        if self.down:
            raise ConnectionError("the source is down (injected)")
        version = self._truth.write(key, value, self._step(), self._clock.now())
        self._handled.setdefault(id(self._caller()), []).append(version)
        return version.number

    def version(self, key: str) -> int:
        """The version the source holds now (write-through asks before installing)."""
        if self.down:
            raise ConnectionError("the source is down (injected)")
        return self._truth.current(key).number

    def cached(self, keys: Iterable[str]) -> None:
        """The calling caller wrote ``keys`` into the cache: whichever versions of them it
        handled may be what it wrote, so each one's TTL starts again now."""
        wrote = set(keys)
        for version in self._handled.get(id(self._caller()), []):
            if version.key in wrote:
                self._truth.cached(version, self._clock.now(), self._step())

    def next_value(self, key: str) -> str:
        """A value never written before, so every read traces back to its version."""
        return f"{key}#{next(self._counter)}"


class CacheWrites(Wrapped):
    """A backend that reports each write that took effect (by the caller making it)."""

    WRITES = ("set", "add", "compare_and_set", "set_many")

    def __init__(self, inner: Backend, wrote: Callable[[Iterable[str]], None]) -> None:
        super().__init__(inner)
        self._wrote = wrote

    def _call(self, name: str, *args: Any) -> Any:
        result = super()._call(name, *args)
        if name in self.WRITES and result is not False:
            self._wrote(list(args[0]) if name == "set_many" else [args[0]])
        return result


class FaultyBackend(Wrapped):
    """A backend whose next calls can be made to fail, for the fault properties."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.failures = 0  # how many of the next calls fail; set by the driver between steps
        self._lock = threading.Lock()

    def _call(self, name: str, *args: Any) -> Any:
        with self._lock:
            failing = self.failures > 0
            self.failures -= failing
        if failing:
            raise BackendUnavailable(f"the cache is down for this call ({name}, injected)")
        return super()._call(name, *args)
