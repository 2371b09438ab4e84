"""What the suite checks: a target hands out sessions, each a fresh backend on a harness clock.

* ``memory://...`` or any registered URL: built in this process with :func:`open_backend`.
* ``module:callable``: a third party's factory, called as ``factory(clock)`` or
  ``factory(clock, namespace)``; it returns a backend whose ``guarantees`` say what it
  promises. The clock is a :class:`~cachespec.conformance.clock.ManualClock`: call it for
  the time in seconds; the harness moves it.
* ``redis`` / ``memcached`` (a bare name, adapter options after ``?``): a throwaway server
  the harness starts on a free loopback port under libfaketime, so that the harness moves
  the server's clock; each session starts from an empty server. The name is any kind in
  the servers' registry (:mod:`cachespec.conformance.servers.registry`). The options its
  record lists as harness options configure the server (``maxmemory`` and
  ``maxmemory_policy`` for redis, ``memory_mb`` and ``item_size`` for memcached); every
  other option goes to the adapter (``redis?capacity=8``).

Each example of each property gets a new session, so examples never see each other's data.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import os
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from cachespec.backends import (
    Backend,
    BackendUnavailable,
    ConfigurationError,
    open_backend,
    redact,
)
from cachespec.backends.registry import IN_PROCESS_SCHEMES
from cachespec.spec import Guarantees

from . import servers
from .clock import HarnessClock, ManualClock
from .guest_reaper import GuestReaper
from .servers import ManagedServer, RunningServer, ServerKind
from .tenant import Tenant

BackendFactory = Callable[..., Backend]


class TargetError(Exception):
    """The target could not be resolved or reached (a usage error: exit status 2)."""


class Session:
    """One example's world: a clock and the backends (one per namespace) that follow it.

    ``discard_on_close``: discard every namespace opened before closing (a server the user
    runs keeps data between sessions; the suite leaves none of its own behind). ``reach``: how
    another process opens a namespace of this session, ``(url, namespace)`` for
    :func:`~cachespec.backends.open_backend`; None where no other process can.
    """

    def __init__(
        self,
        clock: HarnessClock,
        open_namespace: Callable[[str], Backend],
        *,
        discard_on_close: bool = False,
        reach: Callable[[str], tuple[str, str]] | None = None,
    ) -> None:
        self.clock = clock
        self._open_namespace = open_namespace
        self._opened: list[Backend] = []
        self._discard_on_close = discard_on_close
        self.closed = False
        self._reach = reach

    def shared_url(self, namespace: str = "main") -> tuple[str, str] | None:
        """``(url, namespace)`` by which another process opens ``namespace``, or None."""
        return None if self._reach is None else self._reach(namespace)

    def backend(self, namespace: str = "main") -> Backend:
        backend = self._open_namespace(namespace)
        self._opened.append(backend)
        return backend

    def close(self) -> None:
        try:
            if self._discard_on_close:
                for backend in self._opened:
                    backend.discard()
        finally:
            self.closed = True
            for backend in self._opened:
                backend.close()
            self._opened.clear()


class Target:
    """A backend family the suite can open sessions on."""

    #: Whether the harness moves this backend's clock. Properties that need it are skipped
    #: (with the reason) where it does not.
    controls_time = True
    #: How the target keeps time, for the report.
    clock_note = "the harness's clock"
    #: Whether another process can open this backend (a server): properties that run real
    #: processes are skipped, with the reason, where it cannot.
    shared_across_processes = False
    #: Whether the backend is known to live in this process (``memory://``,
    #: ``fakeredis://``): it has no server to fail and no other process can reach it, so
    #: those properties do not apply to it ("not applicable"), whatever the target. False
    #: for a factory given as ``module:callable``, which may well talk to a server.
    in_process = False
    #: Whether the harness started the server and may kill, stop and restart it: the
    #: ``faults.server_*`` properties are "cannot check here" where it did not.
    owns_server = False
    #: Why the fault properties cannot run on a server this target did start (the kind's
    #: ``fault_note``), or None.
    server_faults_note: str | None = None
    #: The strategy implementations the staleness properties run (None: ours). Set by
    #: ``run_suite(strategy=...)`` / ``cachespec check --strategy``.
    strategies: Any = None
    # How the strategies were named (``--strategy``), so a counterexample can name them too;
    # None for the default or for an instance given from Python.
    strategy_spec: str | None = None

    def __init__(self, name: str, factory: BackendFactory) -> None:
        self.name = name
        self._factory = factory
        try:
            parameters = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            parameters = {}  # type: ignore[assignment]
        self._takes_namespace = "namespace" in parameters

    @property
    def takes_namespace(self) -> bool:
        """Whether the backends of a session can be namespaces of one store: a factory that
        takes a ``namespace`` argument, or a server (which every session shares)."""
        return getattr(self, "_takes_namespace", True)

    #: Sessions opened so far: one per example or trial, so the runner reads progress here.
    sessions_opened = 0
    #: Called as each session opens (the runner's progress ticks); None: nothing is.
    on_session: Callable[[], None] | None = None
    #: What a property costs here against memory://, for the forecast a run prints.
    relative_cost = 1.0

    def session(self) -> Session:
        """A fresh world for one example (subclasses override :meth:`open_session`)."""
        self.sessions_opened += 1
        if self.on_session is not None:
            self.on_session()
        return self.open_session()

    def open_session(self) -> Session:
        clock = ManualClock()

        def open_namespace(namespace: str) -> Backend:
            if self._takes_namespace:
                backend = self._factory(clock, namespace=namespace)
            else:
                backend = self._factory(clock)
            guarantees = getattr(backend, "guarantees", None)
            if not isinstance(guarantees, Guarantees):
                raise TargetError(
                    f"{self.name}: the factory returned {type(backend).__name__} without a "
                    "`guarantees` attribute (a cachespec.Guarantees)"
                )
            return backend

        return Session(clock, open_namespace)

    def guarantees(self) -> Guarantees:
        session = self.session()
        try:
            return session.backend().guarantees
        finally:
            session.close()

    def close(self) -> None:
        """Release what the target holds (servers it started); sessions are closed already."""


class ServerTarget(Target):
    """A throwaway server the harness starts (lazily) and stops, on a clock it owns.

    Where the clock cannot be controlled here (no libfaketime, or no C compiler for Redis's
    shim), the server runs in real time instead, the properties that need the clock are
    skipped with the reason, and ``clock_note`` says so in the report, unless
    ``$CACHESPEC_REQUIRE_FAKETIME`` is set (CI sets it): then that is an error.
    """

    REQUIRE_ENV: ClassVar[str] = "CACHESPEC_REQUIRE_FAKETIME"
    relative_cost = 2.0  # a round trip per call, and an emptied server per example
    owns_server = True

    def __init__(
        self,
        name: str,
        kind: str,
        options: dict[str, str],
        *,
        opener: Callable[[str, str], Backend] | None = None,
    ) -> None:
        """``kind`` names a registered server kind (``ValueError`` if none is); its record
        says which ``options`` configure the server, the rest go to the adapter.
        ``opener(url, namespace)`` builds the backend (default: :func:`open_backend`);
        the project's tests pass deliberately broken adapters this way."""
        self.name = name
        self.kind = kind
        self.server_kind: ServerKind = servers.server_kind(kind)
        # The fault properties kill, stop and restart one process: a kind that is several
        # (a cluster) says why they cannot run there.
        self.server_faults_note = self.server_kind.fault_note
        self.owns_server = self.server_faults_note is None
        # Another process opens the URL with open_backend: a custom opener (a broken
        # adapter under test) would not be what it runs, so such a target keeps to this one.
        self.shared_across_processes = opener is None
        self._opener = opener or (lambda url, namespace: open_backend(url, namespace=namespace))
        harness_keys = self.server_kind.harness_options
        self._harness = {k: v for k, v in options.items() if k in harness_keys}
        self._adapter = urlencode({k: v for k, v in options.items() if k not in harness_keys})
        self._server: RunningServer | None = None
        self._still: ManualClock | None = None

    def _started(self) -> RunningServer:
        if self._server is None:
            kind = self.kind
            reason = servers.harness_available(kind)
            fake_time = reason is None
            if not fake_time:
                if os.environ.get(self.REQUIRE_ENV):
                    raise TargetError(
                        f"{self.name}: cannot start a server with a controlled clock "
                        f"(${self.REQUIRE_ENV} is set): {reason}"
                    )
                self.controls_time = False
                self.clock_note = f"real time, the harness cannot control the clock: {reason}"
            try:
                self._server = self.server_kind.start(self._harness, fake_time=fake_time)
            except ValueError as exc:  # a harness option the kind cannot use
                raise TargetError(f"{self.name}: {exc}") from None
            except servers.HarnessUnavailable as exc:
                raise TargetError(f"{self.name}: {exc}") from None
        return self._server

    def _clock(self, server: RunningServer) -> HarnessClock:
        # Real-time fallback: a clock that never moves (the properties that would move it
        # are skipped), so the model's times are all "now".
        if server.clock is None:
            if self._still is None:
                self._still = ManualClock()
            return self._still
        return server.clock

    def url(self) -> str:
        server = self._started()
        return server.url + (f"?{self._adapter}" if self._adapter else "")

    def running(self) -> RunningServer:
        """The server (or cluster) this target started, starting it if need be."""
        return self._started()

    def server(self) -> ManagedServer:
        """The server this target started (starting it if need be), which the fault
        properties kill, stop and restart (:mod:`cachespec.conformance.faults`)."""
        server = self._started()
        if not isinstance(server, ManagedServer):  # several processes: a cluster
            raise TargetError(f"{self.name}: the fault properties need one server process")
        return server

    def open_with(self, namespace: str, **options: str) -> Backend:
        """A backend on this target's server, as a session opens one, with adapter
        ``options`` over the target's own (the fault properties set a short ``timeout``)."""
        merged = {**dict(parse_qsl(self._adapter)), **options}
        return self._opener(f"{self._started().url}?{urlencode(merged)}", namespace)

    def open_session(self) -> Session:
        server = self._started()
        drifted = server.clock is not None and server.clock.now() - servers.START_TIME
        # Replaced once its clock is this far past its start (ServerKind.clock_span).
        if drifted and drifted > self.server_kind.clock_span:
            self.close()
            server = self._started()
        clock = self._clock(server)
        server.flush()  # every session starts from an empty server
        # ... and on a whole second: a server with a whole-second clock (memcached) then
        # replays a program exactly, whatever fraction of a second earlier sessions ended on.
        clock.advance_to(math.ceil(clock.now()))
        url = self.url()
        return Session(
            clock,
            lambda namespace: self._opener(url, namespace),
            reach=(lambda namespace: (url, namespace)) if self.shared_across_processes else None,
        )

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


