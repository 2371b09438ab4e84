"""memcached's replies, parsed: pure functions of the bytes the server sent.

Nothing here talks to a server or imports pymemcache, so unit tests drive every branch with
canned replies (``tests/test_memcached_wire.py``). The exceptions a reply turns into are
passed in (pymemcache's classes, in :mod:`.client` and the backend), so that what is raised
is what pymemcache itself raises for the same line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .keys import SERVER_KEY_RE

__all__ = [
    "ERROR_PREFIXES",
    "MD_OUTCOMES",
    "MIN_VERSION",
    "error_message",
    "is_error_line",
    "is_out_of_memory",
    "is_too_large",
    "md_line",
    "reply_error",
    "reply_lines",
    "server_version",
    "split_counter",
    "stats_time",
    "value_size",
]

ERROR_PREFIXES = (b"SERVER_ERROR", b"CLIENT_ERROR", b"ERROR")
"""How memcached's error lines start: a server-side failure, a malformed command, an unknown
command. Any of them may answer any command."""

MIN_VERSION = (1, 6, 10)
"""The oldest memcached the adapter accepts: writes end with the meta no-op ``mn``, and
``compare_and_delete`` needs the meta delete ``md`` as it answers from 1.6.10 on (``HD``;
``OK`` before)."""

MD_OUTCOMES: Mapping[bytes, bool | None] = {b"HD": True, b"NF": False, b"EX": None}
"""The meaning of each reply to ``md <key> C<token>``: deleted, not found, token stale."""

# A CAS token as it may go on a hand-built ``md`` line: a 64-bit unsigned integer.
_CAS_TOKEN_RE = re.compile(rb"[0-9]{1,20}")


def is_error_line(line: bytes) -> bool:
    """Whether ``line`` (or a reply that starts with it) is one of memcached's errors."""
    return line.startswith(ERROR_PREFIXES)


def reply_error(line: bytes, error: type[Exception], server_error: type[Exception]) -> Exception:
    """The exception pymemcache raises for an error line (or for a line it cannot parse):
    ``server_error`` for ``SERVER_ERROR``, else ``error``, with the text after the first
    word as its message (the whole line when there is none)."""
    message = line.partition(b" ")[2] or line
    return server_error(message) if line.startswith(b"SERVER_ERROR") else error(message)


def split_counter(reply: bytes) -> tuple[bytes | None, bytes] | None:
    """Split the reply to a one-key ``get`` off the front of ``reply``: ``(value, rest)``,
    the value ``None`` for a miss (``END``). ``None`` when ``reply`` does not start with a
    whole ``get`` reply (an error line, or a reply out of step)."""
    if reply.startswith(b"END\r\n"):
        return None, reply[5:]
    if reply.startswith(b"VALUE "):
        header_end = reply.find(b"\r\n")
        size = reply[:header_end].rsplit(b" ", 1)[-1]
        if size.isdigit():
            start = header_end + 2
            end = start + int(size)
            if reply.startswith(b"\r\nEND\r\n", end):
                return reply[start:end], reply[end + 7 :]
    return None


def reply_lines(reply: bytes, count: int) -> list[bytes] | None:
    """The ``count`` lines of ``reply`` (each ended by ``\\r\\n``), or ``None`` if it does not
    hold exactly that many whole lines."""
    lines = reply.split(b"\r\n")
    if len(lines) != count + 1 or lines[-1]:
        return None
    del lines[-1]
    return lines


def md_line(name: str, token: bytes) -> bytes | None:
    """The command ``md <name> C<token>`` (delete if the CAS token matches), or ``None`` when
    ``name`` is not a memcached key or ``token`` not a CAS token: the line is built by hand,
    so no space or control byte may reach the server through it."""
    if not (SERVER_KEY_RE.fullmatch(name) and _CAS_TOKEN_RE.fullmatch(token)):
        return None
    return b"md " + name.encode("ascii") + b" C" + token


def server_version(stats: Mapping[bytes, Any]) -> tuple[str, tuple[int, ...]]:
    """The server's version as ``stats`` reports it: its text (``"?"`` if not bytes) and its
    first three numbers, to compare with :data:`MIN_VERSION` (``()`` if there are none)."""
    version = stats.get(b"version", b"")
    text = version.decode("ascii", "replace") if isinstance(version, bytes) else "?"
    return text, tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def stats_time(stats: Mapping[bytes, Any]) -> int | None:
    """The server's clock (``STAT time``, Unix seconds) from ``stats``; ``None`` if absent or
    not a number."""
    try:
        return int(stats[b"time"])
    except (KeyError, TypeError, ValueError):
        return None


def error_message(exc: BaseException) -> bytes:
    """The message of an error raised for a reply line, as bytes (pymemcache passes the
    server's bytes; anything else is encoded)."""
    first = exc.args[0] if exc.args else b""
    return first if isinstance(first, bytes) else str(first).encode("utf-8", "replace")


def is_too_large(message: bytes) -> bool:
    """Whether a ``SERVER_ERROR`` refused an item over the server's size limit
    (``object too large for cache``)."""
    return b"too large" in message


def is_out_of_memory(message: bytes) -> bool:
    """Whether a ``SERVER_ERROR`` refused an item for want of memory
    (``out of memory storing object``)."""
    return b"out of memory" in message


def value_size(args: tuple[Any, ...]) -> int:
    """The size of the value a refused store carried, from the arguments of the call that
    sent it: ``(key, value, ...)``, or a ``{key: value}`` dict (the largest value)."""
    if len(args) >= 2 and isinstance(args[1], bytes):
        return len(args[1])
    if args and isinstance(args[0], dict):
        return max((len(value) for value in args[0].values()), default=0)
    return 0
