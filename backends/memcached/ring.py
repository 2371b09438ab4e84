"""A namespace on a ring of memcached nodes hashed on the client: :class:`MemcachedRingBackend`.

The single-server backend with one method overridden, :meth:`_build_client`: the client is a
:class:`.ring_client.RingClient` (pymemcache's ``HashClient``, every call routed to the node
its key hashes to) instead of one pool. Keys, values, TTLs, compare-and-X, errors and the
declared guarantees are :class:`.backend.MemcachedBackend`'s, unchanged; so is the clear
generation, whose counter stays on one node (docs/design.md, "The memcached ring").

Node failure (the options, :class:`RingOptions`)
    ``retry_attempts`` failures in a row drop a node from the ring (its keys remap to the
    others); after a failure it is not tried for ``retry_timeout`` s (its calls fail at once);
    a dropped node is put back after ``dead_timeout`` s; ``on_failure`` says what a read of a
    failing node's keys answers: ``raise`` (``BackendUnavailable``, the default) or ``miss``.
    A write whose node fails always raises: the caller must know an invalidation was lost.

The returning-node rule
    A dropped node keeps its entries; when it comes back they would come back with it, and a
    stand-in node keeps what was written to it meanwhile. Both are discarded: every membership
    change (a drop, a return) makes the client ``clear`` the namespace before its next call,
    so no entry written before a change is served after it. The counter itself never remaps
    (it is pinned to its node): a ``clear`` made while a node is away cannot be undone by an
    older counter on the returning node. A namespace without the counter (``clear=none``)
    could not discard anything, so a ring refuses it; ``namespace_refresh`` would let writes
    land in a discarded generation for its duration, so a ring refuses it too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Final, NamedTuple

from cachespec.spec.failover import Failover, RingRemap

from ..contract import Clock, ConfigurationError
from .backend import DEFAULT_NAMESPACE, DEFAULT_TIMEOUT, MemcachedBackend
from .driver import Client

__all__ = [
    "DEFAULT_RING_OPTIONS",
    "ON_FAILURE",
    "MemcachedRingBackend",
    "RingOptions",
    "ring_label",
]

ON_FAILURE: Final = ("raise", "miss")
_MAX_PORT: Final = 65535


class RingOptions(NamedTuple):
    """How a ring treats a node that fails (declared on the backend as ``ring``)."""

    retry_attempts: int = 2  # failures in a row before a node is dropped (pymemcache's default)
    retry_timeout: float = 1.0  # s after a failure during which the node is not tried
    dead_timeout: float = 60.0  # s a dropped node stays out before it is tried again
    on_failure: str = "raise"  # what a read of a failing node's keys answers: raise, miss


DEFAULT_RING_OPTIONS: Final = RingOptions()


def ring_label(servers: Sequence[tuple[str, int]]) -> str:
    """``memcached+ring://h1:p1,h2:p2``: the ring's name in messages."""
    hosts = ",".join(
        f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in servers
    )
    return f"memcached+ring://{hosts}"


def check_ring_options(options: RingOptions) -> RingOptions:
    """``options`` if every one is in range; a :class:`ConfigurationError` naming it if not."""
    attempts = options.retry_attempts
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ConfigurationError(f"retry_attempts must be an int >= 1, got {attempts!r}")
    for name in ("retry_timeout", "dead_timeout"):
        value = getattr(options, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (math.isfinite(value) and value >= 0)
        ):
            raise ConfigurationError(f"{name} must be finite seconds >= 0, got {value!r}")
    if options.on_failure not in ON_FAILURE:
        raise ConfigurationError(
            f"on_failure must be one of {', '.join(ON_FAILURE)}, got {options.on_failure!r}"
        )
    return options


