"""The redis-cluster kind: 3 masters and 3 replicas that act as one server, on one clock.

``cachespec check redis-cluster`` starts six redis-servers (each a
:class:`~cachespec.conformance.servers.managed.ManagedServer` with a reaper of its own, so
every stop path of one server stops each node), joins them with ``redis-cli --cluster
create ... --cluster-replicas 1``, and waits, bounded, until every node reports
``cluster_state:ok``. The target sees a :class:`RedisClusterServer`: one URL
(``redis+cluster://`` and the masters), one flush (``FLUSHALL`` on each master), one stop.

One clock for all nodes (docs/design.md, "A cluster on one clock"): every node's libfaketime
reads the same timestamp file, and the barrier returns only once each node reports the new
time, so an entry's TTL runs out at the same moment whichever node holds it.

Two settings follow from the frozen clock (docs/facts.md, "Redis Cluster under a frozen
clock"):

* a master serves only once its clock has moved ``CLUSTER_WRITABLE_DELAY`` (2 s) past its
  first cluster check, and a frozen clock never moves: the harness moves it a second at a
  time while it waits for ``cluster_state:ok``;
* failure detection compares ``mstime()`` against the node timeout, so a harness jump past
  that timeout while a ping is in flight would mark a healthy node failing; the node timeout
  is therefore longer than any run moves the clock (:data:`NODE_TIMEOUT_MS`). No failover
  happens on its own, which is what a run without injected faults needs; the cluster faults
  shorten it while they run (:mod:`.failover`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from .base import HOST, HarnessUnavailable, exchange
from .faketime import FaketimeClock, libfaketime
from .group import ServerGroup, start_nodes, stop_all
from .kind import ServerKind
from .managed import (
    PORT_ATTEMPTS,
    READY_TIMEOUT,
    ManagedServer,
    _server_env,
    free_port,
    launch,
)
from .redis import REDIS, _reply_complete

__all__ = [
    "CLOCK_SPAN",
    "CLUSTER_READY_TIMEOUT",
    "CREATE_TIMEOUT",
    "MASTERS",
    "NODE_TIMEOUT_MS",
    "REDIS_CLUSTER",
    "REPLICAS_PER_MASTER",
    "RedisClusterKind",
    "RedisClusterServer",
    "start_redis_cluster",
]

MASTERS: Final = 3
REPLICAS_PER_MASTER: Final = 1
#: How far a run may move the cluster's clock before the target starts a new cluster: five
#: years. A cluster costs seconds to start, and the TTL properties move the clock by years
#: (a single server is replaced after three, for memcached's sake: ServerKind). Not more:
#: ttl.long failed as flaky with ten years and with a century, which both let a session
#: (up to six years more: machines.MAX_SPAN and one step) cross 2038-01-19, the suspected
#: cause (docs/design.md, "A cluster on one clock"). 2026 + 5 + 6 stays below it.
CLOCK_SPAN: Final = 5 * 365 * 86_400
#: Twice that, in milliseconds: past anything a run moves the clock, so the frozen clock's
#: jumps never fail a node (module docstring).
NODE_TIMEOUT_MS: Final = 2 * CLOCK_SPAN * 1000
#: Real seconds allowed for ``redis-cli --cluster create`` (it polls once a second).
CREATE_TIMEOUT: Final = 60.0
#: Real seconds allowed, once created, until every node reports ``cluster_state:ok``.
CLUSTER_READY_TIMEOUT: Final = 60.0

_STATE_OK: Final = re.compile(rb"^cluster_state:ok\r$", re.MULTILINE)
_KNOWN: Final = re.compile(rb"^cluster_known_nodes:(\d+)\r$", re.MULTILINE)
_MASTER: Final = re.compile(rb"^role:master\r$", re.MULTILINE)
_LINK_UP: Final = b"\r\nmaster_link_status:up\r\n"
_CLI: Final = "redis-cli"
_CLI_ENV: Final = "CACHESPEC_REDIS_CLI"


class RedisClusterKind(ServerKind):
    """A node of the cluster: a redis-server with cluster mode on, its bus port given by
    :func:`start_redis_cluster`; the record's ``start`` starts the whole cluster. A node
    is a redis-server like any other: its clock, readiness and fake-time needs are the
    redis kind's (``REDIS``)."""

    def check_fake_time(self) -> None:
        REDIS.check_fake_time()

    def fake_time_preload(self) -> list[str]:
        return REDIS.fake_time_preload()

    def read_clock(self, port: int) -> int:
        return REDIS.read_clock(port)

    def answering_pid(self, port: int) -> int | None:
        return REDIS.answering_pid(port)

    def binary_path(self) -> str:
        """redis-server's path, once redis-cli (which creates the cluster) is there too."""
        found = super().binary_path()
        self.cli_path()
        return found

    def cli_path(self) -> str:
        """redis-cli's path (``$CACHESPEC_REDIS_CLI`` wins over ``PATH``)."""
        name = _cli_name()
        located = shutil.which(name)
        if located is None:
            raise HarnessUnavailable(
                f"{name} not found on PATH (install the Debian package redis-tools, which "
                f"redis-server depends on, or set {_CLI_ENV})"
            )
        return located

    def argv(self, binary: str, port: int, temp_dir: Path, log_path: Path) -> list[str]:
        """A single server's command line with cluster mode on (no bus port: see start)."""
        return [
            *REDIS.argv(binary, port, temp_dir, log_path),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(temp_dir / "nodes.conf"),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # A replica may replace its master however long ago, on the harness's clock, it
            # last heard from it: the clock jumps by years between faults (failover.py).
            "--cluster-replica-validity-factor", "0",
        ]  # fmt: skip

    def url(self, host: str, port: int) -> str:
        """One node as the cluster's seed (the client discovers the others)."""
        return f"redis+cluster://{host}:{port}"

    def start(self, options: Mapping[str, str], *, fake_time: bool) -> RedisClusterServer:
        """A new cluster; it takes no harness options (every option goes to the adapter)."""
        del options
        return start_redis_cluster(fake_time=fake_time)