class UserServerTarget(Target):
    """A server the user runs (``redis://host``, ``memcached://host``): real time.

    The harness cannot move its clock, so the TTL properties run in real time
    (:mod:`cachespec.conformance.realtime`), the strategy properties that need no time to
    pass on a harness clock that stands still (:mod:`cachespec.conformance.stillclock`), and
    the other properties that move time are "cannot check here", with the reason. Each
    session works in a namespace of its own (``cachespec-check-<pid>-<n>``) and clears it
    when done: no FLUSHDB, no flush_all, no
    CONFIG SET, nothing of anyone else's touched. Eviction profiles are checked only on
    servers the harness starts (they need a reconfigured server).
    """

    controls_time = False
    clock_note = (
        "real time (a server the harness did not start): the TTL properties run in real time, "
        "the strategy properties that need no time to pass in frozen time"
    )
    shared_across_processes = True
    # A namespace per session, never an emptied server: measured over a whole default check
    # of a loopback Redis (2026-12-06), its properties off the real clock took 40 s where
    # twice memory://'s costs forecast 115.
    relative_cost = 1.0

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        opener: Callable[[str, str], Backend] | None = None,
    ) -> None:
        """``opener(url, namespace)`` builds the backend (default: :func:`open_backend`):
        the project's tests pass deliberately broken adapters this way, on a server they
        treat as a user's (tests/test_realtime_servers.py)."""
        self.name = name or redact(url)  # what every output shows: the password never
        self._url = url
        self._opener = opener or (lambda url, namespace: open_backend(url, namespace=namespace))
        # Another process opens the URL with open_backend, not a custom opener.
        self.shared_across_processes = opener is None
        # Sessions not closed yet: a run stopped mid-example discards them in close().
        self._live: list[Session] = []
        # Deletes what ttl.never and ttl.long write uncapped, should this process die first
        # (guest_reaper.py); its process starts only when they do.
        self._reaper = GuestReaper(url)

    def open_session(self) -> Session:
        prefix = f"cachespec-check-{os.getpid()}-{self.sessions_opened}"
        self._live = [session for session in self._live if not session.closed]
        session = Session(
            ManualClock(),
            lambda namespace: Tenant(
                self._opener(self._url, f"{prefix}-{namespace}"),
                reaper=self._reaper,
                namespace=f"{prefix}-{namespace}",
            ),
            discard_on_close=True,
            reach=(lambda namespace: (self._url, f"{prefix}-{namespace}"))
            if self.shared_across_processes
            else None,
        )
        self._live.append(session)
        return session

    def close(self) -> None:
        """Discard what the sessions a stopped run left open wrote (docs/design.md)."""
        live, self._live = self._live, []
        for session in live:
            if not session.closed:
                with contextlib.suppress(Exception):  # best effort, on the way out
                    session.close()
        # Last: the reaper deletes whatever uncapped key a failed discard left.
        self._reaper.close()
        super().close()


