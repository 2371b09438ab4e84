"""Deliberately broken Redis and memcached adapters, each checked on a harness server.

Each mutant is the real adapter with one method replaced by what a naive adapter does.
``ADAPTER_MUTANTS`` maps a name to ``(server kind, adapter options, how to break a built
backend, the property that must fail, a pattern its reason must match)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from cluster_mutants import CLUSTER_FAULT_MUTANTS
from pymemcache.exceptions import MemcacheUnexpectedCloseError  # type: ignore[import-untyped]
from ring_mutants import RING_MUTANTS

from cachespec.backends import Backend, BackendUnavailable, open_backend
from cachespec.backends.memcached import MemcachedBackend, relative_exptime
from cachespec.backends.redis import BoundedRedisBackend, RedisBackend, RedisClusterBackend
from cachespec.backends.redis.cluster import READ_ON_NODE
from cachespec.backends.redis.cluster_route import slot_of
from cachespec.conformance.target import ServerTarget


class RawLongTTLMemcached(MemcachedBackend):
    """Passes a TTL over 30 days through as a relative exptime: memcached reads it as a Unix
    time in 1970, and the entry is gone at once."""

    def _exptime(self, seconds: float | None) -> int:
        return 0 if seconds is None else relative_exptime(seconds)


class TruncatedTTLMemcached(MemcachedBackend):
    """Sends ``int(ttl)`` (at least 1) as the exptime: no margin for memcached's whole-second
    clock and the fraction dropped, so entries die before their TTL."""

    def _exptime(self, seconds: float | None) -> int:
        return 0 if seconds is None else max(1, int(seconds))


def unchecked_sizes(backend: Backend) -> None:
    """Drops the client-side size check: an oversize value reaches the server, which refuses
    it and deletes the key's old value (docs/facts.md)."""
    backend._max_value_size = 1 << 30  # type: ignore[attr-defined]


def _whole_seconds(ttl: float | None) -> float | None:
    return float(math.floor(ttl)) if ttl is not None and ttl >= 1 else ttl


class WholeSecondTTLRedis(RedisBackend):
    """Truncates TTLs of a second or more to whole seconds (``EX int(ttl)``), on every write."""

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        super().set(key, value, _whole_seconds(ttl))

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return super().add(key, value, _whole_seconds(ttl))

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        super().set_many(items, _whole_seconds(ttl))


class FlushdbRedis(RedisBackend):
    """Clears with FLUSHDB: every tenant's keys go, not just this namespace's."""

    def clear(self) -> None:
        self._client.flushdb()


_READ_WITHOUT_RECENCY = """
local found = {}
for i = 4, #KEYS do found[i - 3] = redis.call('GET', KEYS[i]) end
return found
"""


def reads_without_recency(backend: Backend) -> None:
    """The bounded namespace's read script without its recency bump: hits are not uses."""
    assert isinstance(backend, BoundedRedisBackend)
    backend._read_script = backend._client.register_script(_READ_WITHOUT_RECENCY)


class SlotOrderClusterRedis(RedisClusterBackend):
    """Reads a batch slot by slot and hands the values back in the order the replies came
    (a naive split): with keys on several slots, values land under other keys."""

    def _read_many(self, names: list[bytes]) -> list[bytes | None]:
        replies = self._per_slot("MGET", names, lambda i: [names[i]])
        return [value for _, reply in replies for value in reply]


class MasterOrderClusterRedis(RedisClusterBackend):
    """Reads a batch with one script per master, as the adapter does, but hands the values
    back master by master (a naive reassembly): with keys on several masters, values land
    under other keys."""

    def _read_many(self, names: list[bytes]) -> list[bytes | None]:
        groups: dict[str, list[bytes]] = {}
        for name in names:
            master = self._router._master(slot_of(name))
            assert master is not None  # a settled cluster: every slot has a known master
            groups.setdefault(master[0], []).append(name)
        by_master = [name for group in groups.values() for name in group]
        found = self._router.on_masters(by_master, READ_ON_NODE)
        assert found is not None
        return found


