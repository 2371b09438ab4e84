"""libfaketime clock control: the harness writes the time, the server reads it.

The suite never sleeps to let a TTL run out: it starts its own server under libfaketime and
moves the server's clock itself (docs/design.md, "Time in tests"). This module finds
libfaketime, builds the environment that preloads it, and provides :class:`FaketimeClock`,
which follows the :class:`~cachespec.conformance.clock.HarnessClock` protocol. Nothing here
depends on the server kind: how often a kind is shown the time (``step_us``) and how the
harness learns that the server has seen it (the barrier) come from the kind's record
(:class:`~cachespec.conformance.servers.kind.ServerKind`).

The clock protocol
    libfaketime (Debian 0.9.10) is preloaded into the server with ``FAKETIME_NO_CACHE=1``, so
    every time call in the server re-reads ``FAKETIME_TIMESTAMP_FILE``. The harness writes a
    *frozen absolute* time there (``2026-01-01 00:00:09.123456...``) and renames it into place,
    so the server sees either the old or the new time, never a torn write. The clock keeps the
    time as integer microseconds: a float of about 1.8e9 seconds cannot hold nanoseconds
    (its spacing is about 240 ns) but does round-trip microseconds, so ``advance_to(t)``
    rounds ``t`` to the nearest microsecond and millisecond-aligned moves are exact. Time
    starts at 2026-01-01T00:00:00Z for reproducible runs and never goes backwards.

    libfaketime parses the fraction with ``atof`` and *truncates* it to nanoseconds, so
    ``.001`` became 999,999 ns and ``gettimeofday`` reported 999 us (observed): a millisecond
    boundary would be off by one microsecond. The file therefore carries a guard half
    nanosecond (``.0010000005``), which truncates to exactly the intended nanosecond.

    A server may be shown a coarser time than the harness keeps: ``step_us`` rounds what it
    is shown down to whole steps (memcached sees whole seconds, see its kind's module).

The barrier
    ``advance_to`` returns only once the server has seen the new time: the clock calls a
    barrier after every move the server is shown, and the harness's barrier asks the server
    for its time (the kind's ``read_clock``) until it reports the time written. The wait is
    bounded and raises :class:`~cachespec.conformance.servers.base.HarnessUnavailable`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Final

from .base import HarnessUnavailable

__all__ = [
    "LIBFAKETIME_ENV",
    "LIBFAKETIME_PATHS",
    "START_TIME",
    "US",
    "Barrier",
    "FaketimeClock",
    "faketime_env",
    "libfaketime",
]

#: Where every fake clock starts: 2026-01-01T00:00:00Z, a round instant for reproducible runs.
START_TIME: Final = 1_767_225_600.0

#: Microseconds in a second: the clock's unit.
US: Final = 1_000_000

LIBFAKETIME_ENV: Final = "CACHESPEC_LIBFAKETIME"
# The thread-safe build (libfaketimeMT) first: the servers read the clock from several
# threads, and under the plain build memcached's clock stopped for good after a burst of
# concurrent connections (observed: `STAT time` stuck while the file moved on).
LIBFAKETIME_PATHS: Final = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
)


def libfaketime() -> str:
    """libfaketime's path: ``$CACHESPEC_LIBFAKETIME`` if set, else the Debian multiarch paths.

    Raises :class:`HarnessUnavailable` (with how to install it) if there is none.
    """
    override = os.environ.get(LIBFAKETIME_ENV)
    if override:
        if Path(override).is_file():
            return override
        raise HarnessUnavailable(f"libfaketime not found at {override} (from ${LIBFAKETIME_ENV})")
    for candidate in LIBFAKETIME_PATHS:
        if Path(candidate).is_file():
            return candidate
    raise HarnessUnavailable(
        "libfaketime not found (apt-get install libfaketime, or set "
        f"${LIBFAKETIME_ENV} to libfaketimeMT.so.1)"
    )


def _to_microseconds(when: float) -> int:
    """``when`` in whole microseconds, rounded to the nearest; exact for any float input."""
    try:
        return round(Fraction(when) * US)
    except (OverflowError, ValueError, TypeError):
        raise ValueError(f"not a finite time: {when!r}") from None


def _faketime_stamp(microseconds: int) -> str:
    """The frozen-time line libfaketime reads, with a guard half nanosecond (module docstring)."""
    seconds, fraction = divmod(microseconds, US)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp}.{fraction:06d}0005\n"


#: Called with the microseconds just shown to the server; returns once the server has seen them.
Barrier = Callable[[int], None]


class FaketimeClock:
    """A server's clock: the harness writes the time, the server reads it through libfaketime.

    ``step_us`` is what the server is shown: every microsecond (``step_us=1``) or whole steps
    of that many microseconds (a whole-second server: ``1_000_000``). ``now()`` is always the
    exact harness time.
    """

    tick = 0.001

    def __init__(
        self,
        timestamp_file: str | os.PathLike[str],
        *,
        start: float = START_TIME,
        step_us: int = 1,
        barrier: Barrier | None = None,
    ) -> None:
        if step_us < 1:
            raise ValueError(f"step_us must be a positive number of microseconds: {step_us!r}")
        self.timestamp_file = Path(timestamp_file)
        self.step_us = step_us
        self._now_us = _to_microseconds(start)
        self._barrier = barrier
        self._lock = threading.Lock()
        self._closed = False
        self._write(self.server_microseconds())

    def now(self) -> float:
        """The harness time in (fake) Unix seconds."""
        return self._now_us / US

    def now_us(self) -> int:
        """The harness time in whole microseconds, exactly."""
        return self._now_us

    def server_microseconds(self) -> int:
        """The time the server is shown: ``now`` rounded down to the server's step."""
        return self._now_us - self._now_us % self.step_us

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (see :meth:`advance_to`)."""
        if not seconds >= 0:
            raise ValueError(f"the clock never goes backwards (advance by {seconds!r})")
        return self.advance_to(self.now() + seconds)

    def advance_to(self, when: float) -> float:
        """Move to ``when`` (rounded to the microsecond) and wait until the server has seen it.

        A move shorter than the server's step changes ``now()`` but shows the server nothing
        new, so it writes nothing and needs no barrier.
        """
        target = _to_microseconds(when)
        with self._lock:
            if self._closed:
                raise RuntimeError("this clock's server has been stopped")
            if target < self._now_us:
                raise ValueError(f"the clock never goes backwards ({when!r} < {self.now()!r})")
            shown_before = self.server_microseconds()
            self._now_us = target
            shown = self.server_microseconds()
            if shown != shown_before:
                self._write(shown)
                if self._barrier is not None:
                    self._barrier(shown)
            return self.now()

    def attach_barrier(self, barrier: Barrier) -> None:
        """Run ``barrier(server_microseconds)`` after every move the server is shown."""
        self._barrier = barrier

    def close(self) -> None:
        """Refuse further moves: the server is gone and so is the timestamp file."""
        with self._lock:
            self._closed = True

    def _write(self, microseconds: int) -> None:
        """Replace the timestamp file atomically: the server reads the old or the new time."""
        staging = self.timestamp_file.with_name(self.timestamp_file.name + ".next")
        staging.write_text(_faketime_stamp(microseconds))
        os.replace(staging, self.timestamp_file)

    def __repr__(self) -> str:
        return f"FaketimeClock(now={self.now()!r}, step_us={self.step_us})"


def faketime_env(clock: FaketimeClock, preload: Sequence[str]) -> dict[str, str]:
    """The variables that put a server on ``clock``: ``preload`` (libfaketime first) in
    ``LD_PRELOAD``, the timestamp file re-read at every clock call, and UTC.

    A kind adds its own on top (:meth:`ServerKind.fake_time_env
    <cachespec.conformance.servers.kind.ServerKind.fake_time_env>`).
    """
    return {
        "LD_PRELOAD": ":".join(preload),
        "FAKETIME_TIMESTAMP_FILE": str(clock.timestamp_file),
        "FAKETIME_NO_CACHE": "1",
        "TZ": "UTC",
    }
