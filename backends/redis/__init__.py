"""The Redis backend (``redis://``, ``rediss://``, ``unix://``), on a cluster too
(``redis+cluster://``), and its in-process twin, ``fakeredis://``.

This package imports redis-py: the registry imports it only when one of these schemes is
opened, and ``cachespec.backends`` itself never does, so a bare install still works.
fakeredis is imported only inside :func:`fakeredis_from_url` and :func:`fakeredis_client`.

One concern per module; import the public names from here, not from the modules:

* :mod:`.backend`: :class:`RedisBackend`, a plain namespace (native commands; it declares
  no eviction, or :data:`REDIS_SERVER_EVICTION`), and what every kind shares:
  construction, errors, compare-and-set;
* :mod:`.bounded`: :class:`BoundedRedisBackend`, the subclass ``RedisBackend(client,
  capacity=N)`` builds: an exact LRU kept by Lua scripts;
* :mod:`.cluster`: :class:`RedisClusterBackend`, a plain namespace on a Redis Cluster (its
  keys spread over the masters; batches split by slot), and :mod:`.cluster_urls`:
  :func:`redis_cluster_from_url`, for ``redis+cluster://`` and ``rediss+cluster://``;
* :mod:`.scripts`: those scripts, read from ``lua/*.lua``;
* :mod:`.layout`: the keys a namespace uses on the server;
* :mod:`.ttl`: TTLs in milliseconds, and how late a server may serve an entry;
* :mod:`.urls`: :func:`redis_from_url`, the URL factory;
* :mod:`.fake`: :func:`fakeredis_client` and :func:`fakeredis_from_url`, fakeredis on an
  injected clock.

Needs Redis 5 or later: ``UNLINK`` (4.0), and scripts that write after reading ``TIME``
(effect replication, the default since 5.0). Checked on 7.0.
"""

from __future__ import annotations

from .backend import DEFAULT_NAMESPACE, REDIS_SERVER_EVICTION, RedisBackend
from .bounded import BoundedRedisBackend
from .cluster import RedisClusterBackend
from .cluster_urls import redis_cluster_from_url
from .fake import fakeredis_client, fakeredis_from_url
from .ttl import FAKEREDIS_TTL_RESOLUTION, MAX_TTL, REDIS_TTL_RESOLUTION
from .urls import DEFAULT_TIMEOUT, redis_from_url

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_TIMEOUT",
    "FAKEREDIS_TTL_RESOLUTION",
    "MAX_TTL",
    "REDIS_SERVER_EVICTION",
    "REDIS_TTL_RESOLUTION",
    "BoundedRedisBackend",
    "RedisBackend",
    "RedisClusterBackend",
    "fakeredis_client",
    "fakeredis_from_url",
    "redis_cluster_from_url",
    "redis_from_url",
]
