"""The ``redis://``, ``rediss://`` and ``unix://`` URL factory, and what the fakeredis one shares.

:func:`redis_from_url` reads a backend URL into a redis-py client and a
:class:`~cachespec.backends.redis.RedisBackend` that owns it; the registry
(``backends/registry.py``) finds it by its import path, ``cachespec.backends.redis:redis_from_url``.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..contract import Clock
from ..urls import BackendURL
from .backend import DEFAULT_NAMESPACE, RedisBackend
from .tls import TLSFiles, pop_tls
from .ttl import REDIS_TTL_RESOLUTION

__all__ = ["DEFAULT_TIMEOUT", "redis_from_url"]

DEFAULT_TIMEOUT: Final = 5.0
"""Seconds allowed to connect, and to wait for each reply."""


def pop_namespace(url: BackendURL, override: str | None) -> str:
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


def owning(
    client: redis.Redis,
    url: BackendURL,
    *,
    namespace: str,
    capacity: int | None,
    max_value_size: int | None,
    ttl_resolution: float,
    server_evicts: bool = False,
    kind: type[RedisBackend] = RedisBackend,
) -> RedisBackend:
    """A backend of ``kind`` that owns ``client`` (closes it), or ``client`` closed if
    building fails."""
    try:
        return kind(
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
    chosen_namespace = pop_namespace(url, namespace)
    timeout = url.pop_float("timeout", default=DEFAULT_TIMEOUT, minimum=0.0)
    if not timeout > 0:
        raise url.error(f"option timeout={timeout} must be more than 0 seconds")
    capacity = url.pop_int("capacity", default=None, allow_none=True, minimum=1)
    max_value_size = url.pop_int("max_value_size", default=None, allow_none=True, minimum=0)
    server_evicts = url.pop_choice("eviction", ("none", "server"), "none") == "server"
    password = url.pop_password()
    tls = pop_tls(url)  # every file loaded now: a bad one is a ConfigurationError, unsent
    files = tls or TLSFiles()
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
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=no_retries,
            ssl=tls is not None,
            # Verification is on by default in redis-py; said here so it stays on (.tls).
            ssl_cert_reqs="required",
            ssl_check_hostname=True,
            ssl_ca_certs=files.ca_certs,
            ssl_certfile=files.certfile,
            ssl_keyfile=files.keyfile,
        )
    return owning(
        client,
        url,
        namespace=chosen_namespace,
        capacity=capacity,
        max_value_size=max_value_size,
        ttl_resolution=REDIS_TTL_RESOLUTION,
        server_evicts=server_evicts,
    )
