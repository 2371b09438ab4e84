"""What every part of the harness shares, whatever the server kind.

The error a harness that cannot run raises, the loopback address the servers listen on, and
one request/reply exchange on a raw socket: the harness must not need the ``redis`` or
``pymemcache`` extras to start, probe or empty a server.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from .faketime import FaketimeClock

__all__ = ["HOST", "IO_TIMEOUT", "HarnessUnavailable", "RunningServer", "exchange", "line_reply"]

#: Every harness-started server listens on loopback only.
HOST: Final = "127.0.0.1"
#: Seconds one exchange may take before the socket times out (an OSError to the caller).
IO_TIMEOUT: Final = 2.0


class HarnessUnavailable(Exception):
    """The harness cannot run here (a missing binary, library or compiler, or a dead server).

    The message is one human line, with the tail of the server's log when there is one.
    """


class RunningServer(Protocol):
    """What a target needs of a started server: one process (a ``ManagedServer``) or
    several that act as one (a cluster, :mod:`.cluster`)."""

    kind: str
    url: str
    clock: FaketimeClock | None

    def flush(self) -> None: ...

    def stop(self) -> None: ...

    def is_running(self) -> bool: ...


def exchange(
    port: int,
    request: bytes,
    complete: Callable[[bytes], bool],
    *,
    tls: ssl.SSLContext | None = None,
) -> bytes:
    """Send ``request`` on a new connection to ``HOST:port`` and read until ``complete(reply)``.

    With ``tls``, the connection is TLS under that context, verifying the server as
    ``HOST``. Raises ``ConnectionError`` if the server closes the connection first, and
    ``OSError`` (a timeout and ``ssl.SSLError`` included) if it cannot be reached.
    """
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((HOST, port), timeout=IO_TIMEOUT))
        if tls is not None:  # wrap_socket detaches the plain socket: this one is closed
            sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=HOST))
        sock.sendall(request)
        reply = b""
        while not complete(reply):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed after {reply[-200:]!r}")
            reply += chunk
        return reply


def line_reply(reply: bytes) -> bool:
    """Whether ``reply`` is complete as a single CRLF-terminated line."""
    return reply.endswith(b"\r\n")
