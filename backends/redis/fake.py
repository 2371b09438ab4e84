"""The ``fakeredis://`` backend: the Redis adapter on an in-process fakeredis server that
follows an injected clock.

fakeredis is an optional dependency, imported only inside this module's functions: when a
``fakeredis://`` URL is opened or :func:`fakeredis_client` is called. The clock hook reaches into
fakeredis's private classes; :func:`_fakeredis_kit` says which, and what they cover.
"""

from __future__ import annotations

import functools
import math
import threading
import weakref
from collections import defaultdict
from typing import Any

import redis

from ..contract import Clock
from ..urls import BackendURL
from .backend import RedisBackend
from .ttl import FAKEREDIS_TTL_RESOLUTION
from .urls import owning, pop_namespace

__all__ = ["fakeredis_client", "fakeredis_from_url"]


@functools.cache
def _fakeredis_kit() -> tuple[Any, Any, Any]:
    """fakeredis's classes, and our clocked variants of two of them.

    Built on first use so that fakeredis is imported only when it is used. Returns
    ``(fakeredis module, ClockedConnection, make_server)``.

    The hook, in fakeredis 2.41: before every command a socket stamps each database of its
    server with the time, ``db.time = time.time()``, and key expiry (SET PX, PTTL, the
    ``expireat < db.time`` test) reads ``db.time`` for the rest of that command. A
    ``ClockedDatabase`` ignores the stamp and snapshots its server's clock instead, so the
    clock is read once per command (a script sees one instant, as on Redis). ``TIME`` reads
    ``time.time()`` directly, so a ``ClockedSocket`` answers it from the same snapshot. Both
    hooks belong to one server: no module attribute is patched, and servers on different
    clocks, or on real time, do not see each other's clocks.

    Not covered (fakeredis reads ``time.time()`` itself there): hash-field TTLs, stream IDs,
    client and ACL ages, CLIENT PAUSE. This adapter uses none of them.
    """
    import fakeredis  # noqa: PLC0415 - optional dependency, imported when used
    from fakeredis._core import Database  # noqa: PLC0415 - private: the time hook
    from fakeredis._socket import FakeSocket  # noqa: PLC0415 - private: the TIME hook

    class ClockedDatabase(Database):
        """A fakeredis database whose notion of "now" is an injected clock's."""

        def __init__(self, lock: threading.Lock, clock: Clock) -> None:
            self._clock = clock
            self._now = float(clock())
            super().__init__(lock)

        @property
        def time(self) -> float:
            return self._now

        @time.setter
        def time(self, _wall_clock: float) -> None:
            # fakeredis passes time.time() here before each command: take the clock's reading.
            self._now = float(self._clock())

    class ClockedSocket(FakeSocket):
        def time(self) -> list[bytes]:
            """``TIME`` from the command's clock snapshot, truncated to microseconds."""
            micros = math.floor(self._db.time * 1_000_000)
            seconds, micros = divmod(micros, 1_000_000)
            return [str(seconds).encode(), str(micros).encode()]

    class ClockedConnection(fakeredis.FakeRedisConnection):
        def _connect(self) -> Any:
            sock = super()._connect()
            if type(sock) is not FakeSocket:  # pragma: no cover - a fakeredis we do not know
                raise RuntimeError(
                    f"fakeredis {fakeredis.__version__}: unexpected socket class "
                    f"{type(sock).__name__}; cachespec's clock hook supports fakeredis 2.x"
                )
            # Same object, same state; only the TIME command is answered differently.
            sock.__class__ = ClockedSocket
            return sock

    def make_server(clock: Clock | None) -> Any:
        server = fakeredis.FakeServer(version=(7, 0))  # the Redis this project runs
        if clock is not None:
            lock = server.lock
            server.dbs = defaultdict(lambda: ClockedDatabase(lock, clock))
        return server

    return fakeredis, ClockedConnection, make_server


_fake_servers_lock = threading.Lock()
_fake_server_default: list[Any] = []
# One server per clock, for as long as the clock object lives. A clock that cannot be weakly
# referenced (a builtin such as time.monotonic) is held for the life of the process.
_fake_servers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_fake_servers_pinned: dict[Any, Any] = {}


def _fake_server(clock: Clock | None) -> Any:
    _, _, make_server = _fakeredis_kit()
    with _fake_servers_lock:
        if clock is None:
            if not _fake_server_default:
                _fake_server_default.append(make_server(None))
            return _fake_server_default[0]
        try:
            server = _fake_servers.get(clock)
        except TypeError:  # not weakly referenceable
            server = _fake_servers_pinned.get(clock)
            if server is None:
                server = _fake_servers_pinned[clock] = make_server(clock)
            return server
        if server is None:
            server = _fake_servers[clock] = make_server(clock)
        return server


def fakeredis_client(clock: Clock | None = None) -> redis.Redis:
    """A ``fakeredis.FakeRedis`` client on the fake server that follows ``clock``.

    ``clock=None``: one process-wide server on real time (fakeredis's own behaviour).
    Otherwise one server per clock object, shared by every client made with that same
    object (so two namespaces of one conformance session share a store, as on a real
    server), and kept while the clock lives. Key expiry and ``TIME`` on that server read
    ``clock()`` once per command; the clock must never go backwards. Pass a callable object
    or a function: a bound method is a new object at each attribute access, so each such
    access gets a server of its own once the previous one is collected.
    """
    fakeredis, clocked_connection, _ = _fakeredis_kit()
    server = _fake_server(clock)
    if clock is None:
        return fakeredis.FakeRedis(server=server)  # type: ignore[no-any-return]
    return fakeredis.FakeRedis(server=server, connection_class=clocked_connection)  # type: ignore[no-any-return]


def fakeredis_from_url(
    url: BackendURL, *, clock: Clock | None = None, namespace: str | None = None
) -> RedisBackend:
    """``fakeredis://?namespace=...&capacity=N&max_value_size=B``: the Redis adapter over fakeredis.

    The same :class:`RedisBackend` code as for a real server, on an in-process fakeredis
    server that follows ``clock`` (see :func:`fakeredis_client`). ``capacity`` needs Lua in
    fakeredis: ``pip install 'fakeredis[lua]'`` (lupa). TTL resolution:
    :data:`FAKEREDIS_TTL_RESOLUTION`.
    """
    url.expect(host=False, path=False)
    chosen_namespace = pop_namespace(url, namespace)
    capacity = url.pop_int("capacity", default=None, allow_none=True, minimum=1)
    max_value_size = url.pop_int("max_value_size", default=None, allow_none=True, minimum=0)
    url.expect_no_options()
    client = fakeredis_client(clock)
    return owning(
        client,
        url,
        namespace=chosen_namespace,
        capacity=capacity,
        max_value_size=max_value_size,
        ttl_resolution=FAKEREDIS_TTL_RESOLUTION,
    )
