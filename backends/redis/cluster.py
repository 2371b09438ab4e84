"""A plain namespace on a Redis Cluster: :class:`RedisClusterBackend`.

A cluster spreads keys over 16384 hash slots, each slot on one master; a command that
names keys of several slots is refused (``CROSSSLOT``). This subclass of
:class:`~cachespec.backends.redis.RedisBackend` overrides only where that matters: the
namespace's layout and the four primitives its batch operations and ``clear`` are built on
(docs/design.md, "Redis Cluster"). Every single-key operation, the compare scripts, the
error typing and the declared guarantees are the parent's, unchanged.

Layout
    A single server's namespace is ``{<namespace>}``: a hash tag, so on a cluster the whole
    namespace would sit in one slot of one master. A plain namespace here starts with
    ``{}`` instead (``{}{<namespace>}:<key>``): a key whose first ``{`` is followed at once
    by ``}`` has no hash tag, so Redis hashes the whole key and the namespace's entries
    spread over every master. The rest of the base is the single server's, so namespaces
    stay prefix-free and ``clear`` still matches exactly one of them.

    A *bounded* namespace (``capacity=N``) needs one slot: its Lua scripts read and write
    its bookkeeping keys beside the entries in one atomic step. It is
    :class:`~cachespec.backends.redis.BoundedRedisBackend` unchanged (base ``{<namespace>}``,
    one hash tag, one slot, one master): it does not spread its keys (README, "Redis
    Cluster").

Batches
    ``get_many`` sends each master one read-only script for all of its keys, whatever their
    slots (``READ_ON_NODE``), and goes slot by slot only when a node refuses it.
    ``set_many`` and ``delete_many`` group their keys by slot and send one command per slot
    (``MSET`` or ``SET PX``, ``UNLINK``). Each master's commands are written to its
    connection before any reply is read (cluster_route.py), so a batch costs one round trip
    per master involved, in parallel, and never a ``CROSSSLOT``. A batch that spans slots is
    not atomic: each slot's command is (a ``set_many`` with a TTL writes key by key, not in
    one ``MULTI``).

``clear`` scans every master (redis-py's cluster ``scan_iter``) and unlinks a page at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Final, cast

import redis

from cachespec.spec import AsyncReplicaFailover

from .backend import RedisBackend
from .cluster_route import SlotRouter, slot_of
from .layout import namespace_base

__all__ = ["NO_HASH_TAG", "READ_ON_NODE", "RedisClusterBackend"]

#: Prefixed to a plain namespace's base: an empty hash tag, so Redis hashes the whole key.
NO_HASH_TAG: Final = b"{}"

_SCAN_PAGE: Final = 1000

# A batch read of one master's keys, whatever their slots, in one command: a read-only script
# that may touch keys of several slots (Redis 7.0's allow-cross-slot-keys flag), given the
# names as arguments, since declared KEYS must share a slot. The node runs it only if every
# name is its own: a key of a slot that moved, or is moving and not here, fails the script
# with "non local key", and the read goes slot by slot, where MOVED and ASK are followed
# (docs/design.md, "The cluster's fast path"). GET in a script answers as GET does, on the
# server's clock frozen for the script (a key cannot expire halfway through the batch).
READ_ON_NODE: Final = (
    "EVAL",
    b"#!lua flags=allow-cross-slot-keys,no-writes\n"
    b"local found = {} for i = 1, #ARGV do found[i] = redis.call('GET', ARGV[i]) end "
    b"return found",
    0,
)
# How a node says it cannot run READ_ON_NODE at all: Redis before 7.0 reads the shebang
# line as Lua ("Error compiling script"), 7.0 without a flag names it ("shebang").
_SCRIPT_REFUSED: Final = ("compiling script", "shebang")


def _by_slot(names: list[bytes]) -> dict[int, list[int]]:
    """The positions of ``names``, grouped by hash slot, in order within each slot."""
    slots: dict[int, list[int]] = {}
    for position, name in enumerate(names):
        slots.setdefault(slot_of(name), []).append(position)
    return slots


class RedisClusterBackend(RedisBackend):
    """A plain namespace on a Redis Cluster, through a ``redis.RedisCluster`` client.

    The arguments are :class:`~cachespec.backends.redis.RedisBackend`'s, with ``client`` a
    ``redis.RedisCluster`` built with ``decode_responses=False``; ``capacity`` is refused
    (a bounded namespace on a cluster is a ``BoundedRedisBackend`` on the same client: see
    the module docstring). ``redis_cluster_from_url`` builds either from a
    ``redis+cluster://`` URL.
    """

    __slots__ = ("_reads_by_node", "_router")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Single-key commands and batches go straight to their slot's master, the cluster
        # client taking over on a redirection or a node it cannot reach (cluster_route.py).
        self._router = SlotRouter(self._cluster)
        self._execute = self._router.execute
        # get_many reads each master's keys in one script (READ_ON_NODE) until a node
        # cannot run it (Redis before 7.0), then slot by slot.
        self._reads_by_node = True
        # Replication is asynchronous: a write a master acknowledged just before it failed
        # may be lost in the failover, and the suite checks that nothing worse happens
        # (docs/design.md, "Failover").
        self.guarantees = dataclasses.replace(self.guarantees, failover=AsyncReplicaFailover())

    def __repr__(self) -> str:
        return f"RedisClusterBackend({self._name!r}, namespace={self._namespace!r})"

    @property
    def _cluster(self) -> redis.RedisCluster:
        return cast(redis.RedisCluster, self._client)

    def _namespace_base(self, namespace: str) -> bytes:
        return NO_HASH_TAG + namespace_base(namespace)

    def _per_slot(
        self, command: str, names: list[bytes], args: Callable[[int], list[Any]]
    ) -> list[Any]:
        """One ``command`` per slot of ``names``, one pipeline per master (one round trip
        per master); ``args(position)`` are the arguments one name contributes. Returns each
        slot's reply with the positions it covers, as ``[(positions, reply), ...]``."""
        slots = _by_slot(names)
        commands = [
            (command, *[part for position in positions for part in args(position)])
            for positions in slots.values()
        ]
        replies = self._router.per_slot(commands, list(slots))
        return list(zip(slots.values(), replies, strict=True))

    def _read_many(self, names: list[bytes]) -> list[bytes | None]:
        if self._reads_by_node:
            try:
                found = self._router.on_masters(names, READ_ON_NODE)
            except redis.ResponseError as exc:
                # A key whose slot moved or is moving is not local, a cluster mid-failover
                # may be down: this batch goes slot by slot. A server that cannot compile
                # the script (before Redis 7.0, or without the flag) is never asked again.
                if any(sign in str(exc) for sign in _SCRIPT_REFUSED):
                    self._reads_by_node = False
                found = None
            if found is not None:
                return found
        values: list[bytes | None] = [None] * len(names)
        for positions, reply in self._per_slot("MGET", names, lambda i: [names[i]]):
            for position, value in zip(positions, reply, strict=True):
                values[position] = value
        return values

    def _mset(self, named: list[tuple[bytes, bytes]], ms: int | None) -> None:
        names = [name for name, _ in named]
        if ms is None:
            self._per_slot("MSET", names, lambda i: list(named[i]))
            return
        # No TTL in MSET, and no MULTI across slots: one SET PX per key, still one pipeline
        # per master.
        commands = [("SET", name, data, "PX", ms) for name, data in named]
        self._router.per_slot(commands, [slot_of(name) for name in names])

    def _unlink(self, names: list[bytes]) -> None:
        self._per_slot("UNLINK", names, lambda i: [names[i]])

    def _scan(self, pattern: bytes) -> Iterator[list[bytes]]:
        page: list[bytes] = []
        for name in self._cluster.scan_iter(match=pattern, count=_SCAN_PAGE):
            page.append(cast(bytes, name))
            if len(page) == _SCAN_PAGE:
                yield page
                page = []
        if page:
            yield page
