"""Redis restarted while the client was idle (issue #13, "Outages": 0 failures for both).

The Redis adapter turns redis-py's retries off, so that ``add`` is never sent twice
(``backends/redis/urls.py``). What keeps an idle restart from failing calls is redis-py's
pool: it checks an idle connection before it sends on it (``can_read``: a socket the server
closed reads as end-of-stream), and reconnects one the server closed (docs/facts.md). This
test pins that fact against a harness-started redis-server restarted under 9 idle
connections: 30 calls of every kind, add and compare-and-X included, none fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cachespec.backends import NO_VALUE, CacheError
from cachespec.backends.redis import RedisBackend, redis_from_url
from cachespec.backends.urls import BackendURL
from cachespec.conformance.servers import start_redis

pytestmark = pytest.mark.redis

CONNECTIONS = 8
CALLS: list[Callable[[RedisBackend, int], object]] = [
    lambda b, i: b.get(f"k{i}"),
    lambda b, i: b.set(f"k{i}", b"v", 60),
    lambda b, i: b.add(f"a{i}", b"v", 60),
    lambda b, i: b.get_many([f"k{i}", f"a{i}"]),
    lambda b, i: b.compare_and_set(f"k{i}", b"v", b"w", 60),
    lambda b, i: b.compare_and_delete(f"a{i}", b"v"),
    lambda b, i: b.delete_many([f"k{i}"]),
    lambda b, i: b.clear(),
]


def test_after_an_idle_restart_no_call_fails() -> None:
    with start_redis() as server:
        backend = redis_from_url(BackendURL(f"{server.url}?namespace=restart"))
        assert isinstance(backend, RedisBackend)
        try:
            client: Any = backend._client  # a redis.Redis here, not a cluster client
            pool: Any = client.connection_pool
            backend.set("warm", b"up")
            held = [pool.get_connection() for _ in range(CONNECTIONS)]
            for connection in held:
                pool.release(connection)
            assert len(pool._available_connections) >= CONNECTIONS
            server.restart()
            failed = []
            for i in range(30):
                try:
                    CALLS[i % len(CALLS)](backend, i)
                except CacheError as error:
                    failed.append(f"{type(error).__name__}: {error}")
            assert failed == []
            assert backend.get("warm") is NO_VALUE  # the calls reached the new server
        finally:
            backend.close()
