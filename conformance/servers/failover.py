"""A master of the harness's cluster fails, its replica takes over, and it comes back.

:func:`node_fault` kills (-9) or stops (SIGSTOP) one master of a
:class:`~cachespec.conformance.servers.cluster.RedisClusterServer`, drives the failover to
its replica on the harness's clock, and puts the node back whatever the block raised: a
killed node is started again on its port with its ``nodes.conf`` (it rejoins as a replica of
the master that replaced it), a stopped one is continued (it learns it was replaced, and
follows). Once every node reports ``cluster_state:ok`` and the old master replicates from
the new one, the node timeout is long again, so the clock's later jumps fail no node.

On the harness's terms (docs/design.md, "Failover"): Redis detects a failure by comparing
``mstime()``, the fake clock, with ``cluster-node-timeout``, and times the replica's
election on it too. The cluster's timeout is years long (cluster.py), so no failover ever
happens by itself; for a fault the harness sets it to :data:`FAULT_NODE_TIMEOUT_MS` on every
node, and moves the clock :data:`CLOCK_STEP` at a time, a quarter of that, while it polls:
healthy nodes answer each other's pings between two steps (their event loops keep real
time), the failed one never does. Each wait is a bounded poll for a state the nodes report
(a deadline of :data:`FAILOVER_WITHIN` real seconds), never a sleep to "make sure", and no
duration is asserted anywhere.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from .base import HarnessUnavailable, exchange
from .cluster import MASTERS, NODE_TIMEOUT_MS, RedisClusterServer
from .managed import ManagedServer
from .redis import _reply_complete

__all__ = [
    "CLOCK_STEP",
    "FAILOVER_WITHIN",
    "FAULT_NODE_TIMEOUT_MS",
    "NODE_FAULTS",
    "Failover",
    "NodeFault",
    "master_of",
    "node_fault",
]

#: The node timeout while a fault runs, in milliseconds of the harness's clock.
FAULT_NODE_TIMEOUT_MS: Final = 2000
#: How far the harness moves the clock per round of a failover poll: a quarter of the node
#: timeout, so a healthy node's pong arrives between two steps (module docstring).
CLOCK_STEP: Final = FAULT_NODE_TIMEOUT_MS / 4000
#: Real seconds a failover, or the old master's return, may take before the harness gives up
#: (measured: under 2 s on the project's idle machine; this bounds a loaded CI one).
FAILOVER_WITHIN: Final = 30.0
_POLL: Final = 0.02  # real seconds between two rounds: gossip travels on real event loops

_OK: Final = re.compile(rb"^cluster_state:ok\r$", re.MULTILINE)


class NodeFault(enum.Enum):
    """What happens to the master, as a trial's story names it."""

    STOP = "SIGSTOP of a master past the node timeout, its replica promoted, then SIGCONT"
    KILL = "kill -9 of a master, its replica promoted, then the node started again"
    LOSE = (
        "kill -9 of a master holding writes its replica never received (the declared loss), "
        "its replica promoted, then the node started again"
    )


#: Trial n meets NODE_FAULTS[n % 3]: the first (what --size quick runs) is the stop, where
#: the old master answers late what it was sent while stopped.
NODE_FAULTS: Final = (NodeFault.STOP, NodeFault.KILL, NodeFault.LOSE)


def _complete(reply: bytes) -> bool:
    """The redis kind's test, and an integer reply (``CLIENT KILL``'s count)."""
    if reply[:1] == b":":
        return reply.endswith(b"\r\n")
    return _reply_complete(reply)


def _command(node: ManagedServer, *parts: bytes) -> bytes:
    request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    return exchange(node.port, request, _complete)


@dataclass(frozen=True)
class _Row:
    """One line of ``CLUSTER NODES``: a node's id, port, role, its master's id, its slots."""

    node_id: bytes
    port: int
    master: bool
    master_id: bytes
    slots: tuple[tuple[int, int], ...]


