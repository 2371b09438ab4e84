"""The cluster adapter's fast path: commands sent straight to the master of their keys' slot.

redis-py's ``RedisCluster`` finds each command's keys through its command table, their slot
and node, under a lock, before it sends anything: on the project's machine that made a
``GET`` 1.4-1.7 times a single server's, and a 100-key batch, one command per slot in its
cluster pipeline, 16 us a slot (docs/design.md, "The cluster's fast path"). The adapter's
commands name their key first, so :class:`SlotRouter` hashes it (CRC16 of the hash tag,
:func:`redis.crc.key_slot`), looks the slot's master up in the cluster client's own slot map
and sends the command on that node's plain connection pool. A batch is one pipeline per
master: written to every master involved before any reply is read.

The cluster client stays in charge of the map. Whenever the fast path cannot know the
command is settled, it hands over, and never sends a command twice:

* ``MOVED`` or ``ASK`` (a slot moved, a failover): the node refused, nothing was done; the
  command goes to the cluster client, which follows the redirection and patches its map;
* no connection to the node (refused, or a connect that timed out): nothing was sent; the
  cluster client tries, and on failure asks itself for a new map. The node is *suspect*:
  its slots go through the cluster client until a call there succeeds, so a failover is
  learnt the cluster client's way (bounded, rate-limited refreshes);
* a connection lost or timed out after the send: the command may have run. It is not sent
  again (``add`` must not answer for another caller's write); the node is suspect, and the
  caller gets the error (``BackendUnavailable`` once typed).
"""

from __future__ import annotations

from binascii import crc_hqx
from collections.abc import Callable, Sequence
from typing import Any, Final

import redis
from redis.connection import ConnectionPool
from redis.crc import key_slot
from redis.exceptions import AskError, MovedError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .cluster_wire import can_read_raw, pack, read_replies

__all__ = ["SlotRouter", "slot_of"]

_SLOT_MASK: Final = 16383  # 16384 slots
_LOST: Final = (RedisConnectionError, RedisTimeoutError, OSError)
_REDIRECTED: Final = (MovedError, AskError)


def slot_of(name: bytes) -> int:
    """The hash slot of ``name``, as :func:`redis.crc.key_slot` computes it. A plain
    namespace's names start with an empty hash tag (``{}``, cluster.py): Redis then hashes the
    whole name, which is computed here without looking for a tag."""
    if name[:2] == b"{}":
        return crc_hqx(name, 0) & _SLOT_MASK
    return key_slot(name)


class _Handover(Exception):
    """The fast path cannot settle this command or batch: the cluster client takes it."""


