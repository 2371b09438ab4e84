"""The harness side of the cluster faults (conformance/servers/failover.py) and where the
``faults.cluster_*`` properties run.

Each property's mutant is in tests/cluster_mutants.py, and
test_server_conformance.py::test_the_suite_rejects_the_broken_adapter checks that the suite
rejects it; the correct adapter passes them in the tox env ``redis-cluster``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from cachespec.conformance import run_suite
from cachespec.conformance.properties import PROPERTIES
from cachespec.conformance.runner import CANNOT_CHECK_HERE, NOT_DECLARED
from cachespec.conformance.servers.cluster import (
    MASTERS,
    NODE_TIMEOUT_MS,
    RedisClusterServer,
    start_redis_cluster,
)
from cachespec.conformance.servers.failover import (
    NODE_FAULTS,
    NodeFault,
    _role,
    master_of,
    node_fault,
)
from cachespec.spec import AsyncReplicaFailover, Guarantees

pytestmark = pytest.mark.redis  # a cluster's nodes are redis-servers

CLUSTER_FAULTS = [p for p in PROPERTIES if p.id.startswith("faults.cluster_")]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServer]:
    with start_redis_cluster() as started:
        yield started


def _node_timeout(cluster: RedisClusterServer) -> set[str]:
    timeouts = set()
    for node in cluster.nodes:
        with redis.Redis(port=node.port, decode_responses=True) as client:
            timeouts.add(client.config_get("cluster-node-timeout")["cluster-node-timeout"])
    return timeouts


def _client(cluster: RedisClusterServer) -> redis.RedisCluster:
    host, port = cluster.url.removeprefix("redis+cluster://").split(",")[0].split(":")
    return redis.RedisCluster(host=host, port=int(port))


@pytest.mark.parametrize("fault", NODE_FAULTS, ids=lambda f: f.name)
def test_a_failover_promotes_the_replica_and_the_old_master_rejoins(
    cluster: RedisClusterServer, fault: NodeFault
) -> None:
    victim = cluster.masters[0]
    seen: list[object] = []
    with node_fault(cluster, victim, fault) as failover:
        seen.append(victim in cluster.down)
        failover.promote()
        seen.append(_role(failover.replica))
        replica = failover.replica
    assert seen == [True, b"master"]
    assert not cluster.down
    assert _role(victim) == b"slave"  # it follows the node that replaced it
    assert replica in cluster.masters
    assert victim not in cluster.masters
    assert len(cluster.masters) == MASTERS
    # The long timeout is back: the clock's later jumps fail no node (cluster.py).
    assert _node_timeout(cluster) == {str(NODE_TIMEOUT_MS)}
    cluster.flush()  # FLUSHALL on the masters found again: none is a replica now


def test_a_write_acknowledged_before_the_failover_is_lost_as_declared(
    cluster: RedisClusterServer,
) -> None:
    """The fact the declared loss rests on (docs/facts.md, "Redis Cluster"): a write the
    master acknowledged but never sent its replica is gone after the failover, and the key
    reads as its older value."""
    client = _client(cluster)
    acknowledged: list[object] = []
    try:
        client.set("{lost}k", b"old")
        victim = master_of(cluster, key_slot(b"{lost}k"))

        def doomed() -> None:
            acknowledged.append(client.set("{lost}k", b"new"))
            acknowledged.append(client.get("{lost}k"))

        with node_fault(cluster, victim, NodeFault.LOSE, doomed):
            pass  # restore() promotes the replica, then brings the node back
    finally:
        client.close()
    assert acknowledged == [True, b"new"]
    reader = _client(cluster)
    try:
        assert reader.get("{lost}k") == b"old"
    finally:
        reader.close()


class Boom(Exception):
    pass


def test_the_cluster_is_whole_again_even_when_the_block_raises(
    cluster: RedisClusterServer,
) -> None:
    victim = cluster.masters[0]
    with pytest.raises(Boom), node_fault(cluster, victim, NodeFault.KILL):
        raise Boom
    assert not cluster.down
    assert all(node.is_running() for node in cluster.nodes)
    assert len(cluster.masters) == MASTERS
    assert _role(victim) == b"slave"


def test_a_lost_writes_fault_continues_the_replica_when_the_writes_raise(
    cluster: RedisClusterServer,
) -> None:
    victim = cluster.masters[0]

    def doomed() -> None:
        raise Boom

    with pytest.raises(Boom), node_fault(cluster, victim, NodeFault.LOSE, doomed):
        pass
    assert not cluster.down
    assert len(cluster.masters) == MASTERS


def test_off_the_harness_cluster_the_cluster_faults_are_not_run() -> None:
    assert {p.id for p in CLUSTER_FAULTS} == {
        f"faults.cluster_{name}" for name in ("calls", "recovers", "keys", "bounds")
    }
    report = run_suite("memory://", seed=1, only=["faults.cluster_*"])
    assert {r.id: r.skip for r in report.results} == dict.fromkeys(
        (p.id for p in CLUSTER_FAULTS), NOT_DECLARED
    )
    assert all("declares no failover" in r.reason for r in report.results)


def test_a_user_cluster_is_never_faulted(cluster: RedisClusterServer) -> None:
    """A cluster reached by its URL (here the harness's, as a user's would be) is not one
    the harness may fail: the properties say they cannot check it."""
    report = run_suite(cluster.url, seed=1, only=["faults.cluster_calls"])
    result = report.result("faults.cluster_calls")
    assert (result.status, result.skip) == ("skip", CANNOT_CHECK_HERE)
    assert "only the harness started" in result.reason
    assert all(node.is_running() for node in cluster.nodes)


def test_the_failover_declaration_is_typed_and_reported() -> None:
    declared = Guarantees(failover=AsyncReplicaFailover())
    assert "a write acknowledged just before it may be lost" in declared.describe()
    with pytest.raises(TypeError, match="failover must be None, AsyncReplicaFailover"):
        Guarantees(failover="async")  # type: ignore[arg-type]