def _table(node: ManagedServer) -> list[_Row]:
    rows = []
    for line in _command(node, b"CLUSTER", b"NODES").split(b"\n")[1:]:
        fields = line.strip().split()
        if len(fields) < 8:
            continue
        spans = []
        for span in fields[8:]:
            if span.startswith(b"["):
                continue  # a slot being migrated: the harness never migrates one
            low, _, high = span.partition(b"-")
            spans.append((int(low), int(high or low)))
        port = int(fields[1].split(b"@")[0].rsplit(b":", 1)[1])
        flags = fields[2].split(b",")
        rows.append(_Row(fields[0], port, b"master" in flags, fields[3], tuple(spans)))
    return rows


def master_of(cluster: RedisClusterServer, slot: int) -> ManagedServer:
    """The master serving ``slot`` now, as the first live master sees it."""
    asked = next(node for node in cluster.masters if node not in cluster.down)
    by_port = {node.port: node for node in cluster.nodes}
    for row in _table(asked):
        if row.master and any(low <= slot <= high for low, high in row.slots):
            return by_port[row.port]
    raise HarnessUnavailable(f"no master serves slot {slot}: {_table(asked)}")


def _replica_of(cluster: RedisClusterServer, master: ManagedServer) -> ManagedServer:
    """The node replicating ``master``, by each node's own word (``INFO replication``): right
    after the cluster is created, a master's ``CLUSTER NODES`` may still call its replicas
    masters (gossip has not told it yet)."""
    following = f"master_port:{master.port}\r".encode()
    for node in cluster.nodes:
        if node not in cluster.down and following in _command(node, b"INFO", b"replication"):
            return node
    raise HarnessUnavailable(f"the master on port {master.port} has no replica")


def _role(node: ManagedServer) -> bytes:
    info = _command(node, b"INFO", b"replication")
    found = re.search(rb"^role:(\w+)\r$", info, re.MULTILINE)
    return found[1] if found else b"?"


def _set_node_timeout(nodes: list[ManagedServer], milliseconds: int) -> None:
    for node in nodes:
        _command(node, b"CONFIG", b"SET", b"cluster-node-timeout", str(milliseconds).encode())


