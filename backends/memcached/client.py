"""The connection pool the backend talks through: pymemcache's ``PooledClient`` (one
connection per concurrent caller) with three more calls, ``fetch``, ``one_line`` and
``pipeline``.

This module imports pymemcache, so nothing imports it until the first backend is built
(:func:`.driver.load_driver`): the package works without the ``memcached`` extra.

pymemcache has no call for a pipeline of different commands, its ``raw_command`` keeps only
the last piece of a reply that arrives in several, and its ``get_many`` checks and encodes keys
the adapter has already checked, then reads the reply a line at a time. The calls added here
borrow a connection from the pool and read the reply themselves, with the readers below, which
unit tests drive with canned sockets. The client is built with ``default_noreply=False``:
every command waits for the server's answer (docs/facts.md: with ``noreply`` pymemcache
reports success for a set the server refused).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from pymemcache.client.base import PooledClient  # type: ignore[import-untyped]
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
)
from pymemcache.pool import ObjectPool  # type: ignore[import-untyped]

from .replies import is_error_line, reply_error

__all__ = ["Exchange", "PipelinedClient", "read_get_reply", "read_line", "read_to_mn"]

_RECV_BYTES = 65536  # one recv takes a whole reply to a pipelined write, usually

_T = TypeVar("_T")


def _more(reply: bytes | bytearray, sock: Any) -> bytearray:
    """``reply`` with the next piece from ``sock`` appended (in place, once it is a
    bytearray: a reply in many pieces costs linear time, not quadratic)."""
    more = sock.recv(_RECV_BYTES)
    if not more:
        raise MemcacheUnexpectedCloseError()
    grown = reply if isinstance(reply, bytearray) else bytearray(reply)
    grown += more
    return grown


def read_get_reply(sock: Any, wanted: set[bytes]) -> dict[bytes, bytes]:
    """Read the reply to ``get`` of the keys ``wanted`` from ``sock``: the hits.

    VALUE blocks are read by the lengths they announce, since a value may hold any bytes
    (``\\r\\nEND\\r\\n`` included). A reply out of shape, or for a key not asked for, is a
    ``MemcacheError``; an error line raises what pymemcache raises for it; a connection that
    closes mid-reply is ``MemcacheUnexpectedCloseError``.
    """
    reply: bytes | bytearray = sock.recv(_RECV_BYTES)
    found: dict[bytes, bytes] = {}
    at = 0
    while True:
        end = reply.find(b"\r\n", at)
        while end < 0:
            reply = _more(reply, sock)
            end = reply.find(b"\r\n", at)
        if end == at + 3 and reply.startswith(b"END", at):
            if end + 2 != len(reply):
                raise MemcacheError(b"more reply than the get asked for")
            return found
        header = bytes(reply[at:end]).split(b" ")
        if header[0] != b"VALUE" or len(header) < 4 or not header[3].isdigit():
            raise reply_error(bytes(reply[at:end]), MemcacheError, MemcacheServerError)
        if header[1] not in wanted:
            raise MemcacheError(b"a value for a key the get did not ask for")
        start = end + 2
        stop = start + int(header[3])
        while len(reply) < stop + 2:
            reply = _more(reply, sock)
        if reply[stop : stop + 2] != b"\r\n":
            raise MemcacheError(b"a value did not end where its length said")
        found[header[1]] = bytes(reply[start:stop])
        at = stop + 2


def read_line(sock: Any) -> bytes:
    """Read the one line that answers one command from ``sock``, without its ``\\r\\n``.

    An error line raises here, inside the exchange, so that its connection is dropped as
    pymemcache drops one after any error: after a CLIENT_ERROR memcached may still answer the
    rest of what was sent. More than one line is a ``MemcacheError``.
    """
    reply: bytes | bytearray = sock.recv(_RECV_BYTES)
    while not reply.endswith(b"\r\n"):
        reply = _more(reply, sock)
    if reply.find(b"\r\n") != len(reply) - 2:
        raise MemcacheError(b"more than one reply line to one command")
    line = bytes(reply[:-2])
    if is_error_line(line):
        raise reply_error(line, MemcacheError, MemcacheServerError)
    return line


def read_to_mn(sock: Any) -> bytes:
    """Read from ``sock`` up to the ``MN`` that answers a meta no-op: the reply before it."""
    reply: bytes | bytearray = sock.recv(_RECV_BYTES)
    while not reply.endswith(b"MN\r\n"):
        reply = _more(reply, sock)
    return bytes(reply[:-4])


class _Pool(ObjectPool):  # type: ignore[misc]
    """pymemcache's pool, whose ``get`` hands a thread inside ``fresh`` a connection it
    closed first: pymemcache's client opens a new one on its next command."""

    def __init__(self, fresh: set[int], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fresh = fresh  # the threads inside fresh(), by ident

    def get(self) -> Any:
        client = super().get()
        fresh = self._fresh
        if fresh and threading.get_ident() in fresh:
            client.close()
        return client


class Exchange(Generic[_T]):
    """A request sent on a pooled connection whose reply is still to be read: ``finish``
    reads it (the connection goes back to the pool), ``abandon`` drops the connection; one
    of them, once. If ``finish`` raises, the connection is dropped, as in ``_exchange``."""

    __slots__ = ("_client", "_connection", "_read")

    def __init__(self, client: PipelinedClient, connection: Any, read: Callable[[Any], _T]):
        self._client: PipelinedClient | None = client
        self._connection = connection
        self._read = read

    def finish(self) -> _T:
        client = self._client
        if client is None:
            raise RuntimeError("this exchange was finished or abandoned already")
        self._client = None
        try:
            result = self._read(self._connection.sock)
        except BaseException:
            client.client_pool.destroy(self._connection)
            raise
        client._idle.append(self._connection)
        return result

    def abandon(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.client_pool.destroy(self._connection)


class PipelinedClient(PooledClient):  # type: ignore[misc]
    """pymemcache's ``PooledClient`` with ``fetch``, ``one_line`` and ``pipeline``, and
    ``drop_idle`` and ``fresh`` for a server that closed its connections
    (:mod:`.resend`)."""

    client_pool: _Pool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The threads inside fresh(), by ident: a set, empty but for a moment after a
        # restart, so the hot path pays one truth test (a threading.local cost 80 ns).
        self._fresh: set[int] = set()
        built = self.client_pool  # the same pool, with a get that honours fresh()
        self.client_pool = _Pool(
            self._fresh,
            self._create_client,
            after_remove=lambda client: client.close(),
            max_size=built.max_size,
            idle_timeout=built.idle_timeout,
        )
        # Connections idle between this class's exchanges. ``list.pop`` and ``append`` are
        # atomic, so this needs no lock: about 0.1 us a call against 2 us for the pool's
        # locked get and release (a tenth of the gap to the raw client). The connections
        # come from the pool and stay on its books as in use, so the pool's ``close`` closes
        # them; ``destroy`` takes a broken one off them.
        self._idle: list[Any] = []

    @property
    def idle(self) -> tuple[Any, ...]:
        """The connections idle between exchanges (tests look at them)."""
        return tuple(self._idle)

    def fetch(self, names: list[bytes]) -> dict[bytes, bytes]:
        """``get`` of ``names`` (memcached keys, checked) in one command: the hits."""
        wanted = set(names)
        return self._exchange(
            b"get " + b" ".join(names) + b"\r\n", lambda sock: read_get_reply(sock, wanted)
        )

    def one_line(self, wire: bytes) -> bytes:
        """Send ``wire``, one command answered by one line; return that line."""
        return self._exchange(wire, read_line)

    def pipeline(self, wire: bytes, parse: Callable[[bytes], _T]) -> _T:
        """Send ``wire`` and ``mn``; return ``parse`` of the reply up to its ``MN``."""
        return self._exchange(wire + b"mn\r\n", lambda sock: parse(read_to_mn(sock)))

    def _exchange(self, wire: bytes, read: Callable[[Any], _T]) -> _T:
        """Send ``wire`` on a pooled connection and ``read`` the reply from its socket.

        ``read`` (and whatever parsing it does) runs before the connection goes back to the
        pool: if anything raises, even an interrupt, the connection is dropped, so no reply
        is ever left half read for the next caller.
        """
        client = self._send(wire)
        try:
            result = read(client.sock)
        except BaseException:
            self.client_pool.destroy(client)
            raise
        self._idle.append(client)
        return result

    def _send(self, wire: bytes) -> Any:
        """Send ``wire`` on a pooled connection (an idle one, unless this thread asked for
        a fresh one) and return that connection, whose reply is the caller's to read; if
        sending fails, the connection is dropped."""
        idle, fresh = self._idle, self._fresh
        try:
            if fresh and threading.get_ident() in fresh:
                raise IndexError  # an idle connection is not a new one
            client = idle.pop()
        except IndexError:
            client = self.client_pool.get()
        try:
            if client.sock is None:
                client.version()  # connects: once per pooled connection
            client.sock.sendall(wire)
        except BaseException:
            self.client_pool.destroy(client)
            raise
        return client

    def begin(self, wire: bytes, read: Callable[[Any], _T]) -> Exchange[_T]:
        """Send ``wire`` on a pooled connection now; read the reply later, with the
        :class:`Exchange`'s ``finish`` (or drop the connection with its ``abandon``). A ring
        sends to every node it needs before it reads from any (:mod:`.ring_client`), so
        that one call costs about one round trip, not one per node. ``_exchange`` is this
        in one step, kept apart because the single-server hot path pays for no object."""
        return Exchange(self, self._send(wire), read)

    def drop_idle(self) -> None:
        """Close every idle connection, this class's and the pool's: called when the server
        closed one of them, which it does to all of them when it restarts."""
        idle, pool = self._idle, self.client_pool
        while idle:
            try:
                client = idle.pop()
            except IndexError:  # another thread took the last one
                break
            pool.destroy(client)
        for _ in range(len(pool.free)):
            pool.destroy(pool.get())  # a new, unconnected one if another thread was first

    @contextlib.contextmanager
    def fresh(self) -> Iterator[None]:
        """Within the block, every call of this thread goes on a new connection."""
        me = threading.get_ident()
        self._fresh.add(me)  # set.add and discard are atomic
        try:
            yield
        finally:
            self._fresh.discard(me)

    def close(self) -> None:
        self._idle.clear()  # the pool's close closes them: they are on its books
        super().close()
