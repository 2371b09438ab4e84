"""The memcached-ring kind: three memcached nodes that act as one server, on one clock.

``cachespec check memcached-ring`` starts three memcached processes (each a
:class:`~cachespec.conformance.servers.managed.ManagedServer` with a reaper of its own, so
every stop path of one server stops each node) on free loopback ports. The target sees a
:class:`MemcachedRingServer`: one URL (``memcached+ring://`` and the three nodes), one flush
(``flush_all`` on each node), one stop.

One clock for all nodes, as for a Redis Cluster (docs/design.md, "A cluster on one clock"):
every node's libfaketime reads the same timestamp file, and the barrier returns only once each
node reports the new second, so an entry's TTL runs out at the same moment whichever node
holds it. A memcached node needs nothing else to serve: there is no cluster to form.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from .base import HOST, HarnessUnavailable
from .faketime import US, FaketimeClock, libfaketime
from .group import ServerGroup, start_nodes
from .kind import ServerKind
from .managed import (
    PORT_ATTEMPTS,
    READY_TIMEOUT,
    ManagedServer,
    _server_env,
    free_port,
    launch,
)
from .memcached import MEMCACHED, _options

__all__ = ["MEMCACHED_RING", "NODES", "MemcachedRingKind", "MemcachedRingServer", "start_ring"]

#: How many memcached processes a ring has (issue #16).
NODES: Final = 3


class MemcachedRingKind(ServerKind):
    """A node is a memcached like any other (its command line, clock and pid are the
    memcached kind's, ``MEMCACHED``); the record's ``start`` starts the whole ring."""

    def argv(self, binary: str, port: int, temp_dir: Path, log_path: Path) -> list[str]:
        return MEMCACHED.argv(binary, port, temp_dir, log_path)

    def read_clock(self, port: int) -> int:
        return MEMCACHED.read_clock(port)

    def answering_pid(self, port: int) -> int | None:
        return MEMCACHED.answering_pid(port)

    def url(self, host: str, port: int) -> str:
        """One node as a ring of one (a whole ring's URL is :attr:`MemcachedRingServer.url`)."""
        return f"memcached+ring://{host}:{port}"

    def start(self, options: Mapping[str, str], *, fake_time: bool) -> MemcachedRingServer:
        """``memory_mb`` per node (default 64), as for one memcached."""
        try:
            memory_mb = int(options.get("memory_mb", "64"))
        except ValueError:
            raise ValueError("memory_mb must be a whole number") from None
        return start_ring(fake_time=fake_time, memory_mb=memory_mb)


#: The record: ``cachespec check memcached-ring``.
MEMCACHED_RING: Final = MemcachedRingKind(
    name="memcached-ring",
    binary="memcached",
    binary_env="CACHESPEC_MEMCACHED",
    package="memcached",
    schemes=("memcached+ring",),
    harness_options=("memory_mb",),
    clock_step_us=US,
    clock_unit="s",
    flush_request=b"flush_all\r\n",
    flush_reply=b"OK\r\n",
    fake_monotonic=True,
    wake_to_stop=True,
    fault_note=(
        "kills, stops and restarts one server process; on a ring a fault is a node's, which "
        "the faults.ring_* properties inject (conformance/ring_faults.py)"
    ),
)


class MemcachedRingServer(ServerGroup):
    """Three memcached nodes the target treats as one server: use it as a context manager.

    ``nodes`` are every node's :class:`ManagedServer`, ``clock`` the one clock they read.
    """

    def __init__(
        self, nodes: list[ManagedServer], clock: FaketimeClock | None, temp_dir: Path
    ) -> None:
        super().__init__(nodes, clock, temp_dir)
        self.kind: str = MEMCACHED_RING.name
        self.url = "memcached+ring://" + ",".join(f"{HOST}:{node.port}" for node in nodes)

    def flush(self) -> None:
        """Empty every node."""
        for node in self.nodes:
            node.flush()


def _spawn_node(
    ring_dir: Path, index: int, clock: FaketimeClock | None, preload: list[str], memory_mb: int
) -> ManagedServer:
    """One node in ``ring_dir/node-<index>``, registered and reaped like any server. Its
    reaper removes the whole ring's folder (the shared timestamp file with it)."""
    kind = MEMCACHED_RING
    node_dir = ring_dir / f"node-{index}"
    node_dir.mkdir()
    log_path = node_dir / "memcached.log"
    port = free_port()
    argv = [*kind.argv(kind.binary_path(), port, node_dir, log_path), *_options(memory_mb, None)]
    env = _server_env(kind, clock, preload)
    return launch(
        kind, argv, env, port=port, run_dir=node_dir, log_path=log_path, clock=clock, reap=ring_dir
    )


def _start_once(
    fake_time: bool, preload: list[str], ready_timeout: float, memory_mb: int
) -> MemcachedRingServer:
    ring_dir = Path(tempfile.mkdtemp(prefix=f"cachespec-{MEMCACHED_RING.name}-"))
    step = MEMCACHED_RING.clock_step_us
    clock = FaketimeClock(ring_dir / "faketime", step_us=step) if fake_time else None
    try:
        nodes = start_nodes(
            NODES,
            lambda index: _spawn_node(ring_dir, index, clock, preload, memory_mb),
            clock,
            ready_timeout,
        )
        return MemcachedRingServer(nodes, clock, ring_dir)
    except BaseException:
        shutil.rmtree(ring_dir, ignore_errors=True)
        raise


def start_ring(
    *, fake_time: bool = True, memory_mb: int = 64, ready_timeout: float = READY_TIMEOUT
) -> MemcachedRingServer:
    """A throwaway ring of :data:`NODES` memcached nodes on free loopback ports, once every
    node answers. With ``fake_time`` (the default) all read one
    :class:`~cachespec.conformance.servers.faketime.FaketimeClock`; without, ``clock`` is
    None. A node that lost its port to another process is retried with a whole new ring.
    """
    kind = MEMCACHED_RING
    kind.binary_path()
    _options(memory_mb, None)  # a bad memory_mb is a ValueError before anything starts
    preload: list[str] = []
    if fake_time:
        preload.append(libfaketime())
        preload += kind.fake_time_preload()
    lost = "no attempt"
    for _ in range(PORT_ATTEMPTS):
        try:
            return _start_once(fake_time, preload, ready_timeout, memory_mb)
        except HarnessUnavailable as exc:
            if "in use" not in str(exc):
                raise
            lost = str(exc)
    raise HarnessUnavailable(
        f"the ring lost ports to other processes {PORT_ATTEMPTS} times: {lost}"
    )
