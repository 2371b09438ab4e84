"""The cluster fast path's hand-made wire (backends/redis/cluster_wire.py): what it packs is
what redis-py packs, and it reads every reply shape the batch commands get, in RESP2 and
RESP3, from a real socket pair; a socket failure is redis-py's error, typed as ever."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cachespec.backends.redis.cluster_wire import pack, read_replies


def _connection() -> Any:
    make: Any = Connection  # unannotated in redis-py
    return make()


class _Wired:
    """Enough of a redis-py connection for read_replies: its socket, parser and address."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._parser: Any = _connection()._parser
        self.host, self.port = "127.0.0.1", 0


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, _Wired]]:
    ours, theirs = socket.socketpair()
    ours.settimeout(0.05)
    try:
        yield theirs, _Wired(ours)
    finally:
        ours.close()
        theirs.close()


def test_pack_is_what_redis_py_packs() -> None:
    commands = [("MGET", b"{}{ns}:a"), ("SET", b"k", b"\x00\r\n", "PX", 1500)]
    theirs = b"".join(_connection().pack_commands(commands))
    assert pack(commands) == theirs


def test_every_reply_shape_the_batches_get(pair: tuple[socket.socket, _Wired]) -> None:
    server, connection = pair
    server.sendall(
        b"*3\r\n$1\r\na\r\n$-1\r\n_\r\n"  # MGET: a value, a RESP2 nil, a RESP3 nil
        b"+OK\r\n:2\r\n"  # MSET / SET, UNLINK
        b"$4\r\nb\r\nc\r\n"  # a value holding CRLF
        b"-MOVED 3999 127.0.0.1:7001\r\n-OOM command not allowed\r\n"
        b"!9\r\nOOM again\r\n"  # RESP3's bulk error
    )
    replies = read_replies(connection, 7)
    assert replies[:4] == [[b"a", None, None], b"OK", 2, b"b\r\nc"]
    assert isinstance(replies[4], MovedError)
    assert (replies[4].slot_id, replies[4].port) == (3999, 7001)
    assert isinstance(replies[5], OutOfMemoryError)
    assert isinstance(replies[6], OutOfMemoryError)


def test_replies_split_across_reads_come_back_whole(
    pair: tuple[socket.socket, _Wired],
) -> None:
    server, connection = pair
    server.sendall(b"*2\r\n$3\r\nab")  # the rest arrives after the first read
    wire = b"c\r\n$2\r\nde\r\n"

    sent = False
    original = connection._sock.recv

    def recv(size: int) -> bytes:
        nonlocal sent
        got = original(size)
        if not sent:
            server.sendall(wire)
            sent = True
        return got

    connection._sock = type("S", (), {"recv": staticmethod(recv)})()
    assert read_replies(connection, 1) == [[b"abc", b"de"]]


def test_a_silent_server_is_redis_pys_timeout(pair: tuple[socket.socket, _Wired]) -> None:
    _, connection = pair
    with pytest.raises(RedisTimeoutError):
        read_replies(connection, 1)


def test_a_closed_connection_is_redis_pys_connection_error(
    pair: tuple[socket.socket, _Wired],
) -> None:
    server, connection = pair
    server.sendall(b"+OK\r\n")
    server.close()
    with pytest.raises(RedisConnectionError, match="closed"):
        read_replies(connection, 2)


def test_an_unknown_reply_or_extra_bytes_is_a_connection_error(
    pair: tuple[socket.socket, _Wired],
) -> None:
    server, connection = pair
    server.sendall(b"%1\r\n")
    with pytest.raises(RedisConnectionError, match="Protocol error"):
        read_replies(connection, 1)
    server.sendall(b"+OK\r\n+OK\r\n")
    with pytest.raises(RedisConnectionError, match="unexpected bytes"):
        read_replies(connection, 1)


def test_an_array_of_values_keeps_each_value_whole(pair: tuple[socket.socket, _Wired]) -> None:
    """The per-node read's reply: values holding CRLF or nothing at all, nils, and an
    element of another type among them, each read as itself."""
    server, connection = pair
    server.sendall(b"*5\r\n$4\r\nb\r\nc\r\n$0\r\n\r\n$-1\r\n*1\r\n$1\r\nz\r\n:7\r\n")
    assert read_replies(connection, 1) == [[b"b\r\nc", b"", None, [b"z"], 7]]