def _cli_name() -> str:
    return os.environ.get(_CLI_ENV) or _CLI


#: The record: ``cachespec check redis-cluster``.
REDIS_CLUSTER: Final = RedisClusterKind(
    name="redis-cluster",
    binary="redis-server",
    binary_env="CACHESPEC_REDIS_SERVER",
    package="redis-server",
    schemes=("redis+cluster", "rediss+cluster"),
    harness_options=(),
    clock_step_us=1,
    clock_unit="us",
    flush_request=b"FLUSHALL\r\n",
    flush_reply=b"+OK\r\n",
    fake_monotonic=False,  # its event loop, serverCron and clusterCron keep real time
    clock_span=CLOCK_SPAN,
    fault_note=(
        "kills, stops and restarts one server process; on a cluster a fault is a node's (a "
        "master killed or stopped, its replica promoted): the faults.cluster_* properties"
    ),
)


class RedisClusterServer(ServerGroup):
    """Six nodes that the target treats as one server: use it as a context manager.

    ``nodes`` are every node's :class:`ManagedServer`, ``masters`` those that hold slots
    (the ``url`` names them; :meth:`find_masters` again after a failover), ``clock`` the one
    clock they all read. ``down`` holds the nodes a fault has killed or stopped: the clock's
    barrier waits for every other node (:mod:`.failover`).
    """

    def __init__(
        self,
        nodes: list[ManagedServer],
        masters: list[ManagedServer],
        clock: FaketimeClock | None,
        temp_dir: Path,
        down: set[ManagedServer] | None = None,
    ) -> None:
        super().__init__(nodes, clock, temp_dir)
        self.kind: str = REDIS_CLUSTER.name
        self.masters = masters
        seeds = ",".join(f"{HOST}:{node.port}" for node in masters)
        self.url = f"redis+cluster://{seeds}"  # seeds: still right after a failover
        self.down = set() if down is None else down

    def find_masters(self) -> list[ManagedServer]:
        """Ask each live node its role again (a failover promotes a replica) and return the
        masters, in the order of ``nodes``."""
        self.masters = [node for node in self.nodes if node not in self.down and _is_master(node)]
        return self.masters

    def flush(self) -> None:
        """Empty every master; their replicas follow (nothing reads from a replica)."""
        for master in self.masters:
            master.flush()


def _bus_port(port: int) -> int:
    """A free port for a node's cluster bus, other than ``port`` (Redis 7's ``cluster-port``;
    the default, port + 10000, may be taken or past 65535)."""
    while True:
        candidate = free_port()
        if candidate != port:
            return candidate


def _spawn_node(
    cluster_dir: Path, index: int, clock: FaketimeClock | None, preload: list[str]
) -> ManagedServer:
    """One node in ``cluster_dir/node-<index>``, registered and reaped like any server. Its
    reaper removes the whole cluster's folder (the shared timestamp file with it)."""
    kind = REDIS_CLUSTER
    node_dir = cluster_dir / f"node-{index}"
    node_dir.mkdir()
    log_path = node_dir / "redis.log"
    port = free_port()
    argv = [
        *kind.argv(kind.binary_path(), port, node_dir, log_path),
        "--cluster-port",
        str(_bus_port(port)),
    ]
    env = _server_env(kind, clock, preload)
    return launch(
        kind,
        argv,
        env,
        port=port,
        run_dir=node_dir,
        log_path=log_path,
        clock=clock,
        reap=cluster_dir,
    )


def _info(node: ManagedServer, section: bytes) -> bytes:
    return exchange(node.port, b"INFO " + section + b"\r\n", _reply_complete)


def _cluster_info(node: ManagedServer) -> bytes:
    return exchange(node.port, b"CLUSTER INFO\r\n", _reply_complete)


