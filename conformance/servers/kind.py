"""The record of a server kind: every decision the harness makes differently per kind.

A kind is one :class:`ServerKind` instance, registered in
:mod:`cachespec.conformance.servers.registry`. Its data (binary, URL schemes, harness
options, how its clock is shown and probed, how it is emptied) are the dataclass's fields;
what takes code (its command line, its URL, asking its clock and its pid, starting it from a
target's options) is a method the kind's subclass overrides. The process management in
:mod:`~cachespec.conformance.servers.managed`, the clock in
:mod:`~cachespec.conformance.servers.faketime` and the targets in
:mod:`cachespec.conformance.target` read everything kind-specific from here, so adding a
kind is a new record and one line in the registry (docs/design.md, "Server kinds").
"""

from __future__ import annotations

import abc
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .base import HarnessUnavailable, exchange

if TYPE_CHECKING:
    from .base import RunningServer

__all__ = ["ServerKind"]


@dataclass(frozen=True)
class ServerKind(abc.ABC):
    """One kind of server the harness starts: its data here, its behaviour in a subclass.

    Fields:

    ``name``
        What ``cachespec check NAME`` and :func:`harness_available` call it; also the
        ``ManagedServer.kind`` of its servers.
    ``binary``, ``binary_env``, ``package``
        The program looked up on ``PATH``; the environment variable that overrides it (for
        CI images that build their own servers); the Debian package to suggest without it.
    ``schemes``
        The URL schemes of servers of this kind that someone else runs
        (``cachespec check redis://host``): those sessions live in namespaces of their own.
    ``harness_options``
        The ``?name=value`` options of ``cachespec check NAME?...`` that configure the
        server (passed to :meth:`start`); every other option goes to the adapter.
    ``clock_step_us``, ``clock_unit``
        The server is shown the harness time rounded down to whole steps of this many
        microseconds; :meth:`read_clock` answers in steps, which the barrier's error message
        calls ``clock_unit``.
    ``fake_monotonic``
        Whether libfaketime fakes the monotonic clock too (``False`` sets
        ``FAKETIME_DONT_FAKE_MONOTONIC=1``: the server's timers keep real time).
    ``wake_to_stop``
        Whether a stopping server must be woken by connections to handle ``SIGTERM`` (one
        that only looks at signals when its event loop wakes, and a frozen clock never wakes
        it).
    ``flush_request``, ``flush_reply``
        What empties the server between sessions, and the one-line reply that says it did.
    ``clock_span``
        How far (seconds) the clock may move past ``START_TIME`` before a target replaces
        the server with a new one on a new clock (sessions only move time forwards).
        Three years by default: memcached's absolute expiry times are 32-bit (they end in
        2038). A kind that is slow to start (a cluster) may allow more.
    ``fault_note``
        Why the fault properties (``faults.server_*``: kill -9, SIGSTOP, a restart of the
        one process ``start`` returns) cannot run on this kind, shown as their skip reason;
        None (the default) when they can.
    """

    name: str
    binary: str
    binary_env: str
    package: str
    schemes: tuple[str, ...]
    harness_options: tuple[str, ...]
    clock_step_us: int
    clock_unit: str
    flush_request: bytes
    flush_reply: bytes
    fake_monotonic: bool = True
    wake_to_stop: bool = False
    clock_span: float = 3 * 365 * 86_400
    fault_note: str | None = None

    # -----------------------------------------------------------------------------------------
    # Finding what a server of this kind needs

    def binary_path(self) -> str:
        """The server binary's path; ``$binary_env`` wins over the ``PATH`` lookup.

        Raises :class:`HarnessUnavailable` naming the package to install.
        """
        name = os.environ.get(self.binary_env) or self.binary
        found = shutil.which(name)
        if found is None:
            raise HarnessUnavailable(
                f"{name} not found on PATH (install the Debian package "
                f"{self.package} or set {self.binary_env})"
            )
        return found

    def check_fake_time(self) -> None:
        """Raise :class:`HarnessUnavailable` if this kind cannot run under libfaketime here
        for a reason of its own (libfaketime itself is checked by the caller). Cheap: it
        builds nothing. The default has no needs of its own."""
        return None

    def fake_time_preload(self) -> list[str]:
        """Libraries to preload after libfaketime (built now if need be); default none."""
        return []

    def fake_time_env(self) -> dict[str, str]:
        """Variables added to the server's environment when it runs under libfaketime."""
        return {} if self.fake_monotonic else {"FAKETIME_DONT_FAKE_MONOTONIC": "1"}

    # -----------------------------------------------------------------------------------------
    # Running and talking to a server of this kind

    def exchange(self, port: int, request: bytes, complete: Callable[[bytes], bool]) -> bytes:
        """One request and its reply with the server on ``port`` (:func:`.base.exchange`);
        a kind whose servers speak TLS overrides it to connect as the harness's client."""
        return exchange(port, request, complete)

    @abc.abstractmethod
    def argv(self, binary: str, port: int, temp_dir: Path, log_path: Path) -> list[str]:
        """The command line that runs ``binary`` in the foreground on ``HOST:port``, with no
        persistence, writing only under ``temp_dir`` (its log, if it can write one, at
        ``log_path``; stdout and stderr go there too)."""

    @abc.abstractmethod
    def url(self, host: str, port: int) -> str:
        """The backend URL (:func:`~cachespec.backends.open_backend`) of the server at
        ``host:port``."""

    @abc.abstractmethod
    def read_clock(self, port: int) -> int:
        """The server's current time, in whole ``clock_unit`` since the epoch (``OSError``
        if it cannot be asked)."""

    @abc.abstractmethod
    def answering_pid(self, port: int) -> int | None:
        """The pid of the server that answers on ``port`` (None if it answered without one).

        Readiness asks for the pid rather than a bare ping: a server that lost its port to a
        race must not be mistaken for ready because someone else's server answers there.
        """

    @abc.abstractmethod
    def start(self, options: Mapping[str, str], *, fake_time: bool) -> RunningServer:
        """A new server configured by ``options`` (a target's harness options, as text).

        Raises ``ValueError`` (a one-line message) for an option value it cannot use, and
        :class:`HarnessUnavailable` if the server cannot start.
        """