def _url_factory(url: str) -> BackendFactory:
    def factory(clock: ManualClock, namespace: str = "main") -> Backend:
        return open_backend(url, clock=clock, namespace=namespace)

    return factory


def load_object(module_name: str, attr: str, spec: str) -> object:
    """``module:attr.path`` (already split) imported and looked up; a TargetError naming
    ``spec`` if it cannot be."""
    try:
        found: object = importlib.import_module(module_name)
        for part in attr.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise TargetError(f"cannot load {spec!r}: {exc}") from None
    return found


def resolve_target(text: str | None) -> Target:
    """``None``/``memory``/a URL/a server kind's name (``redis``, ``memcached``, any kind
    registered)/``module:callable`` -> a Target."""
    if text is None or text in {"", "memory"}:
        text = "memory://"
    kind, _, query = text.partition("?")
    if servers.find_kind(kind) is not None:
        options = dict(parse_qsl(query, keep_blank_values=True))
        return ServerTarget(text, kind, options)
    if "://" in text:
        # Fail fast on a bad URL, in a namespace of the probe's own: opening one may write
        # (memcached creates its generation counter), and the default namespace may be the
        # user's own application's.
        scheme = text.partition("://")[0].lower()
        probe_namespace = f"cachespec-check-{os.getpid()}-probe"
        try:
            probe = open_backend(text, clock=ManualClock(), namespace=probe_namespace)
        except (ConfigurationError, BackendUnavailable) as exc:
            raise TargetError(str(exc)) from None
        except Exception as exc:
            # Anything else on the first exchange is a server that does not speak the
            # scheme's protocol (redis:// at a memcached port, and the reverse): a usage
            # error with one line, not a traceback under the violation exit code.
            raise TargetError(
                f"{redact(text)}: the server did not answer as a {scheme} server would "
                f"({type(exc).__name__}: {str(exc)[:200]}); is the scheme or the port wrong?"
            ) from None
        # A scheme of a registered server kind names a server someone else runs.
        user_server = scheme in servers.user_server_schemes()
        try:
            clears = probe.guarantees.clear
            # Never a store-wide clear on a user's server (its discard defaults to clear).
            if clears and user_server and not probe.guarantees.clear_store_wide:
                probe.discard()
        finally:
            probe.close()
        if user_server:
            if not clears:
                # The suite removes its keys from a server it did not start with clear().
                raise TargetError(
                    f"{redact(text)} declares clear=False, so the suite could not remove its "
                    "keys from a server you run; check that option on a throwaway server "
                    "the harness starts instead, e.g. cachespec check 'memcached?clear=none'"
                )
            return UserServerTarget(text)
        in_process = Target(redact(text), _url_factory(text))
        in_process.in_process = scheme in IN_PROCESS_SCHEMES
        if not text.startswith("memory:"):
            in_process.relative_cost = 2.0  # fakeredis and other in-process emulations
        return in_process
    module_name, colon, attr = text.partition(":")
    if not colon or not module_name or not attr:
        raise TargetError(
            f"not a backend: {text!r} (expected a URL such as memory://?capacity=100, "
            "or module:callable)"
        )
    target = load_object(module_name, attr, text)
    if isinstance(target, Target):
        return target
    if not callable(target):
        raise TargetError(f"{text!r} is not callable")
    return Target(text, target)
