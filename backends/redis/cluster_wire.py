"""The cluster fast path's batch wire: requests packed, and their replies read, by hand.

A 100-key batch on a cluster is a command per slot, about a hundred (docs/design.md, "The
cluster's fast path"). redis-py packs each command and parses each reply in Python, about
17 us and 4 us apiece on the project's machine: most of a batch's client time. The batch
commands are few and their replies simple (``MGET``: an array of bulk strings or nils;
``MSET``, ``SET``: ``+OK``; ``UNLINK``: an integer), so this module packs them with one
``bytes.join`` and reads the replies from the connection's socket with ``bytes.find``, in
RESP2 or RESP3 (redis-py 8 speaks RESP3 by default: a nil is ``_``).

It reads only what it can: a connection whose parser holds unread bytes is left to
redis-py (:func:`can_read_raw`), and a reply of a type these commands never get is a
protocol error (the connection is dropped). An error reply becomes the exception
redis-py's parser would raise (``MOVED`` a ``MovedError``, ``OOM`` an
``OutOfMemoryError``...), and a socket error or end of stream redis-py's
``TimeoutError``/``ConnectionError``, so the adapter types them as it always has.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any, Final

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["can_read_raw", "pack", "read_replies"]

_CHUNK: Final = 65536
_BULK: Final = ord("$")


def _encode(part: Any) -> bytes:
    if isinstance(part, bytes):
        return part
    if isinstance(part, str):
        return part.encode()
    return str(part).encode()  # an int: a TTL in ms


def pack(commands: Sequence[Sequence[Any]]) -> bytes:
    """The request for ``commands`` (parts: bytes, str or int), in order."""
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for part in command:
            data = part if part.__class__ is bytes else _encode(part)
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def can_read_raw(connection: Any) -> bool:
    """Whether the connection's parser has nothing buffered, so its socket's next bytes are
    the replies to what is sent next."""
    if connection._sock is None:
        return False
    buffer = getattr(connection._parser, "_buffer", None)
    return buffer is None or buffer.unread_bytes() == 0


class _Reader:
    """Replies off one socket, buffered; each ``reply()`` returns one whole reply."""

    __slots__ = ("_connection", "_data", "_pos", "_sock")

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._sock: socket.socket = connection._sock
        self._data = b""
        self._pos = 0

    def _more(self) -> None:
        try:
            chunk = self._sock.recv(_CHUNK)
        except TimeoutError as exc:  # socket.timeout: the connection's own timeout
            raise RedisTimeoutError(f"Timeout reading from {self._where()}") from exc
        except OSError as exc:
            raise RedisConnectionError(f"Error reading from {self._where()}: {exc}") from exc
        if not chunk:
            raise RedisConnectionError(f"Connection closed by {self._where()}")
        self._data = self._data[self._pos :] + chunk
        self._pos = 0

    def _where(self) -> str:
        return f"{self._connection.host}:{self._connection.port}"

    def _line(self) -> bytes:
        while (end := self._data.find(b"\r\n", self._pos)) < 0:
            self._more()
        line = self._data[self._pos : end]
        self._pos = end + 2
        return line

    def _bulk(self, length: int) -> bytes:
        while len(self._data) < self._pos + length + 2:
            self._more()
        value = self._data[self._pos : self._pos + length]
        self._pos += length + 2
        return value

    def _array(self, count: int) -> list[Any]:
        """``count`` replies; a bulk string already buffered whole is sliced here, without a
        call per element (a batch's reply is a hundred of them)."""
        items: list[Any] = []
        data, pos = self._data, self._pos
        size = len(data)
        for _ in range(count):
            end = data.find(b"\r\n", pos)
            if end > pos and data[pos] == _BULK:
                length = int(data[pos + 1 : end])
                if length < 0:
                    items.append(None)
                    pos = end + 2
                    continue
                stop = end + 2 + length
                if stop + 2 <= size:
                    items.append(data[end + 2 : stop])
                    pos = stop + 2
                    continue
            self._pos = pos  # anything else, or a value not all here yet: read it whole
            items.append(self.reply())
            data, pos = self._data, self._pos
            size = len(data)
        self._pos = pos
        return items

    def reply(self) -> Any:
        """One reply: bytes, None, int, an exception instance (an error reply), or a list."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            length = int(rest)
            return None if length < 0 else self._bulk(length)
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else self._array(count)
        if kind == b"+":
            return rest
        if kind == b":":
            return int(rest)
        if kind == b"_":  # RESP3's nil
            return None
        if kind == b"-":
            return self._connection._parser.parse_error(rest.decode(errors="replace"))
        if kind == b"!":  # RESP3's bulk error
            text = self._bulk(int(rest)).decode(errors="replace")
            return self._connection._parser.parse_error(text)
        raise RedisConnectionError(f"Protocol error from {self._where()}: {line[:40]!r}")


def read_replies(connection: Any, count: int) -> list[Any]:
    """``count`` replies off ``connection``'s socket; an error reply is its exception
    instance, in place (the caller decides; every reply is read, so the connection stays
    in step). Raises redis-py's ``TimeoutError``/``ConnectionError`` on a socket failure."""
    reader = _Reader(connection)
    replies = [reader.reply() for _ in range(count)]
    if reader._pos != len(reader._data):  # more than was asked: never reuse the connection
        raise RedisConnectionError(f"unexpected bytes from {reader._where()}")
    return replies
