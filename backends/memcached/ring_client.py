"""The client a memcached ring talks through: pymemcache's ``HashClient`` with the backend's
calls routed to the node each key hashes to, and its node-failure rules on an injected clock.

This module imports pymemcache, so nothing imports it until the first ring backend is built
(:meth:`.ring.MemcachedRingBackend._build_client`).

``HashClient`` keeps a :class:`~pymemcache.client.base.PooledClient` per node and a rendezvous
hash of the live nodes; it routes its own calls (``get``, ``set``, ...) but not the ones the
adapter adds (``fetch``, ``pipeline``, ``one_line``, ``raw_command``), and its failure
bookkeeping reads ``time.time()`` and answers a failing node's calls with a default value
(a silent miss, or ``False`` for a write the caller cannot tell from a refusal). Here each
node is a :class:`.client.PipelinedClient`, every call is routed, and the rules are
(docs/design.md, "The memcached ring"):

* a node that fails (refused, timed out; not a connection the server closed, which the
  backend sends again on a new one) is not tried again for ``retry_timeout`` seconds: calls
  for its keys fail at once with :class:`NodeDown`, an ``OSError`` (``BackendUnavailable``);
* after ``retry_attempts`` failures in a row it is dropped from the hash, and its keys go to
  the other nodes; after ``dead_timeout`` seconds it is put back;
* each drop and each return is a *membership change*: before its next call, the client runs
  ``settle`` (the backend's ``clear``), so no entry written before the change is read after
  it, on the returning node or on a stand-in;
* the keys in ``pinned`` (the namespace counter) never move: they go to the node the full
  ring gives them, dead or not, so the counter is never on two nodes at once;
* with ``miss_on_failure``, a ``fetch`` answers the keys of a failing node as misses (never
  a pinned key's); every other call raises.

Two things are done for speed (bench/ring.py): a call that needs several nodes sends each its
request before it reads any reply (:meth:`.client.PipelinedClient.begin`), so it costs about
one round trip; and keys are placed by :class:`Rendezvous`, the same scheme as pymemcache's
default hasher scored in C, with the routes remembered per key.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from pymemcache.client.hash import HashClient  # type: ignore[import-untyped]
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheError,
    MemcacheUnexpectedCloseError,
)

from .client import Exchange, PipelinedClient, read_get_reply, read_to_mn
from .replies import reply_lines, split_counter
from .resend import closed_by_server

__all__ = ["NodeDown", "RingClient", "split_commands"]

_T = TypeVar("_T")

_STORAGE = frozenset({b"set", b"add", b"cas", b"replace"})
_ROUTES = 4096  # routes remembered (node_of) before the memory of them starts afresh


class Rendezvous:
    """Rendezvous (highest random weight) hashing, the scheme of pymemcache's
    ``RendezvousHash``, scored by BLAKE2b keyed with the node's name instead of a pure-Python
    MurmurHash3: about 1 us a key over 3 nodes instead of 25 (bench/ring.py). A key goes to
    the node with the highest score; dropping a node moves only that node's keys.

    The node order differs from pymemcache's default, so a ring shared with clients that
    hash the default way would place keys differently; this adapter's keys are its own
    (``<namespace>:<generation>:...``), so nothing else reads them."""

    def __init__(self) -> None:
        self.nodes: list[str] = []
        self._keys: list[tuple[bytes, str]] = []  # (BLAKE2b key, node), in node order

    def add_node(self, node: str) -> None:
        if node not in self.nodes:
            self.nodes.append(node)
            self._keys.append((node.encode("utf-8")[:64], node))

    def remove_node(self, node: str) -> None:
        if node not in self.nodes:
            raise ValueError(f"No such node {node} to remove")
        self.nodes.remove(node)
        self._keys = [(secret, name) for secret, name in self._keys if name != node]

    def get_node(self, key: str) -> str | None:
        data = key.encode("ascii")
        best = b""
        winner = None
        for secret, node in self._keys:
            score = hashlib.blake2b(data, digest_size=8, key=secret).digest()
            if score > best:
                best, winner = score, node
        return winner


class NodeDown(ConnectionError):
    """A node that failed lately, or no node at all: the call was not sent."""


def split_commands(wire: bytes) -> list[tuple[str, bytes]]:
    """The commands of a pipelined ``wire`` as ``(key, command bytes)``, in order.

    The backend builds every wire itself (``get``, ``set``/``add`` with their data blocks,
    ``delete``), so one key per command; a storage command's data is taken by its length,
    since a value may hold any bytes.
    """
    commands: list[tuple[str, bytes]] = []
    at = 0
    while at < len(wire):
        end = wire.find(b"\r\n", at)
        if end < 0:
            raise MemcacheError(b"a command without its end of line")
        header = wire[at:end].split(b" ")
        stop = end + 2
        if header[0] in _STORAGE:
            stop += int(header[4]) + 2
        if len(header) < 2 or stop > len(wire):
            raise MemcacheError(b"a command out of shape")
        commands.append((header[1].decode("ascii"), wire[at:stop]))
        at = stop
    return commands


class RingClient(HashClient):  # type: ignore[misc]
    """``HashClient`` over :class:`.client.PipelinedClient` nodes, speaking the backend's
    :class:`.driver.Client` calls (see the module docstring for the rules)."""

    def __init__(
        self,
        servers: Sequence[tuple[str, int]],
        *,
        retry_attempts: int,
        retry_timeout: float,
        dead_timeout: float,
        miss_on_failure: bool,
        monotonic: Callable[[], float],
        pinned: frozenset[str],
        **node_options: Any,
    ) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}  # node: (failures in a row, last)
        self._dead: dict[str, float] = {}  # node: when it was dropped
        self._epoch = 0  # membership changes so far
        self._settled = 0  # the epoch the last settle ran for
        self._settling = threading.local()
        self._settle: Callable[[], None] | None = None
        self._pinned = pinned
        # Routes hashed so far, each with the epoch it holds for: hashing a key costs about
        # 1 us, a look-up here 0.1 (hot keys are read again and again).
        self._routes: dict[str, tuple[int, str]] = {}
        self._home = Rendezvous()  # every node, always: where pinned keys live
        self.miss_on_failure = miss_on_failure
        super().__init__(
            list(servers),
            hasher=Rendezvous,
            retry_attempts=retry_attempts,
            retry_timeout=retry_timeout,
            dead_timeout=dead_timeout,
            ignore_exc=False,
            **node_options,
        )

    # ------------------------------------------------------------------------- membership
    def add_server(self, server: Any, port: Any = None) -> None:
        """A node as a :class:`.client.PipelinedClient` (HashClient builds plain ones)."""
        name = self._make_client_key(server)
        self.clients[name] = PipelinedClient(server, **self.default_kwargs)
        self.hasher.add_node(name)
        self._home.add_node(name)

    def use_clock(self, monotonic: Callable[[], float]) -> None:
        """Time failures by ``monotonic`` from now on."""
        self._monotonic = monotonic

    def on_change(self, settle: Callable[[], None]) -> None:
        """Run ``settle`` before the first call after each membership change."""
        self._settle = settle

    @property
    def epoch(self) -> int:
        """How many times a node was dropped or put back."""
        return self._epoch

    @property
    def live(self) -> tuple[str, ...]:
        """The nodes keys are hashed over now."""
        return tuple(self.hasher.nodes)

    def node_of(self, key: str) -> str:
        """The node ``key`` goes to now (a pinned key: its home, live or not)."""
        self._revive()
        epoch = self._epoch
        route = self._routes.get(key)
        if route is not None and route[0] == epoch:
            return route[1]
        hasher = self._home if key in self._pinned else self.hasher
        name: str | None = hasher.get_node(key)
        if name is None:
            raise NodeDown("every memcached node of the ring is down")
        routes = self._routes
        if len(routes) >= _ROUTES:
            routes.clear()  # a crude bound: hot keys come back at once
        routes[key] = (epoch, name)  # stamped: a route from before a change is not used
        return name

    def _revive(self) -> None:
        """Put back the nodes dropped ``dead_timeout`` ago or more; then settle, once per
        change and never from inside a settle (which calls this client)."""
        if self._dead:
            now = self._monotonic()
            with self._lock:
                for name, since in list(self._dead.items()):
                    if now - since >= self.dead_timeout:
                        del self._dead[name]
                        self._failures.pop(name, None)
                        self.hasher.add_node(name)
                        self._epoch += 1
        epoch = self._epoch
        if epoch != self._settled and self._settle is not None:
            if getattr(self._settling, "on", False):
                return
            self._settling.on = True
            try:
                self._settle()
                self._settled = max(self._settled, epoch)
            finally:
                self._settling.on = False

    def _check(self, name: str) -> None:
        """Raise :class:`NodeDown` if node ``name`` failed less than ``retry_timeout`` ago."""
        failed = self._failures.get(name)
        if failed is not None and self._monotonic() - failed[1] < self.retry_timeout:
            raise NodeDown(
                f"memcached node {name} failed {failed[0]} time(s) in a row; not tried again "
                f"until retry_timeout={self.retry_timeout:g} s has passed"
            )

    def _note(self, name: str, exc: BaseException) -> None:
        """Count ``exc`` against node ``name`` if it says the node failed: not a connection
        the server closed (the backend sends again on a new one) nor a call never sent."""
        if (
            isinstance(exc, OSError)
            and not isinstance(exc, NodeDown)
            and not closed_by_server(exc, MemcacheUnexpectedCloseError)
        ):
            self._failed(name)

    def _ok(self, name: str) -> None:
        if name in self._failures:
            with self._lock:
                self._failures.pop(name, None)

    def _run(self, name: str, method: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """``method(*args)`` on node ``name``, with its failures counted (module docstring)."""
        self._check(name)
        try:
            result = method(*args, **kwargs)
        except (OSError, MemcacheError) as exc:
            self._note(name, exc)
            raise
        self._ok(name)
        return result

    def _overlap(
        self, jobs: Sequence[tuple[str, bytes, Callable[[Any], _T]]]
    ) -> list[_T | Exception]:
        """Send each job's ``wire`` to its node, then read every reply with its ``read``: one
        round trip for the lot, not one per node. Per job, its result or the node's error."""
        started: list[tuple[str, Exchange[_T] | Exception]] = []
        try:
            for name, wire, read in jobs:
                try:
                    self._check(name)
                    started.append((name, self.clients[name].begin(wire, read)))
                except (OSError, MemcacheError) as exc:
                    self._note(name, exc)
                    started.append((name, exc))
            results: list[_T | Exception] = []
            for name, pending in started:
                if isinstance(pending, Exception):
                    results.append(pending)
                    continue
                try:
                    results.append(pending.finish())
                except (OSError, MemcacheError) as exc:
                    self._note(name, exc)
                    results.append(exc)
                else:
                    self._ok(name)
            return results
        finally:  # an interrupt between the sends and the reads: drop what was not read
            for _, pending in started:
                if not isinstance(pending, Exception):
                    pending.abandon()

    def _failed(self, name: str) -> None:
        now = self._monotonic()
        with self._lock:
            count = self._failures.get(name, (0, now))[0] + 1
            self._failures[name] = (count, now)
            if count >= self.retry_attempts and name in self.hasher.nodes:
                self.hasher.remove_node(name)
                self._dead[name] = now
                self._epoch += 1

    def _node(self, key: str) -> tuple[str, PipelinedClient]:
        name = self.node_of(key)
        return name, self.clients[name]

    # -------------------------------------------------------------------- the backend's calls
    def fetch(self, names: list[bytes]) -> dict[bytes, bytes]:
        """One ``get`` per node, of the names that hash to it, all sent before any is read."""
        groups: dict[str, list[bytes]] = {}
        # node_of's route look-up inline, after one check of the membership for the batch:
        # a call per name was a fifth of a 100-key get_many's client time.
        self._revive()
        epoch, routes = self._epoch, self._routes
        for name in names:
            key = name.decode("ascii")
            route = routes.get(key)
            node = route[1] if route is not None and route[0] == epoch else self.node_of(key)
            groups.setdefault(node, []).append(name)
        jobs: list[tuple[str, bytes, Callable[[Any], dict[bytes, bytes]]]] = [
            (node, b"get " + b" ".join(group) + b"\r\n", _reader(set(group)))
            for node, group in groups.items()
        ]
        found: dict[bytes, bytes] = {}
        for group, result in zip(groups.values(), self._overlap(jobs), strict=True):
            if not isinstance(result, Exception):
                found.update(result)
            elif not self.miss_on_failure or any(n.decode() in self._pinned for n in group):
                raise result
        return found

    def pipeline(self, wire: bytes, parse: Callable[[bytes], _T]) -> _T:
        """The commands of ``wire``, one pipeline per node, all sent before any reply is read
        (the counter's ``get``, first in ``wire``, first on its node); the replies put back in
        the order sent, then ``parse``."""
        commands = split_commands(wire)
        counter = bool(commands) and commands[0][1].startswith(b"get ")
        groups: dict[str, list[int]] = {}
        for position, (key, _) in enumerate(commands):
            groups.setdefault(self.node_of(key), []).append(position)
        jobs: list[tuple[str, bytes, Callable[[Any], bytes]]] = [
            (node, b"".join(commands[i][1] for i in positions) + b"mn\r\n", read_to_mn)
            for node, positions in groups.items()
        ]
        head = b""
        lines: list[bytes] = [b""] * len(commands)
        for sent, result in zip(groups.values(), self._overlap(jobs), strict=True):
            if isinstance(result, Exception):
                raise result
            reply, positions = result, sent
            if counter and positions[0] == 0:
                split = split_counter(reply)
                if split is None:
                    raise MemcacheError(b"a reply out of step: " + reply[:60])
                head = reply[: len(reply) - len(split[1])]
                reply, positions = split[1], positions[1:]
            got = reply_lines(reply, len(positions))
            if got is None:
                raise MemcacheError(b"a reply out of step: " + reply[:60])
            for position, line in zip(positions, got, strict=True):
                lines[position] = line
        if counter:
            lines = lines[1:]
        return parse(head + b"".join(line + b"\r\n" for line in lines))

    def one_line(self, wire: bytes) -> bytes:
        (key, _), *_ = split_commands(wire)
        node, client = self._node(key)
        return self._run(node, client.one_line, wire)

    def raw_command(self, command: bytes, end_tokens: bytes = b"\r\n") -> bytes:
        node, client = self._node(command.split(b" ")[1].decode("ascii"))
        reply: bytes = self._run(node, client.raw_command, command, end_tokens)
        return reply

    def _keyed(self, method: str, key: str, *args: Any, **kwargs: Any) -> Any:
        node, client = self._node(key)
        return self._run(node, getattr(client, method), key, *args, **kwargs)

    def add(self, key: str, *args: Any, **kwargs: Any) -> Any:
        return self._keyed("add", key, *args, **kwargs)

    def delete(self, key: str, *args: Any, **kwargs: Any) -> Any:
        return self._keyed("delete", key, *args, **kwargs)

    def incr(self, key: str, *args: Any, **kwargs: Any) -> Any:
        return self._keyed("incr", key, *args, **kwargs)

    def touch(self, key: str, *args: Any, **kwargs: Any) -> Any:
        return self._keyed("touch", key, *args, **kwargs)

    def gets(self, key: str, *args: Any, **kwargs: Any) -> Any:
        return self._keyed("gets", key, *args, **kwargs)

    def cas(self, key: str, *args: Any, **kwargs: Any) -> Any:
        return self._keyed("cas", key, *args, **kwargs)

    def stats(self, *args: str) -> dict[bytes, Any]:
        """Every live node's ``stats``, as one server's: the smallest ``item_size_max``, the
        oldest ``version`` and the latest ``time`` (an absolute exptime from the latest
        clock never ends an entry early on a node whose clock is behind)."""
        replies: list[dict[bytes, Any]] = [
            self._run(node, self.clients[node].stats, *args) for node in self.live
        ]
        if not replies:
            raise NodeDown("every memcached node of the ring is down")
        latest: dict[bytes, Any] = max(replies, key=_time_of)
        merged = dict(latest)
        sizes = [reply[b"item_size_max"] for reply in replies if b"item_size_max" in reply]
        if sizes:
            merged[b"item_size_max"] = min(sizes, key=int)
        versions = [reply[b"version"] for reply in replies if b"version" in reply]
        if versions:
            merged[b"version"] = min(versions, key=_version_key)
        return merged

    def drop_idle(self) -> None:
        for client in self.clients.values():
            client.drop_idle()

    @contextlib.contextmanager
    def fresh(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for client in self.clients.values():
                stack.enter_context(client.fresh())
            yield

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def _time_of(stats: dict[bytes, Any]) -> int:
    return int(stats.get(b"time", 0))


def _reader(wanted: set[bytes]) -> Callable[[Any], dict[bytes, bytes]]:
    def read(sock: Any) -> dict[bytes, bytes]:
        return read_get_reply(sock, wanted)

    return read


def _version_key(version: Any) -> tuple[int, ...]:
    text = version.decode("ascii", "replace") if isinstance(version, bytes) else str(version)
    return tuple(int(part) for part in text.split("-")[0].split(".") if part.isdigit())