class Failover:
    """One fault of one master: :meth:`fail`, :meth:`promote`, :meth:`restore`, in order
    (:func:`node_fault` runs the first and the last)."""

    def __init__(self, cluster: RedisClusterServer, victim: ManagedServer, fault: NodeFault):
        if cluster.clock is None:
            raise HarnessUnavailable(
                "a failover runs on the harness's clock; this cluster has none"
            )
        if victim not in cluster.masters:
            raise HarnessUnavailable(f"the node on port {victim.port} is not a master")
        self.cluster = cluster
        self.clock = cluster.clock
        self.victim = victim
        self.fault = fault
        self.replica = _replica_of(cluster, victim)
        self.promoted = False

    def fail(self, doomed: Callable[[], None]) -> None:
        """Shorten every node's timeout, run ``doomed`` (the writes just before the fault),
        then kill or stop the master (the kernel reports the stop before this returns: a
        signal lands asynchronously).

        For :attr:`NodeFault.LOSE`, ``doomed`` runs while the replica cannot receive: it is
        stopped, and the master has closed its link (``CLIENT KILL TYPE replica``), so what
        the master acknowledges meanwhile reaches neither the replica's socket nor, once the
        master is killed, anyone. The replica is continued after the kill: it reads what it
        had been sent before the cut, and then the end of the link. Asynchronous replication
        loses writes this way whenever a master dies before it has sent them; the harness
        only makes the moment certain (docs/design.md, "Failover").
        """
        _set_node_timeout(self.cluster.nodes, FAULT_NODE_TIMEOUT_MS)
        if self.fault is NodeFault.LOSE:
            self._cut_replication()
        try:
            doomed()
        finally:
            self._fail_victim()

    def _cut_replication(self) -> None:
        self.cluster.down.add(self.replica)
        self.replica.process.send_signal(signal.SIGSTOP)
        os.waitpid(self.replica.pid, os.WUNTRACED)
        _command(self.victim, b"CLIENT", b"KILL", b"TYPE", b"replica")

    def _fail_victim(self) -> None:
        self.cluster.down.add(self.victim)
        if self.fault is NodeFault.STOP:
            self.victim.process.send_signal(signal.SIGSTOP)
            os.waitpid(self.victim.pid, os.WUNTRACED)
            return
        self.victim.process.kill()
        self.victim.process.wait()
        if self.fault is NodeFault.LOSE:
            self.replica.process.send_signal(signal.SIGCONT)
            os.waitpid(self.replica.pid, os.WCONTINUED)
            self.cluster.down.discard(self.replica)

    def promote(self) -> None:
        """Move the clock until the replica is a master and every live node serves."""
        live = [node for node in self.cluster.nodes if node not in self.cluster.down]
        self._drive(
            lambda: _role(self.replica) == b"master" and all(_serves(node) for node in live),
            f"the replica on port {self.replica.port} did not replace its master",
        )
        self.promoted = True

    def restore(self) -> None:
        """Bring the node back, wait until it follows the new master and every node serves,
        then make the node timeout long again. Promotes first if the block did not; after a
        :meth:`fail` that raised half-way, puts back what it had stopped."""
        failed = self.victim in self.cluster.down
        try:
            if failed and not self.promoted:
                self.promote()
        finally:
            if self.replica in self.cluster.down:  # fail() raised between cut and kill
                self.replica.process.send_signal(signal.SIGCONT)
                os.waitpid(self.replica.pid, os.WCONTINUED)
                self.cluster.down.discard(self.replica)
            if failed and self.fault is NodeFault.STOP:
                self.victim.process.send_signal(signal.SIGCONT)
                os.waitpid(self.victim.pid, os.WCONTINUED)
            elif failed:
                self.victim.restart(kill=True)  # the process is gone: this starts a new one
            self.cluster.down.discard(self.victim)
        self._drive(
            lambda: self._whole_again(failed),
            f"the node on port {self.victim.port} did not rejoin",
        )
        _set_node_timeout(self.cluster.nodes, NODE_TIMEOUT_MS)
        self.cluster.find_masters()

    def _whole_again(self, failed: bool) -> bool:
        """Every node serves, three masters, and the old master (if it failed) replicates
        from the new one."""
        if not all(_serves(node) for node in self.cluster.nodes):
            return False
        if not failed:
            return True
        if _role(self.victim) != b"slave":
            return False
        link = _command(self.victim, b"INFO", b"replication")
        masters = [node for node in self.cluster.nodes if _role(node) == b"master"]
        return b"master_link_status:up" in link and len(masters) == MASTERS

    def _drive(self, done: Callable[[], bool], what: str) -> None:
        """Poll ``done()`` with a deadline, moving the clock a step per round."""
        deadline = time.monotonic() + FAILOVER_WITHIN
        while True:
            with contextlib.suppress(OSError):  # a node restarting refuses for a moment
                if done():
                    return
            if time.monotonic() > deadline:
                raise HarnessUnavailable(f"{what} within {FAILOVER_WITHIN:g} s")
            self.clock.advance(CLOCK_STEP)
            time.sleep(_POLL)  # a poll for a state the nodes report, with a deadline


def _serves(node: ManagedServer) -> bool:
    return _OK.search(_command(node, b"CLUSTER", b"INFO")) is not None


@contextlib.contextmanager
def node_fault(
    cluster: RedisClusterServer,
    victim: ManagedServer,
    fault: NodeFault,
    doomed: Callable[[], None] = lambda: None,
) -> Iterator[Failover]:
    """``victim`` (a master) is down inside the block, and the block may call
    :meth:`Failover.promote`; after it the cluster is whole again, ``victim`` a replica.
    ``doomed`` runs just before the fault (:meth:`Failover.fail`)."""
    failover = Failover(cluster, victim, fault)
    try:
        failover.fail(doomed)
        yield failover
    finally:
        failover.restore()
