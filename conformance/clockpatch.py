"""Point a library's time source at the harness's clock.

A cache that takes a clock (``timer=``, ``clock=``) is handed the harness's. One that reads
``time.monotonic()`` or ``time.time()`` itself cannot be, and the suite's TTL properties
need time to be the harness's (docs/design.md, "Time in tests"). :func:`follow_clock`
rebinds, in the modules named, the names that reach the time source:

* a module-level ``time`` (``import time``) becomes a stand-in whose ``time``,
  ``monotonic``, ``perf_counter`` (and their ``_ns`` forms) read the harness's clock; every
  other attribute is the real module's;
* a name bound to one of those functions (``from time import monotonic``) becomes one that
  reads the harness's clock.

Call it in the backend factory, which the harness calls with each session's clock::

    import third_party_cache.core
    from cachespec.conformance import follow_clock

    def make_backend(clock):
        follow_clock(clock, third_party_cache.core)
        return Adapter(third_party_cache.core.Cache(...))

Each call replaces the previous one's binding; the returned function puts the originals
back. Defaults bound at definition (``def __init__(self, timer=time.monotonic)``) are not
names in the module: pass the clock to those as an argument.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

Clock = Callable[[], float]

_SECONDS = ("time", "monotonic", "perf_counter")
_NANOSECONDS = ("time_ns", "monotonic_ns", "perf_counter_ns")
_TIME_FUNCTIONS: dict[int, str] = {
    id(getattr(time, name)): name for name in (*_SECONDS, *_NANOSECONDS)
}


class HarnessTime:
    """The ``time`` module, but for its clocks, which read the harness's."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def time(self) -> float:
        return float(self._clock())

    monotonic = perf_counter = time

    def time_ns(self) -> int:
        return round(self._clock() * 1_000_000_000)

    monotonic_ns = perf_counter_ns = time_ns

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def __repr__(self) -> str:
        return f"<time, on the harness's clock {self._clock!r}>"


def _original(value: object) -> object:
    """What ``value`` stands in for, if a previous call bound it (so that calls replace,
    never stack, and a restore reaches the real time source)."""
    return getattr(value, "_cachespec_original", value)


def follow_clock(clock: Clock, *modules: ModuleType) -> Callable[[], None]:
    """Make ``modules`` read ``clock`` wherever they read the time; return the undo.

    Every module is checked before any is changed, so a refusal leaves all as they were.
    The undo puts back only the names still bound to this call's stand-ins: a later call's
    binding (the next session's clock) stays."""
    if not callable(clock):
        raise TypeError(f"follow_clock needs the harness's clock (a callable), got {clock!r}")
    stand_in = HarnessTime(clock)
    plan: list[tuple[ModuleType, str, object, object]] = []  # module, name, real, stand-in
    for module in modules:
        if not isinstance(module, ModuleType):
            raise TypeError(f"follow_clock rebinds names in modules, got {module!r}")
        found = 0
        for name, value in vars(module).items():
            real = _original(value)
            replacement = _stand_in_for(real, stand_in)
            if replacement is not None:
                plan.append((module, name, real, replacement))
                found += 1
        if not found:
            raise ValueError(
                f"{module.__name__} has no name bound to the time module or its clocks: "
                "nothing to point at the harness's clock (pass the clock to it instead)"
            )
    for module, name, real, replacement in plan:
        setattr(replacement, "_cachespec_original", real)  # noqa: B010 - not a name
        setattr(module, name, replacement)

    def restore() -> None:
        for module, name, real, replacement in plan:
            if vars(module).get(name) is replacement:
                setattr(module, name, real)

    return restore


def _stand_in_for(real: object, stand_in: HarnessTime) -> object | None:
    """What replaces ``real`` (the time module, or one of its clocks), else None."""
    if real is time:
        return stand_in
    name = _TIME_FUNCTIONS.get(id(real))
    if name is not None and real is getattr(time, name):
        return _reading(getattr(stand_in, name))
    return None


def _reading(source: Callable[[], Any]) -> Callable[[], Any]:
    def read() -> Any:
        return source()

    return read


__all__ = ["HarnessTime", "follow_clock"]
