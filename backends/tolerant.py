"""The backend as a cache-aside read sees it: a cache that fails never fails the read.

``Cache.get_or_compute`` promises that a failing cache only costs a compute. Rather than a
``try`` at each of the backend calls a read makes (and one forgotten ``try`` breaking the
promise, as it once did), the read reaches the backend only through :class:`TolerantBackend`,
whose every method answers a :class:`~cachespec.backends.contract.CacheError` with a value
that says "could not" (``None``, or ``False`` for a conditional write) after reporting it.
Errors other than ``CacheError`` (a ``TypeError`` for a bad key, a bug) still raise: they
are the caller's to see.

Reporting goes to one callback, which the cache uses to count the error and to log it at
WARNING, at most once per ``quiet_period`` seconds (docs/design.md, "A failing cache").
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from cachespec.spec import NoValue

from .contract import Backend, CacheError, Clock

log = logging.getLogger(__name__)


class TolerantBackend:
    """``backend``'s read-through calls, each answering a ``CacheError`` with "could not"."""

    __slots__ = ("_report", "backend")

    def __init__(self, backend: Backend, report: Callable[[str, CacheError], None]) -> None:
        self.backend = backend
        self._report = report

    def get(self, key: str) -> bytes | NoValue | None:
        """The entry, :data:`NO_VALUE` for a miss, or None if the cache could not say."""
        try:
            return self.backend.get(key)
        except CacheError as exc:
            self._report("get", exc)
            return None

    def add(self, key: str, value: bytes, ttl: float | None) -> bool | None:
        """Whether ``value`` went in, or None if the cache could not say."""
        try:
            return self.backend.add(key, value, ttl)
        except CacheError as exc:
            self._report("add", exc)
            return None

    def set(self, key: str, value: bytes, ttl: float | None) -> bool:
        try:
            self.backend.set(key, value, ttl)
        except CacheError as exc:
            self._report("set", exc)
            return False
        return True

    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None
    ) -> bool | None:
        """Whether ``value`` replaced ``expected``, or None if the cache could not say (the
        caller still holds whatever it held: a lease to release, say)."""
        try:
            return self.backend.compare_and_set(key, expected, value, ttl)
        except CacheError as exc:
            self._report("compare_and_set", exc)
            return None

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        try:
            return self.backend.compare_and_delete(key, expected)
        except CacheError as exc:
            self._report("compare_and_delete", exc)
            return False


class ErrorLog:
    """Logs a swallowed cache error at WARNING, at most once per ``quiet_period`` seconds
    (on ``clock``), saying how many it left unlogged since: a cache that is down must not
    flood an application's log with one line per read."""

    __slots__ = ("_clock", "_name", "_next", "_quiet_period", "_unlogged")

    def __init__(self, name: str, clock: Clock, quiet_period: float = 60.0) -> None:
        self._name = name
        self._clock = clock
        self._quiet_period = quiet_period
        self._next = float("-inf")  # guarded by the owner's lock (Cache._stats_lock)
        self._unlogged = 0  # guarded by the owner's lock

    def due(self) -> int | None:
        """With the owner's lock held: None to stay quiet, else how many errors went
        unlogged before this one (the period restarts)."""
        now = self._clock()
        if now < self._next:
            self._unlogged += 1
            return None
        unlogged, self._unlogged = self._unlogged, 0
        self._next = now + self._quiet_period
        return unlogged

    def write(
        self,
        operation: str,
        exc: Exception,
        unlogged: int,
        consequence: str = "falling through to the source",
    ) -> None:
        """The line :meth:`due` asked for (outside the lock: a handler may be slow)."""
        more = f" ({unlogged} more since the last report)" if unlogged else ""
        log.warning(
            "%s: %s failed, %s: %s: %s%s",
            self._name,
            operation,
            consequence,
            type(exc).__name__,
            exc,
            more,
        )


__all__ = ["ErrorLog", "TolerantBackend"]
