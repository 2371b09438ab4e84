"""The Redis backend (``redis://``, ``rediss://``, ``unix://``) and its in-process twin, ``fakeredis://``.

This package imports redis-py: the registry imports it only when one of these schemes is
opened, and ``cachespec.backends`` itself never does, so a bare install still works.
fakeredis is imported only inside :func:`fakeredis_from_url` and :func:`fakeredis_client`.

One concern per module; import the public names from here, not from the modules:

* :mod:`.backend`: :class:`RedisBackend`, a plain namespace (native commands; it declares
  no eviction, or :data:`REDIS_SERVER_EVICTION`), and what every kind shares:
  construction, errors, compare-and-set;
* :mod:`.bounded`: :class:`BoundedRedisBackend`, the subclass ``RedisBackend(client,
  capacity=N)`` builds: an exact LRU kept by Lua scripts;
* :mod:`.scripts`: those scripts, read from ``lua/*.lua``;
* :mod:`.layout`: the keys a namespace uses on the server;
* :mod:`.ttl`: TTLs in milliseconds, and how late a server may serve an entry.

Needs Redis 5 or later: ``UNLINK`` (4.0), and scripts that write after reading ``TIME``
(effect replication, the default since 5.0). Checked on 7.0.
"""

from __future__ import annotations

import functools
import math
import threading
import weakref
from collections import defaultdict
from typing import Any, Final
from urllib.parse import unquote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..contract import Clock
from ..urls import BackendURL
from .backend import DEFAULT_NAMESPACE, REDIS_SERVER_EVICTION, RedisBackend
from .bounded import BoundedRedisBackend
from .ttl import FAKEREDIS_TTL_RESOLUTION, MAX_TTL, REDIS_TTL_RESOLUTION

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_TIMEOUT",
    "FAKEREDIS_TTL_RESOLUTION",
    "MAX_TTL",
    "REDIS_SERVER_EVICTION",
    "REDIS_TTL_RESOLUTION",
    "BoundedRedisBackend",
    "RedisBackend",
    "fakeredis_client",
    "fakeredis_from_url",
    "redis_from_url",
]

DEFAULT_TIMEOUT: Final = 5.0
"""Seconds allowed to connect, and to wait for each reply."""


# ------------------------------------------------------------------------- redis:// URLs
def _pop_namespace(url: BackendURL, override: str | None) -> str:
    """The ``namespace`` option, read even when overridden (so it is not "unknown")."""
    from_url = url.pop_str("namespace", DEFAULT_NAMESPACE) or ""
    return from_url if override is None else override


def _redis_db(url: BackendURL) -> int:
    path = url.path.strip("/")
    if not path:
        return 0
    if not path.isdigit() or not path.isascii():
        raise url.error(f"the path names the database, a whole number: got {url.path!r}")
    return int(path)


def _owning(
    client: redis.Redis,
    url: BackendURL,
    *,
    namespace: str,
    capacity: int | None,
    max_value_size: int | None,
    ttl_resolution: float,
    server_evicts: bool = False,
) -> RedisBackend:
    """A backend that owns ``client`` (closes it), or ``client`` closed if building fails."""
    try:
        return RedisBackend(
            client,
            namespace=namespace,
            capacity=capacity,
            max_value_size=max_value_size,
            ttl_resolution=ttl_resolution,
            server_evicts=server_evicts,
            name=url.safe,
            close_client=True,
        )
    except BaseException:
        client.close()
        raise


def redis_from_url(
    url: BackendURL, *, clock: Clock | None = None, namespace: str | None = None
) -> RedisBackend:
    """``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS), or
    ``unix:///path/to/redis.sock[?db=N]``.

    Options: ``namespace`` (default ``cachespec``; the ``namespace`` argument overrides it),
    ``timeout`` (seconds to connect and to wait for each reply, default 5), ``capacity`` (an
    exact-LRU namespace of that many entries; default unbounded), ``max_value_size`` (bytes;
    default no limit), ``eviction`` (``none``, the default, or ``server`` for a server that
    evicts by memory: see ``server_evicts``), ``password_env`` / ``password_file`` (the
    password from an environment variable or a file, not the URL). Any other option is a
    ConfigurationError. A user name and password in the URL are percent-decoded.

    ``clock`` is ignored: a real server expires keys on its own clock (the harness moves that
    clock with libfaketime, not through this argument).

    redis-py's retries are off: a call that cannot reach the server raises
    ``BackendUnavailable`` within about ``timeout`` instead of backing off and retrying, and
    a non-idempotent call (``add``, an evicting write) is never sent twice. The next call
    reconnects.
    """
    del clock  # the server's own clock governs expiry
    is_unix = url.scheme == "unix"
    if is_unix:
        url.expect(host=False, path=True)
        if url.path in ("", "/"):
            raise url.error("unix:// needs the socket's path: unix:///path/to/redis.sock")
        db = url.pop_int("db", default=0, minimum=0) or 0
    else:
        db = _redis_db(url)
        if url.port == 0:
            # Port 0 asks the kernel for any free port when binding; no server listens on it.
            # Refused, not read as "no port given" (6379): that would reach another server.
            raise url.error("port 0 is not a server's port; give its port, or none for 6379")
    chosen_namespace = _pop_namespace(url, namespace)
    timeout = url.pop_float("timeout", default=DEFAULT_TIMEOUT, minimum=0.0)
    if not timeout > 0:
        raise url.error(f"option timeout={timeout} must be more than 0 seconds")
    capacity = url.pop_int("capacity", default=None, allow_none=True, minimum=1)
    max_value_size = url.pop_int("max_value_size", default=None, allow_none=True, minimum=0)
    server_evicts = url.pop_choice("eviction", ("none", "server"), "none") == "server"
    password = url.pop_password()
    url.expect_no_options()
    username = unquote(url.username) if url.username else None
    no_retries = Retry(NoBackoff(), 0)
    if is_unix:
        client = redis.Redis(
            unix_socket_path=unquote(url.path),
            db=db,
            username=username,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=no_retries,
        )
    else:
        client = redis.Redis(
            host=url.host or "localhost",
            port=6379 if url.port is None else url.port,
            db=db,
            username=username,
            password=password,
            ssl=url.scheme == "rediss",
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=no_retries,
        )
    return _owning(
        client,
        url,
        namespace=chosen_namespace,
        capacity=capacity,
        max_value_size=max_value_size,
        ttl_resolution=REDIS_TTL_RESOLUTION,
        server_evicts=server_evicts,
    )


# ---------------------------------------------------------------------------- fakeredis
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
    chosen_namespace = _pop_namespace(url, namespace)
    capacity = url.pop_int("capacity", default=None, allow_none=True, minimum=1)
    max_value_size = url.pop_int("max_value_size", default=None, allow_none=True, minimum=0)
    url.expect_no_options()
    client = fakeredis_client(clock)
    return _owning(
        client,
        url,
        namespace=chosen_namespace,
        capacity=capacity,
        max_value_size=max_value_size,
        ttl_resolution=FAKEREDIS_TTL_RESOLUTION,
    )
