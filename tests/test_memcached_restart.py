"""memcached restarted while the client was idle (issue #13, "Outages").

Each test starts its own memcached through the harness (``conformance/servers/``), opens
connections to it, restarts it on the same port (:meth:`ManagedServer.restart`) while the
client is idle, and counts the calls that fail afterwards. Before the fix every pooled
connection failed its next call with ``MemcacheUnexpectedCloseError`` (issue #13: 8 of 30).
Now a call that is safe to send again is sent once more on a new connection, and one that is
not raises :class:`BackendUnavailable` (docs/design.md, "Outages";
``backends/memcached/resend.py``).

Each check has a mutant below that it rejects: an adapter that never sends again, one that
sends ``add`` again, and one that sends again without end.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from pymemcache.exceptions import MemcacheUnexpectedCloseError  # type: ignore[import-untyped]

from cachespec.backends import NO_VALUE, BackendUnavailable, CacheError
from cachespec.backends.memcached import MemcachedBackend
from cachespec.backends.memcached.resend import RESENT
from cachespec.conformance.servers import ManagedServer, start_memcached

pytestmark = pytest.mark.memcached

CONNECTIONS = 8  # pooled connections open when the server restarts
CALLS = 30  # as in issue #13
PATIENCE = 30.0  # seconds of real time a bounded wait allows (a loaded CI machine)


@pytest.fixture
def server() -> Iterator[ManagedServer]:
    with start_memcached() as started:
        yield started


Build = Callable[..., MemcachedBackend]


@pytest.fixture
def build(server: ManagedServer) -> Iterator[Build]:
    built: list[MemcachedBackend] = []

    def make(cls: type[MemcachedBackend] = MemcachedBackend, **options: Any) -> MemcachedBackend:
        backend = cls("127.0.0.1", server.port, namespace="restart", **options)
        built.append(backend)
        return backend

    yield make
    for backend in built:
        backend.close()


def open_connections(backend: MemcachedBackend, count: int = CONNECTIONS) -> None:
    """Leave ``count`` connected, idle connections in the backend's pool, and one more in
    its own idle list (where ``fetch`` and the pipelined writes look first)."""
    client: Any = backend._client
    pool = client.client_pool
    backend.set("warm", b"up")  # leaves its connection in the idle list
    held = [pool.get() for _ in range(count)]
    for connection in held:
        assert connection.version()  # connects it
    for connection in held:
        pool.release(connection)
    assert len(pool.free) >= count
    assert len(client.idle) >= 1


@pytest.mark.parametrize("kill", [False, True], ids=["stop", "kill"])
def test_a_restart_keeps_the_port_and_the_clock_and_not_the_data(kill: bool) -> None:
    """``ManagedServer.restart``: a new process on the same port, shown the harness's time,
    without what the old one held."""
    with start_memcached() as server:
        backend = MemcachedBackend("127.0.0.1", server.port, namespace="restart")
        try:
            assert server.clock is not None
            server.clock.advance(100)
            backend.set("k", b"v")
            old_pid, port = server.pid, server.port
            server.restart(kill=kill)
            assert (server.pid != old_pid, server.port, server.is_running()) == (True, port, True)
            assert server.server_kind.read_clock(server.port) == int(server.clock.now())
            assert backend.get("k") is NO_VALUE
            server.clock.advance(1)  # the barrier follows the new process
            assert server.server_kind.read_clock(server.port) == int(server.clock.now())
        finally:
            backend.close()
    assert not server.is_running()


SAFE_CALLS: dict[str, Callable[[MemcachedBackend, int], object]] = {
    "get": lambda b, i: b.get(f"k{i}"),
    "get_many": lambda b, i: b.get_many([f"k{i}", "warm"]),
    "set": lambda b, i: b.set(f"k{i}", b"v%d" % i, 60),
    "set_many": lambda b, i: b.set_many({f"k{i}": b"v", f"m{i}": b"w"}, 60),
    "delete": lambda b, i: b.delete(f"k{i}"),
    "delete_many": lambda b, i: b.delete_many([f"k{i}", f"m{i}"]),
}


def failures_after_restart(
    backend: MemcachedBackend,
    server: ManagedServer,
    calls: list[Callable[[MemcachedBackend, int], object]],
) -> list[str]:
    """Open connections, restart the server while they idle, then make ``calls`` in turn
    (``CALLS`` of them): the failures, as ``"<type>: <message>"``."""
    open_connections(backend)
    server.restart()
    failed = []
    for i in range(CALLS):
        try:
            calls[i % len(calls)](backend, i)
        except CacheError as error:
            failed.append(f"{type(error).__name__}: {error}")
    return failed


@pytest.mark.parametrize("clear", ["generation", "none"])
def test_after_an_idle_restart_no_safe_call_fails(
    build: Build, server: ManagedServer, clear: str
) -> None:
    backend = build(clearable=clear == "generation")
    failed = failures_after_restart(backend, server, list(SAFE_CALLS.values()))
    assert failed == []
    backend.set("after", b"restart")  # and the calls reached the new server
    assert backend.get("after") == b"restart"
    assert backend.get("warm") is NO_VALUE  # the restart lost what the old one held


def test_after_an_idle_restart_threads_racing_safe_calls_see_no_failure(
    build: Build, server: ManagedServer
) -> None:
    """Threads that each pop an old connection before another dropped them: each one's
    call is sent again once, and goes through."""
    backend = build()
    open_connections(backend)
    server.restart()
    start = threading.Barrier(4)
    failed: list[str] = []

    def calls(n: int) -> None:
        start.wait(timeout=PATIENCE)
        for i in range(CALLS):
            try:
                list(SAFE_CALLS.values())[i % len(SAFE_CALLS)](backend, n * CALLS + i)
            except CacheError as error:
                failed.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=calls, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=PATIENCE)
    assert not any(thread.is_alive() for thread in threads)
    assert failed == []


@pytest.mark.parametrize("clear", ["generation", "none"])
def test_after_an_idle_restart_add_raises_typed_once_and_is_not_sent_again(
    build: Build, server: ManagedServer, clear: str
) -> None:
    backend = build(clearable=clear == "generation")
    failed = failures_after_restart(backend, server, [lambda b, i: b.add(f"a{i}", b"x", 60)])
    # The first add met a connection the server had closed: a typed error, and the add was
    # not sent again (it would have stored: the new server never saw the first one). Every
    # idle connection was dropped with it, so no later call met one.
    assert len(failed) == 1
    assert failed[0].startswith("BackendUnavailable: ")
    assert "add failed, no answer from the server" in failed[0]
    assert backend.get("a0") is NO_VALUE
    assert all(backend.get(f"a{i}") == b"x" for i in range(1, CALLS))


def test_after_an_idle_restart_clear_raises_typed_once_and_then_works(
    build: Build, server: ManagedServer
) -> None:
    backend = build()
    failed = failures_after_restart(backend, server, [lambda b, i: b.clear()])
    assert len(failed) == 1
    assert failed[0].startswith("BackendUnavailable: ")
    backend.set("k", b"v")
    backend.clear()
    assert backend.get("k") is NO_VALUE


def test_after_an_idle_restart_compare_and_x_start_with_a_read_and_do_not_fail(
    build: Build, server: ManagedServer
) -> None:
    backend = build()

    def compare(b: MemcachedBackend, i: int) -> object:
        b.set(f"c{i}", b"old", 60)
        assert b.compare_and_set(f"c{i}", b"old", b"new", 60)
        assert b.compare_and_delete(f"c{i}", b"new")
        return None

    assert failures_after_restart(backend, server, [compare]) == []


# ------------------------------------------------------------------- the unsafe calls, one by one
class ClosingOnce:
    """A client whose calls named ``names`` raise, the first ``times`` times, what a
    connection closed by the server raises; it counts every call by name."""

    def __init__(self, inner: Any, names: tuple[str, ...], times: int = 1) -> None:
        self.inner = inner
        self.names = names
        self.left = times
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if name in self.names and self.left > 0:
                self.left -= 1
                raise MemcacheUnexpectedCloseError()
            return method(*args, **kwargs)

        return call


@contextlib.contextmanager
def closing(backend: MemcachedBackend, *names: str, times: int = 1) -> Iterator[ClosingOnce]:
    real = backend._client
    spy = ClosingOnce(real, names, times)
    backend._client = spy
    try:
        yield spy
    finally:
        backend._client = real


@pytest.mark.parametrize(
    ("call", "names"),
    [
        (lambda b: b.compare_and_set("k", b"v", b"w"), ("cas",)),
        (lambda b: b.compare_and_delete("k", b"v"), ("raw_command",)),  # md
        (lambda b: b.clear(), ("incr",)),
        (lambda b: b.add("new", b"v"), ("pipeline",)),
    ],
)
def test_a_call_not_safe_to_repeat_is_sent_once(
    build: Build, call: Callable[[MemcachedBackend], object], names: tuple[str, ...]
) -> None:
    backend = build()
    backend.set("k", b"v")
    with closing(backend, *names) as spy, pytest.raises(BackendUnavailable):
        call(backend)
    assert all(spy.calls[name] == 1 for name in names)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda b: b.get("k"), "fetch"),
        (lambda b: b.set("k", b"w"), "pipeline"),
        (lambda b: b.compare_and_set("k", b"v", b"w"), "gets"),
    ],
)
def test_a_safe_call_is_sent_again_once_and_never_twice(
    build: Build, call: Callable[[MemcachedBackend], object], name: str
) -> None:
    backend = build()
    backend.set("k", b"v")
    with closing(backend, name) as spy:
        call(backend)  # the second send went through
    assert spy.calls[name] == 2
    with closing(backend, name, times=3) as spy, pytest.raises(BackendUnavailable):
        call(backend)
    assert spy.calls[name] == 2


def test_inside_fresh_every_call_opens_a_new_connection(build: Build) -> None:
    """What "sent again on a new connection" rests on: inside ``fresh()`` neither an idle
    connection nor a pooled one is reused, and outside it they are."""
    backend = build()
    client: Any = backend._client

    def opened() -> int:
        return int(client.stats()[b"total_connections"])

    backend.get("k")  # an idle connection for fetch, and a pooled one for stats
    before = opened()
    backend.get("k")
    assert opened() == before
    with client.fresh():
        backend.get("k")  # fetch
        client.stats()  # a pymemcache call, through the pool
    assert opened() == before + 2


def test_a_timeout_is_not_sent_again(build: Build) -> None:
    """A timeout is a server that may be alive and slow: a second wait would double the
    configured timeout (docs/design.md, "Outages")."""
    backend = build()
    real: Any = backend._client

    class TimingOut:
        calls = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def fetch(self, names: list[bytes]) -> dict[bytes, bytes]:
            TimingOut.calls += 1
            raise TimeoutError("timed out")

    backend._client = TimingOut()
    with pytest.raises(BackendUnavailable, match="timed out"):
        backend.get("k")
    backend._client = real
    assert TimingOut.calls == 1


# ---------------------------------------------------------------------------- the checks' mutants
class NeverResends(MemcachedBackend):
    """What the adapter did before issue #13: no call is sent again."""

    __slots__ = ()
    _resent: ClassVar[frozenset[str]] = frozenset()


class ResendsAdd(MemcachedBackend):
    """Sends ``add`` again too: after an idle restart it answers as if nothing happened,
    and where the first send had stored, it would answer False for its own entry."""

    __slots__ = ()
    _resent: ClassVar[frozenset[str]] = RESENT | {"add"}


class ResendsForever(MemcachedBackend):
    """Sends a safe call again until it goes through."""

    __slots__ = ()

    def _again(self, exc: Exception, op: str, send: Callable[[], Any], **rest: Any) -> Any:
        while True:
            with contextlib.suppress(BackendUnavailable):
                return super()._again(exc, op, send, **rest)


def test_the_checks_reject_their_mutants(build: Build, server: ManagedServer) -> None:
    never = build(NeverResends)
    assert failures_after_restart(never, server, list(SAFE_CALLS.values())) != []
    add_again = build(ResendsAdd)
    failed = failures_after_restart(add_again, server, [lambda b, i: b.add(f"a{i}", b"x", 60)])
    assert len(failed) != 1
    forever = build(ResendsForever)
    forever.set("k", b"v")
    with closing(forever, "fetch", times=3) as spy:
        forever.get("k")
    assert spy.calls["fetch"] != 2
