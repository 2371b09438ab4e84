"""memcached's replies parsed without a server: canned bytes in, what the adapter makes of them.

The adapter tests (``test_memcached_adapter.py``) see these paths on a real server; here each
branch is driven directly, including replies a healthy server rarely sends.
"""

from __future__ import annotations

import pytest
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheClientError,
    MemcacheError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
)

from cachespec.backends import BackendFull, BackendUnavailable, CacheError, ValueTooLarge
from cachespec.backends.memcached import client, replies
from cachespec.backends.memcached.driver import load_driver
from cachespec.backends.memcached.errors import raise_for


class PieceSocket:
    """A socket whose replies are ``pieces``, one per ``recv``, then a closed connection."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)

    def recv(self, size: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


# ----------------------------------------------------------------------------- error lines
@pytest.mark.parametrize(
    ("line", "kind", "message"),
    [
        (
            b"SERVER_ERROR out of memory storing object",
            MemcacheServerError,
            b"out of memory storing object",
        ),
        (
            b"SERVER_ERROR object too large for cache",
            MemcacheServerError,
            b"object too large for cache",
        ),
        (b"CLIENT_ERROR bad data chunk", MemcacheError, b"bad data chunk"),
        (b"ERROR", MemcacheError, b"ERROR"),
    ],
)
def test_an_error_line_becomes_the_error_pymemcache_raises(
    line: bytes, kind: type[Exception], message: bytes
) -> None:
    assert replies.is_error_line(line)
    error = replies.reply_error(line, MemcacheError, MemcacheServerError)
    assert type(error) is kind
    assert replies.error_message(error) == message


def test_a_reply_that_only_contains_error_is_not_an_error_line() -> None:
    assert not replies.is_error_line(b"STORED")
    assert not replies.is_error_line(b"VALUE k 0 5\r\nERROR\r\nEND")


def test_the_server_refusals_are_told_apart_by_their_message() -> None:
    assert replies.is_too_large(b"object too large for cache")
    assert not replies.is_out_of_memory(b"object too large for cache")
    assert replies.is_out_of_memory(b"out of memory storing object")
    assert not replies.is_too_large(b"out of memory storing object")
    assert replies.error_message(MemcacheServerError("out of memory")) == b"out of memory"
    assert replies.error_message(MemcacheServerError()) == b""


# ------------------------------------------------------------------------ pipelined replies
def test_the_counter_reply_is_split_off_the_front_by_its_length() -> None:
    assert replies.split_counter(b"END\r\nSTORED\r\n") == (None, b"STORED\r\n")
    assert replies.split_counter(b"VALUE c 0 1\r\n7\r\nEND\r\nDELETED\r\n") == (
        b"7",
        b"DELETED\r\n",
    )
    # incr pads a number that got shorter with spaces; the value is kept as sent
    assert replies.split_counter(b"VALUE c 0 4\r\n7   \r\nEND\r\n") == (b"7   ", b"")
    # a value holding the reply's own terminator is read by its length, not by searching
    held = b"VALUE c 0 7\r\n\r\nEND\r\n\r\nEND\r\nSTORED\r\n"
    assert replies.split_counter(held) == (b"\r\nEND\r\n", b"STORED\r\n")


@pytest.mark.parametrize(
    "reply",
    [
        b"SERVER_ERROR busy\r\n",
        b"STORED\r\n",
        b"VALUE c 0 x\r\n7\r\nEND\r\n",  # no length
        b"VALUE c 0 2\r\n7\r\nEND\r\n",  # a length that overruns the value
        b"VALUE c 0 1\r\n7\r\n",  # no END
    ],
)
def test_a_counter_reply_out_of_shape_is_not_split(reply: bytes) -> None:
    assert replies.split_counter(reply) is None


def test_reply_lines_must_be_exactly_as_many_as_commands() -> None:
    assert replies.reply_lines(b"STORED\r\nNOT_STORED\r\n", 2) == [b"STORED", b"NOT_STORED"]
    assert replies.reply_lines(b"", 0) == []
    assert replies.reply_lines(b"STORED\r\n", 2) is None
    assert replies.reply_lines(b"STORED\r\nSTORED\r\nSTORED\r\n", 2) is None
    assert replies.reply_lines(b"STORED\r\nSTO", 1) is None


# ------------------------------------------------------------------------- md and stats
def test_md_lines_are_built_only_from_a_memcached_key_and_a_numeric_token() -> None:
    assert replies.md_line("ns:7:k", b"42") == b"md ns:7:k C42"
    assert replies.md_line("ns:7:a b", b"42") is None
    assert replies.md_line("ns:7:k\r\nflush_all", b"42") is None
    assert replies.md_line("k" * 251, b"42") is None
    assert replies.md_line("ns:7:k", b"42 q") is None
    assert replies.md_line("ns:7:k", b"") is None
    assert replies.MD_OUTCOMES == {b"HD": True, b"NF": False, b"EX": None}


@pytest.mark.parametrize(
    ("version", "text", "numbers", "accepted"),
    [
        (b"1.6.18", "1.6.18", (1, 6, 18), True),
        (b"1.6.10", "1.6.10", (1, 6, 10), True),
        (b"1.6.9", "1.6.9", (1, 6, 9), False),  # below 1.6.10 as numbers, not as text
        (b"1.5.22", "1.5.22", (1, 5, 22), False),
        (b"1.6.21-debug", "1.6.21-debug", (1, 6, 21), True),
        (b"", "", (), False),
        (1.6, "?", (), False),  # not bytes: shown as "?", and refused
    ],
)
def test_the_server_version_is_compared_by_its_numbers(
    version: object, text: str, numbers: tuple[int, ...], accepted: bool
) -> None:
    assert replies.server_version({b"version": version}) == (text, numbers)
    assert (numbers >= replies.MIN_VERSION) is accepted
    assert replies.server_version({}) == ("", ())


def test_the_server_time_comes_from_stats_or_not_at_all() -> None:
    assert replies.stats_time({b"time": 1_764_950_400}) == 1_764_950_400
    assert replies.stats_time({b"time": b"1764950400"}) == 1_764_950_400
    assert replies.stats_time({}) is None
    assert replies.stats_time({b"time": b"soon"}) is None
    assert replies.stats_time({b"time": None}) is None


def test_the_refused_value_size_is_read_from_the_call_arguments() -> None:
    assert replies.value_size(("k", b"x" * 10, 0)) == 10
    assert replies.value_size(({"a": b"x" * 3, "b": b"x" * 7},)) == 7
    assert replies.value_size(({},)) == 0
    assert replies.value_size(()) == 0


# ---------------------------------------------------------------------- reading a socket
def test_a_get_reply_is_read_by_its_lengths_across_pieces() -> None:
    sock = PieceSocket(b"VALUE a 0 5\r", b"\nx\r\nEN", b"\r\nVALUE b 0 0\r\n\r\nEN", b"D\r\n")
    assert client.read_get_reply(sock, {b"a", b"b"}) == {b"a": b"x\r\nEN", b"b": b""}


@pytest.mark.parametrize(
    ("pieces", "error", "why"),
    [
        ((b"END\r\nEND\r\n",), MemcacheError, "more reply than the get asked for"),
        ((b"VALUE c 0 1\r\nv\r\nEND\r\n",), MemcacheError, "did not ask for"),
        ((b"VALUE a 0 1\r\nvv\r\nEND\r\n",), MemcacheError, "did not end where its length"),
        ((b"SERVER_ERROR busy\r\n",), MemcacheServerError, "busy"),
        ((b"VALUE a 0 3\r\nv",), MemcacheUnexpectedCloseError, None),
    ],
)
def test_a_get_reply_out_of_shape_raises(
    pieces: tuple[bytes, ...], error: type[Exception], why: str | None
) -> None:
    with pytest.raises(error, match=why):
        client.read_get_reply(PieceSocket(*pieces), {b"a"})


def test_one_line_is_read_whole_and_an_error_line_raises() -> None:
    assert client.read_line(PieceSocket(b"HD", b"\r\n")) == b"HD"
    with pytest.raises(MemcacheServerError, match="out of memory"):
        client.read_line(PieceSocket(b"SERVER_ERROR out of memory storing object\r\n"))
    with pytest.raises(MemcacheError, match="more than one reply line"):
        client.read_line(PieceSocket(b"STORED\r\nSTORED\r\n"))
    with pytest.raises(MemcacheUnexpectedCloseError):
        client.read_line(PieceSocket(b"STOR"))


def test_a_pipelined_reply_is_read_up_to_its_mn() -> None:
    sock = PieceSocket(b"END\r\nSTORED\r\nM", b"N\r\n")
    assert client.read_to_mn(sock) == b"END\r\nSTORED\r\n"


# ------------------------------------------------------------------- errors, as raised
def _raised(exc: Exception, op: str = "set", key: str | None = "k", *args: object) -> Exception:
    with pytest.raises(CacheError) as caught:
        raise_for(
            exc,
            driver=load_driver(),
            label="memcached://test:1",
            op=op,
            key=key,
            args=args,
            max_value_size=100,
        )
    assert caught.value.__cause__ is exc
    return caught.value


def test_a_too_large_refusal_is_value_too_large_with_the_refused_size() -> None:
    error = _raised(
        MemcacheServerError(b"object too large for cache"), "set", "k", "ns:k", b"x" * 300
    )
    assert isinstance(error, ValueTooLarge)
    assert (error.key, error.size, error.limit) == ("k", 300, 100)
    assert "the old entry may be gone" in str(error)
    error = _raised(MemcacheServerError(b"object too large for cache"), "add", "k", "ns:k", b"x")
    assert "nothing was written" in str(error)


def test_an_out_of_memory_refusal_is_backend_full_naming_the_key() -> None:
    error = _raised(MemcacheServerError(b"out of memory storing object"), "set", "k")
    assert isinstance(error, BackendFull)
    assert error.keys == ("k",)
    assert "out of memory storing object" in str(error)
    keyless = _raised(MemcacheServerError(b"out of memory"), "set", None)
    assert isinstance(keyless, BackendFull)
    assert keyless.keys == ()


def test_socket_and_protocol_errors_are_told_apart() -> None:
    assert isinstance(_raised(TimeoutError("timed out")), BackendUnavailable)
    assert isinstance(_raised(MemcacheUnexpectedCloseError()), BackendUnavailable)
    other = _raised(MemcacheServerError(b"busy"))
    assert type(other) is CacheError
    assert "busy" in str(other)
    assert type(_raised(MemcacheClientError(b"bad data chunk"))) is CacheError


def test_an_unrelated_exception_goes_through_unchanged() -> None:
    exc = KeyError("x")
    with pytest.raises(KeyError) as caught:
        raise_for(
            exc, driver=load_driver(), label="l", op="get", key=None, args=(), max_value_size=1
        )
    assert caught.value is exc