def _check_servers(servers: object) -> tuple[tuple[str, int], ...]:
    if isinstance(servers, (str, bytes)) or not isinstance(servers, Sequence) or not servers:
        raise ConfigurationError(
            f"servers must be a non-empty list of (host, port), got {servers!r}"
        )
    checked: list[tuple[str, int]] = []
    for server in servers:
        if not (isinstance(server, tuple) and len(server) == 2):
            raise ConfigurationError(f"a server must be a (host, port) pair, got {server!r}")
        host, port = server
        if not isinstance(host, str) or not host:
            raise ConfigurationError(f"host must be a non-empty str, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= _MAX_PORT:
            raise ConfigurationError(f"port must be an int from 1 to {_MAX_PORT}, got {port!r}")
        if (host, port) in checked:
            raise ConfigurationError(f"{host}:{port} is listed twice in the ring")
        checked.append((host, port))
    return tuple(checked)


class MemcachedRingBackend(MemcachedBackend):
    """A namespace on a ring of memcached nodes (the decisions are in the module docstring).

    ``servers`` are the nodes, ``(host, port)`` pairs; ``ring`` their failure options
    (:class:`RingOptions`); ``monotonic`` is also the clock of the failure timeouts. The other
    arguments are :class:`.backend.MemcachedBackend`'s. Construction talks to every node and
    raises ``BackendUnavailable`` if one does not answer.
    """

    __slots__ = ("_ring", "_servers")

    # Declared: a failed node's keys go to the others, and a change of the ring empties the
    # namespace (the faults.ring_* properties check it).
    _failover: ClassVar[Failover | None] = RingRemap()

    _ring: RingOptions
    _servers: tuple[tuple[str, int], ...]

    def __init__(
        self,
        servers: Sequence[tuple[str, int]],
        *,
        ring: RingOptions = DEFAULT_RING_OPTIONS,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = DEFAULT_TIMEOUT,
        max_value_size: int | None = None,
        monotonic: Clock = time.monotonic,
        label: str | None = None,
        server_evicts: bool = False,
        **refused: Any,
    ) -> None:
        if refused.get("clearable", True) is not True:
            raise ConfigurationError(
                "a memcached ring needs the clear generation (clear=none refused): without it "
                "a returning node's old entries could not be discarded (docs/design.md, "
                "'The memcached ring')"
            )
        if refused.get("namespace_refresh", 0):
            raise ConfigurationError(
                "a memcached ring reads the generation before every write (namespace_refresh "
                "refused): with it, writes could land in a generation a node change discarded"
            )
        unknown = set(refused) - {"clearable", "namespace_refresh"}
        if unknown:
            raise ConfigurationError(f"unknown arguments: {', '.join(sorted(unknown))}")
        if not isinstance(ring, RingOptions):
            raise ConfigurationError(f"ring must be a RingOptions, got {ring!r}")
        self._servers = _check_servers(servers)
        self._ring = check_ring_options(ring)
        host, port = self._servers[0]  # checked by the parent; the client uses them all
        super().__init__(
            host,
            port,
            namespace=namespace,
            timeout=timeout,
            max_value_size=max_value_size,
            monotonic=monotonic,
            label=label or ring_label(self._servers),
            server_evicts=server_evicts,
        )

    @property
    def ring(self) -> RingOptions:
        """The node-failure options this ring runs with (declared, as the guarantees are)."""
        return self._ring

    @property
    def servers(self) -> tuple[tuple[str, int], ...]:
        return self._servers

    def node_of(self, key: str) -> str:
        """``host:port`` of the node ``key``'s entry goes to now (in the generation this
        client last saw, over the nodes it counts as live)."""
        node: str = self._ring_client.node_of(self.server_key(key))
        return node

    @property
    def counter_node(self) -> str:
        """``host:port`` of the node that holds the namespace counter (pinned: it never
        moves, docs/design.md "The memcached ring")."""
        node: str = self._ring_client.node_of(self._counter_key)
        return node

    def use_clock(self, monotonic: Clock) -> None:
        """Time node failures (``retry_timeout``, ``dead_timeout``) by ``monotonic`` from now
        on. The fault checks pass the harness's clock: a dropped node then comes back when
        the check moves time, not when the wall clock does (docs/design.md, "Time in tests")."""
        if not callable(monotonic):
            raise ConfigurationError(f"monotonic must be a callable, got {monotonic!r}")
        self._monotonic = monotonic
        self._ring_client.use_clock(monotonic)

    @property
    def _ring_client(self) -> Any:
        return self._client  # a RingClient (Any: pymemcache is untyped)

    def _build_client(self, host: str, port: int, timeout: float) -> Client:
        """A :class:`.ring_client.RingClient` over every node, the namespace counter pinned
        to its node, and a ``clear`` before the first call after each membership change."""
        del host, port  # the first node's; the ring has them all
        from .ring_client import RingClient  # noqa: PLC0415 - it imports pymemcache

        options = self._ring
        client = RingClient(
            self._servers,
            retry_attempts=options.retry_attempts,
            retry_timeout=options.retry_timeout,
            dead_timeout=options.dead_timeout,
            miss_on_failure=options.on_failure == "miss",
            monotonic=self._monotonic,
            pinned=frozenset({self._counter_key}),
            connect_timeout=timeout,
            timeout=timeout,
            no_delay=True,
            default_noreply=False,
            allow_unicode_keys=False,
        )
        client.on_change(self.clear)
        return client

    def __repr__(self) -> str:
        return f"MemcachedRingBackend({self._label!r}, namespace={self._namespace!r})"