class SlotRouter:
    """Routes the commands of a namespace on ``cluster`` (a ``redis.RedisCluster``).

    :meth:`execute` runs one command whose first argument after the name is its only key;
    :meth:`per_slot` runs one command per slot, one pipeline per master, in one round trip
    per master. Thread-safe: each command borrows a connection from its node's pool.
    """

    __slots__ = ("_cluster", "_suspect")

    def __init__(self, cluster: redis.RedisCluster) -> None:
        self._cluster: Any = cluster  # much of RedisCluster is unannotated
        # Nodes (by name) whose slots go through the cluster client until it succeeds there.
        self._suspect: set[str] = set()

    # ------------------------------------------------------------------------ the map
    def _master(self, slot: int) -> tuple[str, ConnectionPool] | None:
        """The slot's master and its pool, from the cluster client's map; None when the map
        has no master for the slot, or the master is suspect."""
        nodes = self._cluster.nodes_manager.slots_cache.get(slot)
        return self._pool_of(nodes[0]) if nodes else None

    def _pool_of(self, node: Any) -> tuple[str, ConnectionPool] | None:
        """A master's name and pool; None when it is suspect."""
        if node.name in self._suspect:
            return None
        client = node.redis_connection or self._cluster.get_redis_connection(node)
        pool: ConnectionPool = client.connection_pool
        return node.name, pool

    def _through_cluster(self, slot: int, call: Callable[[], Any]) -> Any:
        """``call()`` on the cluster client; a success clears the slot's master of suspicion
        (the cluster client has a map that works, or had none to doubt)."""
        result = call()
        if self._suspect:
            nodes = self._cluster.nodes_manager.slots_cache.get(slot)
            self._suspect.discard(nodes[0].name if nodes else "")
        return result

    # ---------------------------------------------------------------------- one command
    def execute(self, *args: Any) -> Any:
        """``args`` is a command whose key is ``args[1]`` (GET, SET, UNLINK, ...)."""
        slot = slot_of(args[1])
        found = self._master(slot)
        if found is None:
            return self._through_cluster(slot, lambda: self._cluster.execute_command(*args))
        name, pool = found
        try:
            return _exchange(pool, name, self._suspect, args)
        except _Handover:
            return self._through_cluster(slot, lambda: self._cluster.execute_command(*args))

    # ------------------------------------------------------------------------ batches
    def per_slot(self, commands: Sequence[Sequence[Any]], slots: Sequence[int]) -> list[Any]:
        """Run ``commands[i]`` (each naming keys of ``slots[i]`` only) and return their
        replies in order: one pipeline per master, every one written before any reply is
        read. Hands the whole batch to the cluster client's pipeline when a slot has no
        known master or a node redirected a command (its commands are idempotent: MGET,
        MSET, SET PX, UNLINK); raises, sending nothing again, when a connection was lost
        after the send."""
        groups: dict[str, tuple[ConnectionPool, list[int]]] = {}
        for position, slot in enumerate(slots):
            found = self._master(slot)
            if found is None:
                return self._batch_through_cluster(commands, slots)
            name, pool = found
            groups.setdefault(name, (pool, []))[1].append(position)
        try:
            return _pipelines(groups, commands, self._suspect)
        except _Handover:
            return self._batch_through_cluster(commands, slots)

    def on_masters(self, names: Sequence[bytes], head: Sequence[Any]) -> list[Any] | None:
        """``(*head, *names of one master)`` on each master involved, written to every one
        before any reply is read, and each name's part of its master's reply (a list, in the
        order sent), in ``names``' order. None when the fast path cannot tell which master
        holds a name (no master known for its slot, or a suspect one) or a node redirected:
        the caller then goes slot by slot. Raises a ``ResponseError`` a node answered, and,
        sending nothing again, a connection lost after the send."""
        # Grouped by the master the map names, and only then each master's pool looked up:
        # a hundred keys are about a hundred slots, but three masters.
        in_map = self._cluster.nodes_manager.slots_cache.get
        nodes: dict[str, Any] = {}
        positions: dict[str, list[int]] = {}
        for position, name in enumerate(names):
            # slot_of, inline: a call per name is a tenth of the loop
            slot = crc_hqx(name, 0) & _SLOT_MASK if name[:2] == b"{}" else key_slot(name)
            found = in_map(slot)
            if not found:
                return None
            node = found[0]
            mine = positions.get(node.name)
            if mine is None:
                nodes[node.name] = node
                mine = positions[node.name] = []
            mine.append(position)
        by_master: dict[str, tuple[ConnectionPool, list[int]]] = {}
        for node_name, mine in positions.items():
            pooled = self._pool_of(nodes[node_name])
            if pooled is None:
                return None
            by_master[node_name] = (pooled[1], mine)
        commands = [(*head, *(names[i] for i in mine)) for _, mine in by_master.values()]
        groups = {node: (pool, [k]) for k, (node, (pool, _)) in enumerate(by_master.items())}
        try:
            replies = _pipelines(groups, commands, self._suspect)
        except _Handover:
            return None
        spread: list[Any] = [None] * len(names)
        for (_, mine), reply in zip(by_master.values(), replies, strict=True):
            for position, part in zip(mine, reply, strict=True):
                spread[position] = part
        return spread

    def _batch_through_cluster(
        self, commands: Sequence[Sequence[Any]], slots: Sequence[int]
    ) -> list[Any]:
        pipeline: Any = self._cluster.pipeline()  # unannotated in redis-py
        for command in commands:
            pipeline.execute_command(*command)
        replies: list[Any] = pipeline.execute()
        for slot in set(slots):
            self._through_cluster(slot, lambda: None)
        return replies