def _is_ok(node: ManagedServer) -> bool:
    """``cluster_state:ok`` and every node known: this node serves its slots. A replica
    also has its link to its master up: until its first sync is done, a write its master
    acknowledges may never reach it, and a run's first failover would lose it (the loss the
    cluster faults declare, but by chance: failover.py makes it on purpose)."""
    try:
        info = _cluster_info(node)
        replication = _info(node, b"replication")
    except OSError:
        return False
    known = _KNOWN.search(info)
    total = MASTERS * (1 + REPLICAS_PER_MASTER)
    synced = _MASTER.search(replication) is not None or _LINK_UP in replication
    return (
        _STATE_OK.search(info) is not None
        and known is not None
        and int(known[1]) == total
        and synced
    )


def _create(nodes: list[ManagedServer], deadline: float) -> None:
    """``redis-cli --cluster create``: slots over the masters, one replica each."""
    addresses = [f"{HOST}:{node.port}" for node in nodes]
    command = [
        REDIS_CLUSTER.cli_path(),
        "--cluster", "create", *addresses,
        "--cluster-replicas", str(REPLICAS_PER_MASTER),
        "--cluster-yes",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=max(1.0, deadline - time.monotonic()),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessUnavailable(
            f"redis-cli --cluster create did not finish within {CREATE_TIMEOUT:g} s"
        ) from exc
    if result.returncode != 0:
        said = " ".join((result.stdout + result.stderr).split())[-600:]
        raise HarnessUnavailable(f"redis-cli --cluster create failed: {said}")


def _wait_ok(nodes: list[ManagedServer], clock: FaketimeClock | None, deadline: float) -> None:
    """Until every node reports ``cluster_state:ok`` (bounded). On a frozen clock a master
    waits for its clock to move 2 s before it serves (module docstring): move it a second
    per round. The rounds poll real processes; they wait for nothing in particular."""
    while not all(_is_ok(node) for node in nodes):
        dead = [node for node in nodes if not node.is_running()]
        if dead or time.monotonic() > deadline:
            states = {node.port: _cluster_info_line(node) for node in nodes}
            raise HarnessUnavailable(
                f"the cluster did not reach cluster_state:ok within "
                f"{CLUSTER_READY_TIMEOUT:g} s: {states}"
            )
        if clock is not None:
            clock.advance(1.0)
        time.sleep(0.1)  # real time: gossip travels on the nodes' real event loops


def _cluster_info_line(node: ManagedServer) -> str:
    if not node.is_running():
        return f"exited (status {node.process.returncode})"
    try:
        info = _cluster_info(node)
    except OSError as exc:
        return f"no answer ({exc})"
    state = re.search(rb"cluster_state:(\w+)", info)
    return state[1].decode() if state else "?"


def _is_master(node: ManagedServer) -> bool:
    return _MASTER.search(_info(node, b"replication")) is not None


def _start_once(fake_time: bool, preload: list[str], ready_timeout: float) -> RedisClusterServer:
    cluster_dir = Path(tempfile.mkdtemp(prefix=f"cachespec-{REDIS_CLUSTER.name}-"))
    clock = FaketimeClock(cluster_dir / "faketime") if fake_time else None
    nodes: list[ManagedServer] = []
    down: set[ManagedServer] = set()  # the RedisClusterServer's: faults add to it
    try:
        nodes = start_nodes(
            MASTERS * (1 + REPLICAS_PER_MASTER),
            lambda index: _spawn_node(cluster_dir, index, clock, preload),
            clock,
            ready_timeout,
            down=down,
        )
        _create(nodes, time.monotonic() + CREATE_TIMEOUT)
        _wait_ok(nodes, clock, time.monotonic() + CLUSTER_READY_TIMEOUT)
        masters = [node for node in nodes if _is_master(node)]
        if len(masters) != MASTERS:
            raise HarnessUnavailable(f"the cluster has {len(masters)} masters, not {MASTERS}")
        return RedisClusterServer(nodes, masters, clock, cluster_dir, down)
    except BaseException:
        with contextlib.suppress(Exception):
            stop_all(nodes)
        shutil.rmtree(cluster_dir, ignore_errors=True)
        raise


def start_redis_cluster(
    *, fake_time: bool = True, ready_timeout: float = READY_TIMEOUT
) -> RedisClusterServer:
    """A throwaway cluster of 3 masters and 3 replicas on free loopback ports, once every
    node serves. With ``fake_time`` (the default) all nodes read one
    :class:`~cachespec.conformance.servers.faketime.FaketimeClock`, a few seconds past
    ``START_TIME`` once the cluster is up (module docstring); without, ``clock`` is None.

    A node that lost its port to another process is retried with a whole new cluster.
    """
    kind = REDIS_CLUSTER
    kind.binary_path()
    preload: list[str] = []
    if fake_time:
        preload.append(libfaketime())
        preload += kind.fake_time_preload()
    lost = "no attempt"
    for _ in range(PORT_ATTEMPTS):
        try:
            return _start_once(fake_time, preload, ready_timeout)
        except HarnessUnavailable as exc:
            if "in use" not in str(exc):
                raise
            lost = str(exc)
    raise HarnessUnavailable(
        f"the cluster lost ports to other processes {PORT_ATTEMPTS} times: {lost}"
    )
