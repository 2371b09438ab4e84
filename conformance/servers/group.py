"""Several server processes the target treats as one server: a Redis Cluster, a memcached ring.

A :class:`ServerGroup` holds every node's :class:`~.managed.ManagedServer` (each with a
reaper of its own, so every stop path of one server stops each node), the one clock they all
read, and the folder they share. Its kinds (:mod:`.cluster`, :mod:`.ring`) add what is
theirs: the URL, and how a flush reaches the nodes.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from .base import HarnessUnavailable
from .faketime import FaketimeClock
from .managed import ManagedServer

__all__ = ["ServerGroup", "start_nodes", "stop_all"]

_G = TypeVar("_G", bound="ServerGroup")  # typing.Self is 3.11's; this package runs on 3.10


class ServerGroup:
    """Nodes started together and stopped together: use it as a context manager."""

    kind: str
    url: str

    def __init__(
        self, nodes: list[ManagedServer], clock: FaketimeClock | None, temp_dir: Path
    ) -> None:
        self.nodes = nodes
        self.clock = clock
        self.temp_dir = temp_dir
        self._stopped = False

    def is_running(self) -> bool:
        return not self._stopped and all(node.is_running() for node in self.nodes)

    def stop(self) -> None:
        """Stop every node, even if stopping one fails, then remove the shared folder."""
        if self._stopped:
            return
        self._stopped = True
        try:
            stop_all(self.nodes)
        finally:
            if self.clock is not None:
                self.clock.close()
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self: _G) -> _G:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<{type(self).__name__} {self.url} {len(self.nodes)} nodes {state}>"


def stop_all(nodes: list[ManagedServer]) -> None:
    """Stop every node at once, each on a thread (a frozen memcached takes a wake-up to stop,
    and a run replaces its cluster after every ``CLOCK_SPAN``: stops in a row add up); the
    first error is raised once all were tried."""
    errors: list[BaseException] = []

    def stop(node: ManagedServer) -> None:
        try:
            node.stop()
        except BaseException as exc:  # re-raised below, once every node was tried
            errors.append(exc)

    threads = [threading.Thread(target=stop, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def start_nodes(
    count: int,
    spawn: Callable[[int], ManagedServer],
    clock: FaketimeClock | None,
    ready_timeout: float,
    *,
    down: set[ManagedServer] | None = None,
) -> list[ManagedServer]:
    """``spawn(i)`` for each of ``count`` nodes, once each answers, all on ``clock``: its
    barrier waits for every node but those in ``down`` (which a fault killed or stopped:
    they cannot answer). If one fails to start, every node started is stopped."""
    nodes: list[ManagedServer] = []
    try:
        for index in range(count):
            nodes.append(spawn(index))
        for node in nodes:
            if not node._wait_ready(ready_timeout):
                raise HarnessUnavailable(
                    f"a {node.kind} node exited at start (status "
                    f"{node.process.returncode}); log: "
                    f"{node.log_path.read_text(errors='replace')[-600:]}"
                )
            node._forget_faketime_objects()
        if clock is not None:
            away = set() if down is None else down

            def every_node_sees(shown: int) -> None:
                for node in nodes:
                    if node not in away:
                        node._sync_clock(shown)

            clock.attach_barrier(every_node_sees)
        return nodes
    except BaseException:
        with contextlib.suppress(Exception):
            stop_all(nodes)
        raise
