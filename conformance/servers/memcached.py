"""The memcached kind: TCP only, never a daemon, a whole-second clock.

memcached sees whole seconds only: the server is shown ``floor(now)``. This is forced, not
chosen: memcached advances its clock from a one-second libevent timer on the (faked)
monotonic clock, and a timer that fired at a fractional fake time is not due again until that
fraction recurs (observed: after a wake at x.2 s, a move to x+1.1 s left memcached at x).
Showing it whole seconds is a memcached whose second boundaries fall on the Unix seconds,
which is one of the real-world phases of its coarse clock. Its monotonic clock is faked too,
since that is the clock it reads its time from.

memcached sees a new time only when its event loop wakes, so the barrier opens a new
connection and sends ``stats`` until ``STAT time`` is the expected second; for the same
reason a stopping memcached is woken until it handles ``SIGTERM`` (docs/facts.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from .base import HOST, exchange
from .faketime import US
from .kind import ServerKind
from .managed import READY_TIMEOUT, ManagedServer, start

__all__ = ["MEMCACHED", "MemcachedKind", "start_memcached"]

_TIME: Final = re.compile(rb"^STAT time (\d+)\r$", re.MULTILINE)
_PID: Final = re.compile(rb"^STAT pid (\d+)\r$", re.MULTILINE)


def _stats_complete(reply: bytes) -> bool:
    return reply.endswith((b"END\r\n", b"ERROR\r\n"))


def _options(memory_mb: int, item_size: str | None) -> list[str]:
    """memcached's arguments for the harness options; ``ValueError`` unless ``memory_mb``
    is a positive int."""
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < 1:
        raise ValueError(f"memory_mb must be a positive int, not {memory_mb!r}")
    options = ["-m", str(memory_mb)]
    if item_size is not None:
        options += ["-I", item_size]
    return options


class MemcachedKind(ServerKind):
    """memcached: text protocol on TCP, ``flush_all`` to empty, ``STAT time`` in seconds."""

    def argv(self, binary: str, port: int, temp_dir: Path, log_path: Path) -> list[str]:
        """Loopback TCP only (no UDP); as root it must be told to stay root."""
        argv = [binary, "-l", HOST, "-p", str(port), "-U", "0"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]  # memcached refuses to run as root without -u
        return argv

    def url(self, host: str, port: int) -> str:
        """The server's URL (memcached has no databases)."""
        return f"memcached://{host}:{port}"

    def read_clock(self, port: int) -> int:
        """memcached's ``STAT time``: its whole-second idea of the Unix time."""
        reply = exchange(port, b"stats\r\n", _stats_complete)
        match = _TIME.search(reply)
        if match is None:
            raise ConnectionError(f"no STAT time in {reply[:200]!r}")
        return int(match[1])

    def answering_pid(self, port: int) -> int | None:
        """``STAT pid`` from ``stats``."""
        match = _PID.search(exchange(port, b"stats\r\n", _stats_complete))
        return int(match[1]) if match else None

    def start(self, options: Mapping[str, str], *, fake_time: bool) -> ManagedServer:
        """``memory_mb`` (a whole number of MiB, default 64) and ``item_size`` (``-I``)."""
        try:
            argv = _options(int(options.get("memory_mb", "64")), options.get("item_size"))
        except ValueError:
            raise ValueError("memory_mb must be a whole number") from None
        return start(self, argv, fake_time=fake_time)


#: The record: what the harness needs to know to run memcached.
MEMCACHED: Final = MemcachedKind(
    name="memcached",
    binary="memcached",
    binary_env="CACHESPEC_MEMCACHED",
    package="memcached",
    schemes=("memcached",),
    harness_options=("memory_mb", "item_size"),
    clock_step_us=US,
    clock_unit="s",
    flush_request=b"flush_all\r\n",
    flush_reply=b"OK\r\n",
    fake_monotonic=True,  # its clock is a timer on the monotonic clock
    wake_to_stop=True,  # a frozen event loop handles SIGTERM only when woken
)


def start_memcached(
    *,
    fake_time: bool = True,
    memory_mb: int = 64,
    item_size: str | None = None,
    extra_args: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT,
) -> ManagedServer:
    """A throwaway memcached on a free loopback port (TCP only, never a daemon).

    With ``fake_time`` (the default) its clock is a
    :class:`~cachespec.conformance.servers.faketime.FaketimeClock` that shows it whole
    seconds; without, it runs on real time and ``clock`` is None.
    """
    options = [*_options(memory_mb, item_size), *extra_args]
    return start(MEMCACHED, options, fake_time=fake_time, ready_timeout=ready_timeout)
