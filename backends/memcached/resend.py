"""Which calls are sent again, once, when the server closed the connection they met.

memcached closes every connection when it restarts, and a client that was idle meanwhile
learns it only from its next call on each pooled connection: the send goes into a socket the
server has closed, and the read finds the end of the stream (``MemcacheUnexpectedCloseError``)
or a reset. Issue #13 measured 8 such failures in 30 calls after an idle restart. The backend
then drops every idle connection (the server that closed one closed them all) and sends a
call that is safe to repeat once more, on a new connection; never a third time. A call that
is not safe to repeat raises :class:`~cachespec.backends.BackendUnavailable`, as before.

Safe to repeat means: if the first send did reach the server and took effect before the
connection closed, the second one leaves the same state *and* gets the answer the first one
would have got. The reasons for each call are in docs/design.md, "Outages"; in short:

* reads (``get``, ``get_many``, the counter's ``get``, the ``gets`` of a compare-and-X,
  ``stats``): they change nothing;
* ``set``, ``set_many``, ``delete``, ``delete_many`` and ``discard``'s delete of the counter:
  the same command twice leaves what once leaves (a repeated ``set`` may land after another
  client's write, as a ``set`` sent a moment later would);
* the ``touch`` that gives a guest's counter its expiry: a second one sets the same;
* the ``add`` that creates a missing namespace counter: if the first one stored, the second
  answers ``NOT_STORED`` and the protocol then reads the counter, which is what it does when
  another client won the race; it finds its own value and adopts it.

Not repeated: ``add`` (a second send answers "already present" for the key the first one
stored: the caller would think it lost its lease), the ``cas`` of ``compare_and_set`` and the
``md`` of ``compare_and_delete`` (a second send finds the token spent and answers ``False``
for a write that happened), and ``clear``'s ``incr`` (two generations skipped: entries
written between the two would vanish after a read saw them, which no single clear does).

Only a closed or reset connection is a reason: a timeout means a server that may be alive and
slow, and a second wait would double the configured timeout; a refused connection means
no server is listening, and a new connection would be refused too.
"""

from __future__ import annotations

from typing import Final

__all__ = ["RESENT", "closed_by_server"]

RESENT: Final = frozenset(
    {
        "get",
        "gets",
        "stats",
        "stats settings",
        "set",
        "set_many",
        "delete",
        "discard",
        "counter",
        "touch",
    }
)
"""The operations (the ``op`` names the backend passes to its calls) sent again once;
``gets`` is the read that starts a compare-and-X (whose own name names its messages)."""

_CLOSED: Final = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def closed_by_server(exc: BaseException, unexpected_close: type[Exception]) -> bool:
    """Whether ``exc`` says the server closed the connection (``unexpected_close`` is the
    driver's end-of-stream error), rather than that it is slow, absent or answered."""
    return isinstance(exc, (unexpected_close, *_CLOSED))
