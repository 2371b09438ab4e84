"""The harness side of the server faults: kill -9, SIGSTOP/SIGCONT and a restart of a server
the harness started, a bounded wait around each call, and the server's count of its
connections (docs/design.md, "Faults on a harness server").

Only a server the harness started may be faulted: it owns the process
(:class:`~cachespec.conformance.servers.ManagedServer`), its port and its clock, and puts
it back (SIGCONT, a new process on the same port) whatever the trial raised.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from .checks import CheckFailed
from .servers import ManagedServer
from .servers.base import exchange

__all__ = [
    "FAULTS",
    "HANG_AFTER",
    "SETTLE_WITHIN",
    "Fault",
    "Hung",
    "Outcome",
    "bounded",
    "can_count",
    "connection_count",
    "outage",
    "settled_count",
]

#: How long the harness waits for one call before it calls it a hang. Not a duration any
#: test asserts: a correct call ends within the adapter's timeout (0.2 s in a trial) per
#: round trip, and a call makes a few; this only turns a call that never returns into a
#: failure instead of a run that never ends.
HANG_AFTER: Final = 10.0
#: How long the harness waits for the server's count of connections to come down after the
#: client closed some (the server learns of a close on its next event-loop turn).
SETTLE_WITHIN: Final = 5.0


class Fault(enum.Enum):
    """What happens to the server mid-run, as the trial's story names it."""

    STOP = "SIGSTOP, calls, then SIGCONT"
    KILL = "kill -9, calls, then a new server on the port"
    RESTART = "a restart (SIGTERM, a new server on the port), then calls"


#: Trial n meets FAULTS[n % 3]: the first trial (what --size quick runs) is the stop, where
#: the server keeps its data and its connections and answers late.
FAULTS: Final = (Fault.STOP, Fault.KILL, Fault.RESTART)


@contextlib.contextmanager
def outage(server: ManagedServer, fault: Fault) -> Iterator[None]:
    """The server is down (STOP, KILL) or was just restarted (RESTART) inside the block; after
    it, the server answers again, whatever the block raised.

    A stopped server still completes TCP handshakes (the kernel's backlog) and buffers what
    clients send, so calls time out rather than being refused, and it executes what they
    sent once it continues. A killed one refuses connections until the new process answers.
    The harness's clock must not move inside the block: its barrier waits for the server.
    """
    if fault is Fault.RESTART:
        server.restart()
        yield
        return
    if fault is Fault.STOP:
        _signal_and_wait(server, signal.SIGSTOP, os.WUNTRACED)
        try:
            yield
        finally:
            _signal_and_wait(server, signal.SIGCONT, os.WCONTINUED)
        return
    server.process.kill()
    server.process.wait()
    try:
        yield
    finally:
        server.restart(kill=True)  # the process is gone already: this starts the new one


def _signal_and_wait(server: ManagedServer, sig: signal.Signals, option: int) -> None:
    """Send ``sig`` and return once the kernel reports it took effect: a signal is
    delivered asynchronously, and a call sent meanwhile would meet a running server. The
    server is the harness's child, so ``waitpid`` reports its stop and its continuation
    without reaping it."""
    server.process.send_signal(sig)
    os.waitpid(server.pid, option)


class Hung(CheckFailed):
    """A call did not return within :data:`HANG_AFTER`."""


@dataclass(frozen=True)
class Outcome:
    """What one call did: returned ``value``, or raised ``error``."""

    label: str
    value: object = None
    error: BaseException | None = None


def bounded(label: str, call: Callable[[], object], within: float = HANG_AFTER) -> Outcome:
    """Run ``call`` on a thread of its own and wait at most ``within`` seconds for it.

    Raises :class:`Hung` if it is still running then (the thread is a daemon: a call blocked
    on a stopped server returns once the outage ends, and one that never does cannot keep
    the interpreter from exiting).
    """
    box: list[Outcome] = []

    def attempt() -> None:
        try:
            box.append(Outcome(label, value=call()))
        except BaseException as exc:  # every kind is the caller's to judge
            box.append(Outcome(label, error=exc))

    worker = threading.Thread(target=attempt, name=f"fault-call {label}", daemon=True)
    worker.start()
    worker.join(within)
    if worker.is_alive() or not box:
        raise Hung(f"{label} did not return within {within:g} s: it hangs")
    return box[0]


# ------------------------------------------------------------------- counting connections
_REDIS_CLIENTS: Final = re.compile(rb"^connected_clients:(\d+)\r?$", re.MULTILINE)
_MEMCACHED_CURR: Final = re.compile(rb"^STAT curr_connections (\d+)\r$", re.MULTILINE)


def _resp_bulk_complete(reply: bytes) -> bool:
    """Whether ``reply`` is a whole RESP bulk string (``$<n>\\r\\n<n bytes>\\r\\n``)."""
    head, sep, _ = reply.partition(b"\r\n")
    if not sep:
        return False
    if not head.startswith(b"$"):
        return True  # an error or status line is one line
    return len(reply) >= len(head) + 2 + int(head[1:]) + 2


# Per kind: the request, when its reply is complete, and where the count is. The count
# includes the asking connection itself, so two counts compare like with like.
_PROBES: Final[dict[str, tuple[bytes, Callable[[bytes], bool], re.Pattern[bytes]]]] = {
    "redis": (b"INFO clients\r\n", _resp_bulk_complete, _REDIS_CLIENTS),
    "memcached": (b"stats\r\n", lambda r: r.endswith((b"END\r\n", b"ERROR\r\n")), _MEMCACHED_CURR),
}


def can_count(server: ManagedServer) -> bool:
    return server.kind in _PROBES


def connection_count(server: ManagedServer) -> int:
    """The connections the server holds now, by its own count (Redis ``connected_clients``,
    memcached ``curr_connections``), the asking one included."""
    request, complete, pattern = _PROBES[server.kind]
    reply = exchange(server.port, request, complete)
    match = pattern.search(reply)
    if match is None:
        raise CheckFailed(f"{server.kind} did not report its connections: {reply[:200]!r}")
    return int(match[1])


def settled_count(server: ManagedServer, at_most: int, within: float = SETTLE_WITHIN) -> int:
    """The server's count once it is at most ``at_most``, or the last count seen after
    ``within`` seconds (a bounded wait: connections a client closed are gone from the count
    once the server's event loop has seen the close; ones it leaked never are)."""
    deadline = time.monotonic() + within
    while True:
        count = connection_count(server)
        if count <= at_most or time.monotonic() > deadline:
            return count
        time.sleep(0.01)  # a poll with a deadline, not a wait "to make sure"
