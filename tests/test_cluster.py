"""The Redis Cluster adapter (``redis+cluster://``) against a cluster the harness starts.

One cluster (3 masters, 3 replicas, on the harness's clock) serves the whole module; each
test works in namespaces of its own and the cluster is flushed between tests. Round trips
are counted on the client (every request redis-py writes goes through one
``send_packed_command`` per connection), commands on the servers (``INFO commandstats``):
no ``MONITOR``, no timing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.connection
from redis.crc import key_slot

from cachespec.backends import (
    NO_VALUE,
    Backend,
    BackendUnavailable,
    BackendURL,
    ConfigurationError,
    open_backend,
)
from cachespec.backends.redis import BoundedRedisBackend, RedisBackend, RedisClusterBackend
from cachespec.backends.redis.cluster import NO_HASH_TAG
from cachespec.conformance.servers import ManagedServer, harness_available
from cachespec.conformance.servers.cluster import RedisClusterServer, start_redis_cluster

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServer]:
    reason = harness_available("redis-cluster")
    if reason is not None:
        pytest.fail(f"the cluster harness cannot run here: {reason}")
    with start_redis_cluster() as started:
        yield started


@pytest.fixture
def fresh(cluster: RedisClusterServer) -> RedisClusterServer:
    cluster.flush()
    return cluster


def node_client(node: ManagedServer) -> redis.Redis:
    return redis.Redis(host=node.host, port=node.port)


def dbsize(node: ManagedServer) -> int:
    client = node_client(node)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def calls(node: ManagedServer, command: str) -> int:
    """How many times ``node`` ran ``command`` since it started (INFO commandstats)."""
    client = node_client(node)
    try:
        stats: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def prefix(backend: Backend) -> bytes:
    """The bytes every entry's Redis key starts with."""
    assert isinstance(backend, RedisBackend)
    return backend.key_prefix


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Requests written, by the server's port: one per round trip (a pipeline's commands
    to one node are packed into one write)."""
    counted: Counter[int] = Counter()
    original: Any = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        counted[int(self.port)] += 1
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return counted


# --- URLs -----------------------------------------------------------------------------------


def test_a_url_names_several_seeds() -> None:
    url = BackendURL("redis+cluster://a:7000,b,[::1]:7002/?namespace=x")
    assert url.hosts == [("a", 7000), ("b", None), ("::1", 7002)]


def test_a_one_server_scheme_refuses_several_hosts() -> None:
    with pytest.raises(ConfigurationError, match=r"redis:// takes one host, not 2"):
        open_backend("redis://127.0.0.1:1,127.0.0.1:2")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://127.0.0.1:1,127.0.0.1:x", "Port could not be cast"),
        ("redis+cluster://127.0.0.1:1,,127.0.0.1:2", "an empty host"),
        ("redis+cluster://127.0.0.1:0", "port 0"),
        ("redis+cluster://127.0.0.1:1/1", "database 0 only"),
        ("redis+cluster://127.0.0.1:1?timout=1", "unknown option"),
        ("redis+cluster://127.0.0.1:1?timeout=0", "more than 0"),
        ("redis+cluster://127.0.0.1:1?capacity=0", "at least 1"),
        ("redis+cluster://127.0.0.1:1?ssl_ca_certs=/ca.pem", "TLS options need a rediss"),
        ("rediss+cluster://127.0.0.1:1?ssl_ca_certs=/no/such/ca.pem", "ssl_ca_certs=/no/such"),
        ("rediss+cluster://127.0.0.1:1?ssl_keyfile=/k.pem", "without ssl_certfile"),
    ],
)
def test_a_bad_url_is_a_configuration_error_before_any_connection(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_backend(url)


def test_no_cluster_there_is_unavailable_and_shows_no_password() -> None:
    with pytest.raises(BackendUnavailable) as raised:
        open_backend("redis+cluster://:hunter2@127.0.0.1:1?timeout=0.5")
    assert "hunter2" not in str(raised.value)
    assert "redis+cluster://:***@127.0.0.1:1" in str(raised.value)


# --- Layout: a plain namespace spreads, a bounded one stays on one slot ---------------------


def test_a_plain_namespace_spreads_over_every_master(fresh: RedisClusterServer) -> None:
    backend = open_backend(fresh.url, namespace="spread")
    try:
        assert isinstance(backend, RedisClusterBackend)
        assert backend.key_prefix == NO_HASH_TAG + b"{spread}:"
        backend.set_many({f"k{i}": b"v" for i in range(100)})
        assert all(dbsize(master) > 0 for master in fresh.masters)
        assert sum(dbsize(master) for master in fresh.masters) == 100
    finally:
        backend.close()


def test_a_bounded_namespace_keeps_one_slot(fresh: RedisClusterServer) -> None:
    backend = open_backend(f"{fresh.url}?capacity=50", namespace="lru")
    try:
        assert isinstance(backend, BoundedRedisBackend)
        assert backend.key_prefix == b"{lru}:"
        backend.set_many({f"k{i}": b"v" for i in range(40)})
        sizes = sorted(dbsize(master) for master in fresh.masters)
        # 40 entries and the bookkeeping on one master: the recency set and the use counter
        # (the expiry index exists once an entry has a TTL).
        assert sizes == [0, 0, 42]
        assert len(backend.get_many([f"k{i}" for i in range(40)])) == 40
    finally:
        backend.close()


def test_a_plain_namespace_on_a_cluster_refuses_a_capacity(fresh: RedisClusterServer) -> None:
    client = redis.RedisCluster(host=fresh.masters[0].host, port=fresh.masters[0].port)
    with pytest.raises(ConfigurationError, match="plain namespace, without capacity"):
        RedisClusterBackend(client, capacity=3)
    client.close()


# --- Batches: split by slot, one round trip per master --------------------------------------


def test_batches_across_slots_agree_with_single_calls(fresh: RedisClusterServer) -> None:
    backend = open_backend(fresh.url, namespace="batches")
    try:
        keys = [f"key-{i}" for i in range(60)] + ["{tag}a", "{tag}b", "{tag}c"]
        assert len({key_slot(prefix(backend) + k.encode()) for k in keys}) > 50
        backend.set_many({key: key.encode() for key in keys})
        assert backend.get_many([*keys, "missing", keys[0]]) == {k: k.encode() for k in keys}
        assert all(backend.get(key) == key.encode() for key in keys)
        backend.delete_many(keys[::2])
        assert set(backend.get_many(keys)) == set(keys[1::2])
        assert backend.get(keys[0]) is NO_VALUE
    finally:
        backend.close()


def test_set_many_with_a_ttl_expires_on_the_harness_clock(fresh: RedisClusterServer) -> None:
    assert fresh.clock is not None
    backend = open_backend(fresh.url, namespace="ttl")
    try:
        keys = [f"t{i}" for i in range(30)]
        backend.set_many({key: b"v" for key in keys}, ttl=10)
        fresh.clock.advance(9.9)
        assert len(backend.get_many(keys)) == 30
        fresh.clock.advance(0.2)  # past 10 s and the 2 ms resolution, on every master
        assert backend.get_many(keys) == {}
    finally:
        backend.close()


def test_get_many_is_one_round_trip_per_master(
    fresh: RedisClusterServer, sends: Counter[int]
) -> None:
    backend = open_backend(fresh.url, namespace="trips")
    try:
        keys = [f"k{i}" for i in range(100)]
        backend.set_many({key: b"v" for key in keys})
        evals_before = [calls(master, "eval") for master in fresh.masters]
        mgets_before = sum(calls(master, "mget") for master in fresh.masters)
        sends.clear()
        assert len(backend.get_many(keys)) == 100
        ports = {master.port for master in fresh.masters}
        assert dict(sends) == dict.fromkeys(ports, 1)
        # Each master ran one script for all its keys, whatever their slots: not one MGET
        # per slot, and no CROSSSLOT.
        evals = [calls(master, "eval") for master in fresh.masters]
        assert [after - before for after, before in zip(evals, evals_before, strict=True)] == [
            1,
            1,
            1,
        ]
        assert sum(calls(master, "mget") for master in fresh.masters) == mgets_before
    finally:
        backend.close()


def test_a_batch_on_one_master_is_one_round_trip(
    fresh: RedisClusterServer, sends: Counter[int]
) -> None:
    backend = open_backend(fresh.url, namespace="one")
    client = redis.RedisCluster(host=fresh.masters[0].host, port=fresh.masters[0].port)
    try:
        assert isinstance(backend, RedisClusterBackend)
        # Keys of one master, found by their slots (a key's own braces are no hash tag here:
        # the namespace's "{}" comes first, so Redis hashes the whole name).
        first = fresh.masters[0].port
        node_of: Any = client.get_node_from_key  # unannotated in redis-py
        keys = [
            key
            for key in (f"k{i}" for i in range(200))
            if node_of(prefix(backend) + key.encode()).port == first
        ]
        assert len(keys) > 20
        backend.set_many({key: b"v" for key in keys}, ttl=60)
        sends.clear()
        assert len(backend.get_many(keys)) == len(keys)
        backend.delete_many(keys)
        assert dict(sends) == {first: 2}
    finally:
        client.close()
        backend.close()


def test_writes_and_deletes_are_one_round_trip_per_master(
    fresh: RedisClusterServer, sends: Counter[int]
) -> None:
    backend = open_backend(fresh.url, namespace="writes")
    try:
        items = {f"w{i}": b"v" for i in range(50)}
        ports = {master.port for master in fresh.masters}
        writes: list[Callable[[], None]] = [
            lambda: backend.set_many(items),
            lambda: backend.set_many(items, ttl=30),
            lambda: backend.delete_many(items),
        ]
        for write in writes:
            sends.clear()
            write()
            assert dict(sends) == dict.fromkeys(ports, 1)
    finally:
        backend.close()


# --- clear ---------------------------------------------------------------------------------


def test_clear_removes_its_namespace_on_every_master_and_nothing_else(
    fresh: RedisClusterServer,
) -> None:
    mine = open_backend(fresh.url, namespace="mine")
    other = open_backend(fresh.url, namespace="mine:other")
    bounded = open_backend(f"{fresh.url}?capacity=10", namespace="mine")
    try:
        mine.set_many({f"k{i}": b"v" for i in range(2500)})  # more than one SCAN page
        other.set_many({f"k{i}": b"o" for i in range(20)})
        bounded.set("k0", b"b")
        mine.clear()
        assert mine.get_many([f"k{i}" for i in range(2500)]) == {}
        assert len(other.get_many([f"k{i}" for i in range(20)])) == 20
        assert bounded.get("k0") == b"b"  # {mine}: a bounded namespace is another layout
    finally:
        for backend in (mine, other, bounded):
            backend.close()


# --- The operations that need one atomic step on one key ------------------------------------


def test_add_and_compare_operations_act_on_one_key(fresh: RedisClusterServer) -> None:
    backend = open_backend(fresh.url, namespace="atomic")
    try:
        assert isinstance(backend, RedisBackend)
        assert backend.guarantees.compare_and_set
        assert backend.add("a", b"1")
        assert not backend.add("a", b"2")
        assert not backend.compare_and_set("a", b"2", b"3")
        assert backend.compare_and_set("a", b"1", b"3")
        assert backend.compare_and_delete("a", b"3")
        assert backend.get("a") is NO_VALUE
    finally:
        backend.close()


# --- The harness ---------------------------------------------------------------------------


def test_every_node_reads_the_one_clock(cluster: RedisClusterServer) -> None:
    assert cluster.clock is not None
    assert len(cluster.nodes) == 6
    assert len(cluster.masters) == 3
    cluster.clock.advance(1.25)  # returns once every node has seen it
    expected = cluster.clock.server_microseconds()
    for node in cluster.nodes:
        client = node_client(node)
        seconds, micros = client.time()
        client.close()
        assert seconds * 1_000_000 + micros == expected


def test_the_cluster_is_ok_with_a_replica_per_master(cluster: RedisClusterServer) -> None:
    roles: Counter[str] = Counter()
    for node in cluster.nodes:
        client = node_client(node)
        try:
            assert client.cluster("INFO")["cluster_state"] == "ok"
            replication = client.info("replication")
        finally:
            client.close()
        roles[replication["role"]] += 1
        if node in cluster.masters:
            assert replication["connected_slaves"] == 1
    assert roles == {"master": 3, "slave": 3}


def test_flush_empties_every_master(cluster: RedisClusterServer) -> None:
    backend = open_backend(cluster.url, namespace="flush")
    try:
        backend.set_many({f"k{i}": b"v" for i in range(30)})
        cluster.flush()
        assert [dbsize(master) for master in cluster.masters] == [0, 0, 0]
    finally:
        backend.close()


def test_clients_from_the_same_seeds_ask_for_the_command_table_once(
    fresh: RedisClusterServer,
) -> None:
    """redis-py builds each cluster client's key table from ``COMMAND``; this process has
    asked for it already (the tests above), so more namespaces ask no node again."""
    open_backend(fresh.url, namespace="first").close()
    before = sum(calls(node, "command") for node in fresh.nodes)
    assert before >= 1  # counted: the first client of this process asked for it
    for namespace in ("second", "third", "fourth"):
        backend = open_backend(fresh.url, namespace=namespace)
        backend.set("k", b"v")
        assert backend.get("k") == b"v"
        backend.close()
    assert sum(calls(node, "command") for node in fresh.nodes) == before
