"""The cluster adapter's fast path (backends/redis/cluster_route.py) on the harness's cluster:
single-key commands and batches go straight to their slot's master, and the cluster client
takes over exactly when the fast path cannot settle a command, never sending one twice.

Counted, never timed: commands on the servers (``INFO commandstats``), and calls to the
cluster client's ``execute_command``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from cachespec.backends import BackendUnavailable, open_backend
from cachespec.backends.redis import RedisClusterBackend
from cachespec.backends.redis import cluster as cluster_backend
from cachespec.conformance.servers import ManagedServer
from cachespec.conformance.servers.cluster import RedisClusterServer, start_redis_cluster
from cachespec.conformance.servers.failover import master_of

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServer]:
    with start_redis_cluster() as started:
        yield started


@pytest.fixture
def backend(cluster: RedisClusterServer) -> Iterator[RedisClusterBackend]:
    cluster.flush()
    opened = open_backend(f"{cluster.url}?timeout=0.3", namespace="route")
    assert isinstance(opened, RedisClusterBackend)
    yield opened
    opened.close()


@pytest.fixture
def through_cluster(
    backend: RedisClusterBackend, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[Any, ...]]:
    """The commands the cluster client's own ``execute_command`` was given."""
    seen: list[tuple[Any, ...]] = []
    client: Any = backend._client
    original = client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(client, "execute_command", counting)
    return seen


def _calls(node: ManagedServer, command: str) -> int:
    with redis.Redis(port=node.port) as client:
        stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def _name(backend: RedisClusterBackend, key: str) -> bytes:
    return backend.key_prefix + key.encode()


def test_single_key_calls_go_straight_to_the_slots_master(
    cluster: RedisClusterServer,
    backend: RedisClusterBackend,
    through_cluster: list[tuple[Any, ...]],
) -> None:
    owner = master_of(cluster, key_slot(_name(backend, "k")))
    sets, gets = _calls(owner, "set"), _calls(owner, "get")
    backend.set("k", b"v", 60)
    assert backend.get("k") == b"v"
    assert backend.add("k", b"w", 60) is False
    backend.delete("k")
    assert through_cluster == []
    assert (_calls(owner, "set"), _calls(owner, "get")) == (sets + 2, gets + 1)


def test_a_stale_map_is_redirected_and_the_right_keys_value_comes_back(
    cluster: RedisClusterServer,
    backend: RedisClusterBackend,
    through_cluster: list[tuple[Any, ...]],
) -> None:
    """The client's map names the wrong master for a slot (as after a failover or a
    resharding it has not learnt): that master answers MOVED, nothing is done there, and
    the cluster client sends the command where the slot lives, and patches the map."""
    for key in ("a", "b", "c"):
        backend.set(key, key.encode(), 60)
    slot = key_slot(_name(backend, "a"))
    client: Any = backend._client
    cache: Any = client.nodes_manager.slots_cache
    right = cache[slot]
    wrong = next(nodes for nodes in cache.values() if nodes[0].name != right[0].name)
    cache[slot] = wrong
    assert backend.get("a") == b"a"
    assert [args[0] for args in through_cluster] == ["GET"]
    assert cache[slot][0].name == right[0].name  # the cluster client patched its map
    # A batch that meets MOVED is handed over whole (its commands are idempotent).
    other = key_slot(_name(backend, "b"))
    cache[other] = next(nodes for nodes in cache.values() if nodes[0].name != cache[other][0].name)
    assert backend.get_many(["a", "b", "c"]) == {"a": b"a", "b": b"b", "c": b"c"}
    # The wrong master refused the batch script ("non local key"), the batch went slot by
    # slot, and the script is still used: a slot that moves is no reason to stop.
    assert backend._reads_by_node


def test_a_command_whose_reply_was_lost_is_not_sent_again(
    cluster: RedisClusterServer,
    backend: RedisClusterBackend,
    through_cluster: list[tuple[Any, ...]],
) -> None:
    """``add`` to a stopped master times out; it may have run (it has, once the master
    continues), so it is not sent a second time, through the cluster client or otherwise:
    a second SET NX would answer False for this caller's own write."""
    owner = master_of(cluster, key_slot(_name(backend, "lease")))
    before = _calls(owner, "set")
    owner.process.send_signal(signal.SIGSTOP)
    os.waitpid(owner.pid, os.WUNTRACED)
    try:
        with pytest.raises(BackendUnavailable):
            backend.add("lease", b"mine", 60)
    finally:
        owner.process.send_signal(signal.SIGCONT)
        os.waitpid(owner.pid, os.WCONTINUED)
    assert through_cluster == []
    reader = open_backend(cluster.url, namespace="route")
    try:
        assert reader.get("lease") == b"mine"  # the buffered SET NX ran once continued
    finally:
        reader.close()
    assert _calls(owner, "set") == before + 1
    # The master is suspect now: its slots go through the cluster client until it succeeds.
    assert backend.get("lease") == b"mine"
    assert [args[0] for args in through_cluster] == ["GET"]
    assert backend.get("lease") == b"mine"
    assert len(through_cluster) == 1  # cleared: straight to the master again


def test_a_batch_is_one_pipeline_per_master_without_the_cluster_client(
    cluster: RedisClusterServer,
    backend: RedisClusterBackend,
    through_cluster: list[tuple[Any, ...]],
) -> None:
    keys = [f"k{i}" for i in range(60)]
    owners = {master_of(cluster, key_slot(_name(backend, key))).port for key in keys}
    assert len(owners) == 3
    backend.set_many({key: key.encode() for key in keys}, 60)
    assert backend.get_many(keys) == {key: key.encode() for key in keys}
    backend.delete_many(keys)
    assert backend.get_many(keys) == {}
    assert through_cluster == []


def test_a_node_that_cannot_run_the_batch_script_is_read_slot_by_slot(
    cluster: RedisClusterServer,
    backend: RedisClusterBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that cannot run the per-node read (Redis before 7.0 cannot compile its
    flags; here a flag this one does not know) is read slot by slot from then on: the
    values are right, and the script is not sent again."""
    refused = ("EVAL", b"#!lua flags=no-such-flag\nreturn {}", 0)
    monkeypatch.setattr(cluster_backend, "READ_ON_NODE", refused)
    keys = [f"s{i}" for i in range(30)]
    backend.set_many({key: key.encode() for key in keys}, 60)
    assert backend.get_many([*keys, "missing"]) == {key: key.encode() for key in keys}
    assert not backend._reads_by_node
    evals = sum(_calls(master, "eval") for master in cluster.masters)
    mgets = sum(_calls(master, "mget") for master in cluster.masters)
    assert backend.get_many(keys) == {key: key.encode() for key in keys}
    assert sum(_calls(master, "eval") for master in cluster.masters) == evals
    assert sum(_calls(master, "mget") for master in cluster.masters) > mgets


def test_a_node_that_fails_one_batch_is_asked_again_for_the_next(
    cluster: RedisClusterServer,
    backend: RedisClusterBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An error a node answers for one batch (a cluster down mid-failover, a busy node; here
    a script that says so) sends that batch slot by slot, and the next batch still tries
    the script: only a node that cannot run it at all is never asked again."""
    failing = (
        "EVAL",
        b"#!lua flags=allow-cross-slot-keys,no-writes\nreturn redis.error_reply('BUSY now')",
        0,
    )
    monkeypatch.setattr(cluster_backend, "READ_ON_NODE", failing)
    keys = [f"b{i}" for i in range(30)]
    backend.set_many({key: key.encode() for key in keys}, 60)
    assert backend.get_many(keys) == {key: key.encode() for key in keys}
    assert backend._reads_by_node
