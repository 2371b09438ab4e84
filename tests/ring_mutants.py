"""Deliberately broken memcached rings, each rejected by a ``faults.ring_*`` property.

Each mutant is the real ring adapter with one part replaced by what a naive ring does.
``RING_MUTANTS`` has the shape of ``adapter_mutants.ADAPTER_MUTANTS`` (and is merged into it):
name -> (server kind, adapter options, how to break a built backend, the property that must
fail, a pattern its reason must match).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pymemcache.exceptions import MemcacheUnexpectedCloseError  # type: ignore[import-untyped]

from cachespec.backends import Backend, BackendUnavailable
from cachespec.backends.memcached import MemcachedRingBackend


def _ring(backend: Backend) -> Any:
    """The ring's client (a RingClient: pymemcache is untyped)."""
    return backend._client  # type: ignore[attr-defined]


def forgets_membership_changes(backend: Backend) -> None:
    """pymemcache's ``HashClient`` as it is: a dropped node's keys remap, and when it comes
    back its old entries come back with it; nothing is discarded on either change."""
    _ring(backend).on_change(lambda: None)


def counter_follows_the_hash(backend: Backend) -> None:
    """The namespace counter hashed like any key: while its node is away it is created anew
    on another one, and a clear there is undone when the old counter comes back."""
    _ring(backend)._pinned = frozenset()


class UntypedErrorsRing(MemcachedRingBackend):
    """Lets pymemcache's and the socket's errors through: a stopped node raises
    ``TimeoutError``, a dead one ``ConnectionRefusedError``, not a CacheError."""

    __slots__ = ()

    def _call(self, op: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("key", None)
        kwargs.pop("resend", None)
        return method(*args, **kwargs)


def untyped_errors(backend: Backend) -> None:
    backend.__class__ = UntypedErrorsRing


def _first_value(sock: Any) -> bytes | None:
    """A naive reader of a one-key ``get``: the first value in the reply, whatever its key."""
    reply = b""
    while not reply.endswith(b"END\r\n"):
        more = sock.recv(65536)
        if not more:
            raise MemcacheUnexpectedCloseError()
        reply += more
    if not reply.startswith(b"VALUE "):
        return None
    header, _, rest = reply.partition(b"\r\n")
    value: bytes = rest[: int(header.split()[3])]
    return value


class _Lenient:
    """An exchange whose connection goes back to the pool when its read times out."""

    def __init__(self, client: Any, exchange: Any, read: Callable[[Any], Any]) -> None:
        self._client, self._exchange, self._read = client, exchange, read

    def finish(self) -> Any:
        connection = self._exchange._connection
        self._exchange._client = None  # finished here: its abandon does nothing
        try:
            result = self._read(connection.sock)
        except TimeoutError:
            self._client._idle.append(connection)  # "the server was slow; it is fine"
            raise
        except BaseException:
            self._client.client_pool.destroy(connection)
            raise
        self._client._idle.append(connection)
        return result

    def abandon(self) -> None:
        self._exchange.abandon()


def keeps_timed_out_connections(backend: Backend) -> None:
    """adapter_mutants' hand-rolled client on every node: a connection whose call timed out
    goes back to the pool, and a one-key ``get`` takes the first value in the reply as the
    key's. The late reply then answers the next one-key ``get`` sent on that connection,
    whatever its key (a ring sends each node the keys that hash to it, so a one-key ``get``
    is common)."""
    for client in _ring(backend).clients.values():
        plain = client.begin

        def begin(
            wire: bytes,
            read: Callable[[Any], Any],
            _client: Any = client,
            _plain: Callable[..., Any] = plain,
        ) -> _Lenient:
            if wire.startswith(b"get ") and wire.count(b" ") == 1 and wire.count(b"\r\n") == 1:
                name = wire[4:-2]

                def read(sock: Any, _name: bytes = name) -> dict[bytes, bytes]:
                    value = _first_value(sock)
                    return {} if value is None else {_name: value}

            return _Lenient(_client, _plain(wire, read), read)

        client.begin = begin


class NeverRecoversRing(MemcachedRingBackend):
    """A circuit breaker that never closes: after the first call a node failed, every call
    raises BackendUnavailable without trying, whether the node came back or not."""

    __slots__ = ()
    _tripped: ClassVar[set[int]] = set()  # by id(): the adapter's slots leave no room

    def _call(self, op: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if id(self) in self._tripped:
            raise BackendUnavailable(f"{op}: the circuit is open")
        try:
            return super()._call(op, method, *args, **kwargs)
        except BackendUnavailable:
            self._tripped.add(id(self))
            raise


def never_recovers(backend: Backend) -> None:
    backend.__class__ = NeverRecoversRing


def never_puts_a_node_back(backend: Backend) -> None:
    """A dropped node stays dropped for the client's lifetime (``dead_timeout`` never
    passes): safe, and the ring keeps a node fewer for ever."""
    _ring(backend)._dead = _NeverDue()


class _NeverDue(dict[str, float]):
    """Dropped nodes whose ``dead_timeout`` never passes."""

    def items(self) -> Any:
        return []


RING_MUTANTS: dict[str, tuple[str, dict[str, str], Callable[[Backend], None], str, str]] = {
    "ring_forgets_membership_changes": (
        "memcached-ring",
        {},
        forgets_membership_changes,
        "faults.ring_returning",
        r"superseded by write \d+, which returned while node \d+ was away",
    ),
    "ring_forgets_membership_changes_under_the_strategies": (
        "memcached-ring",
        {},
        forgets_membership_changes,
        "faults.ring_bounds",
        r"returned version \d+ .* allowed only version",
    ),
    "ring_counter_follows_the_hash": (
        "memcached-ring",
        {},
        counter_follows_the_hash,
        "faults.ring_clear",
        r"superseded by write \d+",
    ),
    "ring_never_recovers": (
        "memcached-ring",
        {},
        never_recovers,
        "faults.ring_recovers",
        r"raised 3 times after the server was back",
    ),
    "ring_never_puts_a_node_back": (
        "memcached-ring",
        {},
        never_puts_a_node_back,
        "faults.ring_recovers",
        r"fewer than 1 of 1000 keys live on node",
    ),
    "ring_untyped_errors": (
        "memcached-ring",
        {},
        untyped_errors,
        "faults.ring_calls",
        r"raised (TimeoutError|ConnectionRefusedError|\w+Error).*must raise a CacheError",
    ),
    "ring_keeps_timed_out_connections": (
        "memcached-ring",
        {},
        keeps_timed_out_connections,
        "faults.ring_keys",
        r"never written under",
    ),
}