def _exchange(pool: ConnectionPool, name: str, suspect: set[str], args: Sequence[Any]) -> Any:
    """One command on a connection of ``pool``: its reply, or :class:`_Handover`."""
    try:
        connection: Any = pool.get_connection()  # unannotated in redis-py
    except _LOST as exc:  # nothing was sent
        suspect.add(name)
        raise _Handover from exc
    try:
        connection.send_command(*args)
        reply = connection.read_response()
    except _REDIRECTED as exc:  # a whole reply was read: the connection is in step
        pool.release(connection)
        raise _Handover from exc
    except _LOST:
        suspect.add(name)
        connection.disconnect()
        pool.release(connection)
        raise
    except redis.ResponseError:
        pool.release(connection)
        raise
    except BaseException:
        connection.disconnect()  # a reply may be left unread: never reuse it
        pool.release(connection)
        raise
    pool.release(connection)
    return reply


_Borrowed = tuple[str, ConnectionPool, Any, list[int], bool]


def _pipelines(
    groups: dict[str, tuple[ConnectionPool, list[int]]],
    commands: Sequence[Sequence[Any]],
    suspect: set[str],
) -> list[Any]:
    """Write each group's commands to a connection of its master's pool, then read every
    reply; :class:`_Handover` if a connection could not be had or a node redirected."""
    borrowed: list[_Borrowed] = []
    try:
        for name, (pool, positions) in groups.items():
            borrowed.append(_send(name, pool, [commands[i] for i in positions], suspect))
            borrowed[-1][3].extend(positions)
        return _read_all(borrowed, len(commands), suspect)
    except (_Handover, redis.ResponseError):
        raise  # every reply was read (or nothing sent): the connections are in step
    except BaseException:
        for _, pool, connection, _, _ in borrowed:
            connection.disconnect()  # replies may be left unread
            pool.release(connection)
        borrowed.clear()
        raise
    finally:
        for _, pool, connection, _, _ in borrowed:
            pool.release(connection)


def _send(
    name: str, pool: ConnectionPool, mine: list[Sequence[Any]], suspect: set[str]
) -> _Borrowed:
    """Borrow a connection and write ``mine`` on it, packed by hand where its replies can
    be read by hand (cluster_wire.py)."""
    try:
        connection: Any = pool.get_connection()  # unannotated in redis-py
    except _LOST as exc:  # nothing of this group was sent; others may have been
        suspect.add(name)
        raise _Handover from exc
    raw = can_read_raw(connection)
    try:
        connection.send_packed_command([pack(mine)] if raw else connection.pack_commands(mine))
    except BaseException:
        suspect.add(name)
        connection.disconnect()
        pool.release(connection)
        raise
    return name, pool, connection, [], raw


def _read_all(borrowed: list[_Borrowed], count: int, suspect: set[str]) -> list[Any]:
    """Every reply, in the commands' order; a redirection hands over once all are read, and
    any other error reply (OOM, ...) is raised then."""
    replies: list[Any] = [None] * count
    errors: list[BaseException] = []
    for name, _, connection, positions, raw in borrowed:
        try:
            got = (
                read_replies(connection, len(positions)) if raw else _parsed(connection, positions)
            )
        except _LOST:
            suspect.add(name)
            raise
        for position, reply in zip(positions, got, strict=True):
            if isinstance(reply, BaseException):
                errors.append(reply)
            else:
                replies[position] = reply
    if any(isinstance(error, _REDIRECTED) for error in errors):
        raise _Handover
    if errors:
        raise errors[0]
    return replies


def _parsed(connection: Any, positions: list[int]) -> list[Any]:
    """redis-py's parser, reply by reply; an error reply in place, as read_replies does."""
    got: list[Any] = []
    for _ in positions:
        try:
            got.append(connection.read_response())
        except redis.ResponseError as exc:  # a whole reply: the connection is in step
            got.append(exc)
    return got
