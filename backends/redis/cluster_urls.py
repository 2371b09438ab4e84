"""The ``redis+cluster://`` and ``rediss+cluster://`` URL factory: :func:`redis_cluster_from_url`.

The single-server factory (:mod:`.urls`) with a ``redis.RedisCluster`` client instead of a
``redis.Redis``; the options mean the same. The registry finds it by its import path,
``cachespec.backends.redis:redis_cluster_from_url``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from ..contract import BackendUnavailable, Clock
from ..urls import BackendURL
from .backend import UNAVAILABLE, RedisBackend
from .bounded import BoundedRedisBackend
from .cluster import RedisClusterBackend
from .tls import TLSFiles, pop_tls
from .ttl import REDIS_TTL_RESOLUTION
from .urls import DEFAULT_TIMEOUT, owning, pop_namespace

__all__ = ["DEFAULT_PORT", "redis_cluster_from_url"]

DEFAULT_PORT = 6379

# The COMMAND table each client is built with, by seed list: fetched once per process.
_TABLES: dict[tuple[tuple[str, int], ...], dict[str, dict[str, Any]]] = {}
_TABLES_LOCK = threading.Lock()


class _SharedTableCluster(redis.RedisCluster):
    """A ``RedisCluster`` that asks the cluster for its ``COMMAND`` table once per process.

    redis-py builds every cluster client's key-position table from ``COMMAND`` (several
    hundred commands, about 0.1 s of parsing: docs/facts.md, "Redis Cluster"). An app that
    opens many namespaces, or the suite, which opens one per example, would pay that each
    time; clients built from the same seeds share the first answer instead. The table
    describes the server's commands, not its data, and a client that meets a command it does
    not know still asks the server (``COMMAND GETKEYS``).
    """

    def __init__(self, *, table_key: tuple[tuple[str, int], ...], **options: Any) -> None:
        self._table_key = table_key  # read by command(), which __init__ calls
        init: Callable[..., None] = super().__init__  # unannotated in redis-py
        init(**options)

    def command(self, **kwargs: Any) -> dict[str, dict[str, Any]]:
        with _TABLES_LOCK:
            table = _TABLES.get(self._table_key)
        if table is None:
            fetch: Callable[..., dict[str, dict[str, Any]]] = super().command
            table = fetch(**kwargs)
            with _TABLES_LOCK:
                _TABLES[self._table_key] = table
        return dict(table)  # redis-py renames keys in the dict it is given


def _seeds(url: BackendURL) -> list[ClusterNode]:
    """The nodes the client asks for the cluster's layout (it finds the others itself)."""
    seeds = []
    for host, port in url.hosts:
        if port == 0:
            raise url.error("port 0 is not a server's port; give each node's port")
        node: Callable[[str, int], ClusterNode] = ClusterNode  # unannotated in redis-py
        seeds.append(node(host or "localhost", DEFAULT_PORT if port is None else port))
    return seeds


def redis_cluster_from_url(
    url: BackendURL, *, clock: Clock | None = None, namespace: str | None = None
) -> RedisBackend:
    """``redis+cluster://[[user]:password@]host[:port][,host[:port]...]`` (``rediss+cluster``:
    TLS). The hosts are seeds: any reachable one is enough to find every node.

    Options as for ``redis://`` (:func:`~cachespec.backends.redis.redis_from_url`):
    ``namespace``, ``timeout``, ``capacity``, ``max_value_size``, ``eviction``,
    ``password_env`` / ``password_file``, and for ``rediss+cluster://`` the TLS files
    ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` (:mod:`.tls`; verification always
    on). A cluster has database 0 only: a path other than
    ``/`` or ``/0`` is a ConfigurationError. Without ``capacity`` the namespace is a
    :class:`~cachespec.backends.redis.cluster.RedisClusterBackend`, whose keys spread over
    the masters; with one, a :class:`~cachespec.backends.redis.BoundedRedisBackend` whose
    keys share one hash tag (one slot: its scripts need that).

    redis-py's retries are off, as for one server: a node that cannot be reached is
    ``BackendUnavailable`` within about ``timeout``, and no call is sent twice. ``MOVED`` and
    ``ASK`` redirections are followed (they are the cluster's routing, not a retry).
    """
    del clock  # the servers' own clocks govern expiry
    if url.path not in ("", "/", "/0"):
        raise url.error(f"a cluster has database 0 only; got the path {url.path!r}")
    seeds = _seeds(url)
    chosen_namespace = pop_namespace(url, namespace)
    timeout = url.pop_float("timeout", default=DEFAULT_TIMEOUT, minimum=0.0)
    if not timeout > 0:
        raise url.error(f"option timeout={timeout} must be more than 0 seconds")
    capacity = url.pop_int("capacity", default=None, allow_none=True, minimum=1)
    max_value_size = url.pop_int("max_value_size", default=None, allow_none=True, minimum=0)
    server_evicts = url.pop_choice("eviction", ("none", "server"), "none") == "server"
    password = url.pop_password()
    tls = pop_tls(url)  # as for one server: every file loaded now, verification always on
    files = tls or TLSFiles()
    url.expect_no_options()
    try:
        client = _SharedTableCluster(
            table_key=tuple((node.host, node.port) for node in seeds),
            startup_nodes=seeds,
            username=unquote(url.username) if url.username else None,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            ssl=tls is not None,
            ssl_cert_reqs="required",
            ssl_check_hostname=True,
            ssl_ca_certs=files.ca_certs,
            ssl_certfile=files.certfile,
            ssl_keyfile=files.keyfile,
        )
    except (*UNAVAILABLE, RedisClusterException) as exc:
        raise BackendUnavailable(f"{url.safe}: Redis Cluster unavailable: {exc}") from exc
    return owning(
        client,  # type: ignore[arg-type]  # a RedisCluster speaks the commands used
        url,
        namespace=chosen_namespace,
        capacity=capacity,
        max_value_size=max_value_size,
        ttl_resolution=REDIS_TTL_RESOLUTION,
        server_evicts=server_evicts,
        kind=RedisClusterBackend if capacity is None else BoundedRedisBackend,
    )