class OneMasterClearClusterRedis(RedisClusterBackend):
    """Clears with a single-server SCAN: the keys on the masters it does not reach stay."""

    def _scan(self, pattern: bytes) -> Iterator[list[bytes]]:
        cluster: Any = self._cluster  # unannotated in redis-py
        scan: Callable[..., Any] = cluster.get_default_node().redis_connection.scan
        cursor = 0
        while True:
            cursor, names = scan(cursor, match=pattern, count=1000)
            if names:
                yield names
            if cursor == 0:
                return


def as_class(cls: type[Backend]) -> Callable[[Backend], None]:
    def rebrand(backend: Backend) -> None:
        backend.__class__ = cls

    return rebrand


# ------------------------------------------------------------ under server faults (faults.py)
class UntypedErrorsMemcached(MemcachedBackend):
    """Lets pymemcache's and the socket's errors through: a server that stops answering
    raises ``TimeoutError`` and one that died ``ConnectionRefusedError``, not a CacheError."""

    __slots__ = ()

    def _call(self, op: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("key", None)
        kwargs.pop("resend", None)
        return method(*args, **kwargs)


class NeverRecoversMemcached(MemcachedBackend):
    """A circuit breaker that never closes: after the first call the server failed, every
    call raises BackendUnavailable without trying, whether the server came back or not."""

    __slots__ = ()
    _tripped: ClassVar[set[int]] = set()  # by id(): the adapter's slots leave no room

    def _call(self, op: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if id(self) in self._tripped:
            raise BackendUnavailable(f"{op}: the circuit is open")
        try:
            return super()._call(op, method, *args, **kwargs)
        except BackendUnavailable:
            self._tripped.add(id(self))
            raise


def without_timeout(backend: Backend) -> None:
    """Connections with no socket timeout: a call to a stopped server waits for ever."""
    client: Any = backend._client  # type: ignore[attr-defined]
    client.timeout = client.connect_timeout = None
    client._idle.clear()
    client.client_pool.clear()  # the open ones had the timeout: new ones will not


def keeps_timed_out_connections(backend: Backend) -> None:
    """The hand-rolled client of many a project: a connection whose call timed out goes back
    to the pool ("the server was slow, the connection is fine"), and a one-key ``get`` takes
    the first value in the reply as the key's. The reply that arrives late, once the server
    answers again, then answers the next ``get`` on that connection, whatever its key."""
    client: Any = backend._client  # type: ignore[attr-defined]
    plain_fetch = client.fetch

    def exchange(wire: bytes, read: Callable[[Any], Any]) -> Any:
        try:
            connection = client._idle.pop()
        except IndexError:
            connection = client.client_pool.get()
        try:
            if connection.sock is None:
                connection.version()
            connection.sock.sendall(wire)
            result = read(connection.sock)
        except TimeoutError:
            client._idle.append(connection)
            raise
        except BaseException:
            client.client_pool.destroy(connection)
            raise
        client._idle.append(connection)
        return result

    def first_value(sock: Any) -> bytes | None:
        reply = b""
        while not reply.endswith(b"END\r\n"):
            more = sock.recv(65536)
            if not more:
                raise MemcacheUnexpectedCloseError()
            reply += more
        if not reply.startswith(b"VALUE "):
            return None
        header, _, rest = reply.partition(b"\r\n")
        return rest[: int(header.split()[3])]

    def fetch(names: list[bytes]) -> dict[bytes, bytes]:
        if len(names) != 1:
            return plain_fetch(names)  # type: ignore[no-any-return]
        value = exchange(b"get " + names[0] + b"\r\n", first_value)
        return {} if value is None else {names[0]: value}

    client._exchange = exchange
    client.fetch = fetch


def leaks_dropped_connections(backend: Backend) -> None:
    """A pool that keeps the connections it drops (a list, for the stats) and never closes
    them: every call that fails leaves a connection open on the server, and so does close."""
    client: Any = backend._client  # type: ignore[attr-defined]
    dropped: list[Any] = []
    client.client_pool._after_remove = dropped.append
    client.dropped = dropped


# name -> (server, adapter options, break the built backend, property, reason pattern)
ADAPTER_MUTANTS: dict[str, tuple[str, dict[str, str], Callable[[Backend], None], str, str]] = {
    "memcached_raw_long_ttl": (
        "memcached",
        {},
        as_class(RawLongTTLMemcached),
        "ttl.long",
        r"returned a miss .* live until",
    ),
    "memcached_truncated_ttl": (
        "memcached",
        {},
        as_class(TruncatedTTLMemcached),
        "ttl.lives",
        r"miss .* live until|returned True",
    ),
    "memcached_unchecked_sizes": (
        "memcached",
        {},
        unchecked_sizes,
        "values.size_limit",
        # memcached drops the old entry on a refused write: a miss, or a later add let in.
        r"accepted it|returned a miss .* allowed only|returned True; the model allowed only False",
    ),
    "redis_whole_second_ttl": (
        "redis",
        {},
        as_class(WholeSecondTTLRedis),
        "ttl.lives",
        r"returned a miss .* live until",
    ),
    "redis_flushdb_clear": (
        "redis",
        {},
        as_class(FlushdbRedis),
        "ops.clear_namespace",
        r"miss .* allowed only b",
    ),
    "redis_cluster_slot_order": (
        "redis-cluster",
        {},
        as_class(SlotOrderClusterRedis),
        "ops.get_many",
        r"get_many\(.* gave .* was written under",
    ),
    "redis_cluster_master_order": (
        "redis-cluster",
        {},
        as_class(MasterOrderClusterRedis),
        "ops.get_many",
        r"get_many\(.* gave .* was written under",
    ),
    "redis_cluster_clear_one_master": (
        "redis-cluster",
        {},
        as_class(OneMasterClearClusterRedis),
        "ops.clear",
        r"returned .* removed by clear\(\)",
    ),
    "redis_lru_reads_without_recency": (
        "redis",
        {"capacity": "4"},
        reads_without_recency,
        "lru.hit_refreshes",
        r"evicted at|allowed only b",
    ),
    "memcached_untyped_errors": (
        "memcached",
        {},
        as_class(UntypedErrorsMemcached),
        "faults.server_calls",
        r"raised (TimeoutError|ConnectionRefusedError|\w+Error).*must raise a CacheError",
    ),
    "memcached_never_recovers": (
        "memcached",
        {},
        as_class(NeverRecoversMemcached),
        "faults.server_recovers",
        r"raised 3 times after the server was back",
    ),
    "memcached_without_timeout": (
        "memcached",
        {},
        without_timeout,
        "faults.server_calls",
        r"did not return within .* it hangs",
    ),
    "memcached_keeps_timed_out_connections": (
        "memcached",
        {"clear": "none"},
        keeps_timed_out_connections,
        "faults.server_keys",
        r"never written under",
    ),
    "memcached_leaks_dropped_connections": (
        "memcached",
        {},
        leaks_dropped_connections,
        "faults.server_connections",
        r"the server counts \d+ connections",
    ),
}


def mutant_target(name: str) -> ServerTarget:
    kind, options, spoil, _, _ = ADAPTER_MUTANTS[name]

    def opener(url: str, namespace: str) -> Backend:
        backend = open_backend(url, namespace=namespace)
        spoil(backend)
        return backend

    return ServerTarget(f"{kind} ({name})", kind, dict(options), opener=opener)


# The memcached ring's node faults (conformance/ring_faults.py): tests/ring_mutants.py.
ADAPTER_MUTANTS.update(RING_MUTANTS)
# The cluster fault mutants live beside their properties' harness (tests/cluster_mutants.py).
ADAPTER_MUTANTS.update(CLUSTER_FAULT_MUTANTS)
