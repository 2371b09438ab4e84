"""A backend opened at its first use, so that an application can start while its cache is down.

``open_backend(url, lazy=True)`` returns a :class:`LazyBackend`. Opening a server backend
connects and probes the server (docs/design.md, "Opening lazily"); a lazy one does that
at its first call instead, and until it succeeds every call raises
:class:`~cachespec.backends.contract.BackendUnavailable`, which
``Cache.get_or_compute`` answers from the source. A failed open is tried again at most once
every ``retry_after`` seconds, so a cache that is down costs a read one connection attempt
per period, not one per call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping

from cachespec.spec import Guarantees, NoValue

from .contract import Backend, BackendUnavailable, CacheError, Clock, ConfigurationError


class LazyBackend(Backend):
    """``open()``'s backend, opened at the first call that needs it.

    ``guarantees`` are ``declared`` until the backend opens, then the backend's own (a
    :class:`~cachespec.backends.cache.Cache` reads them once, at construction: declare
    what every server of the scheme offers, as ``open_backend`` does).
    """

    def __init__(
        self,
        open: Callable[[], Backend],
        *,
        name: str,
        declared: Guarantees,
        retry_after: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, int | float):
            raise ConfigurationError(f"retry_after must be a number, got {retry_after!r}")
        if not retry_after >= 0:
            raise ConfigurationError(f"retry_after must be >= 0 seconds, got {retry_after!r}")
        self._open = open
        self._name = name  # redacted by the caller: it shows in errors
        self._declared = declared
        self._retry_after = float(retry_after)
        self._clock = clock
        self._lock = threading.Lock()  # one caller opens; the others wait for it
        self._backend: Backend | None = None  # guarded by _lock (read without: set once)
        self._next_try = float("-inf")  # guarded by _lock
        self._last_error: CacheError | None = None  # guarded by _lock
        self._closed = False  # guarded by _lock
        self._refused: ConfigurationError | None = None  # guarded by _lock

    @property
    def guarantees(self) -> Guarantees:  # type: ignore[override]
        backend = self._backend
        return self._declared if backend is None else backend.guarantees

    @property
    def opened(self) -> bool:
        """Whether the backend has been opened (a server reached)."""
        return self._backend is not None

    def _get(self) -> Backend:
        backend = self._backend
        if backend is not None:
            return backend
        with self._lock:
            if self._backend is not None:
                return self._backend
            if self._closed:
                raise BackendUnavailable(f"{self._name}: closed")
            now = self._clock()
            if now < self._next_try:
                raise BackendUnavailable(
                    f"{self._name}: not open yet (the last attempt failed: {self._last_error}); "
                    f"next attempt in {self._next_try - now:.1f} s"
                )
            if self._refused is not None:
                raise self._refused
            try:
                self._backend = self._open()
            except ConfigurationError as exc:
                # The server was reached and the URL does not fit it (a database out of
                # range, say): no retry mends that. Every call says so from now on.
                self._refused = exc
                raise
            except CacheError as exc:  # unreachable: try again after the period
                self._last_error = exc
                self._next_try = now + self._retry_after
                raise BackendUnavailable(f"{self._name}: could not open: {exc}") from exc
            return self._backend

    def try_open(self) -> bool:
        """Open now if it can (a ConfigurationError still raises); whether it is open."""
        try:
            self._get()
        except BackendUnavailable:
            return False
        return True

    def get(self, key: str) -> bytes | NoValue:
        return self._get().get(key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._get().set(key, value, ttl)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return self._get().add(key, value, ttl)

    def delete(self, key: str) -> None:
        self._get().delete(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        return self._get().get_many(keys)

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        self._get().set_many(items, ttl)

    def delete_many(self, keys: Iterable[str]) -> None:
        self._get().delete_many(keys)

    def clear(self) -> None:
        self._get().clear()

    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        return self._get().compare_and_set(key, expected, value, ttl)

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        return self._get().compare_and_delete(key, expected)

    def discard(self) -> None:
        self._get().discard()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()

    def __repr__(self) -> str:
        state = "open" if self._backend is not None else "not open yet"
        return f"LazyBackend({self._name!r}, {state})"


__all__ = ["LazyBackend"]
