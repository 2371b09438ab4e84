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

from .contract import Backend, BackendUnavailable, Clock, ConfigurationError, check_seconds


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
        check_seconds("retry_after", retry_after, allow_zero=True)
        self._open = open
        self._name = name  # redacted by the caller: it shows in errors
        self._declared = declared
        self._retry_after = float(retry_after)  # checked above
        self._clock = clock
        self._lock = threading.Lock()  # one caller opens; the others wait for it
        self._backend: Backend | None = None  # guarded by _lock (read without: set once)
        self._next_try = float("-inf")  # guarded by _lock
        self._last_error = ""  # guarded by _lock: text, so no traceback is kept alive
        self._opening = False  # guarded by _lock: one caller connects at a time
        self._closed = False  # guarded by _lock
        self._refused: str | None = None  # guarded by _lock

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
        with self._lock:  # decide who tries; nobody holds it while connecting
            if self._backend is not None:
                return self._backend
            if self._closed:
                raise BackendUnavailable(f"{self._name}: closed")
            if self._refused is not None:
                raise ConfigurationError(self._refused)  # a fresh one: no growing traceback
            now = self._clock()
            if self._opening or now < self._next_try:
                # Another caller is trying, or the last try failed within the period: the
                # others do not queue behind a connection attempt.
                raise BackendUnavailable(
                    f"{self._name}: not open yet ({self._last_error or 'opening'})"
                )
            self._opening = True
            self._next_try = now + self._retry_after
        try:
            opened = self._open()
            self._check(opened)
        except ConfigurationError as exc:
            # The server was reached and the URL does not fit it (a database out of range),
            # or it lacks what was declared: no retry mends that, and every call says so.
            with self._lock:
                self._refused, self._opening = str(exc), False
            raise ConfigurationError(str(exc)) from None
        except Exception as exc:  # unreachable, whatever the driver raises: try later
            error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._last_error, self._opening = error, False
            raise BackendUnavailable(f"{self._name}: could not open: {error}") from None
        with self._lock:
            self._opening = False
            if self._closed:  # closed while it opened
                opened.close()
                raise BackendUnavailable(f"{self._name}: closed")
            self._backend = opened
        return opened

    def _check(self, opened: Backend) -> None:
        """Refuse a backend that lacks what this one declared (a Cache was built on it)."""
        if self._declared.compare_and_set and not opened.guarantees.compare_and_set:
            opened.close()
            raise ConfigurationError(
                f"{self._name}: the server does not run compare_and_set, which this lazily "
                "opened backend declared (and a guarded Cache needs)"
            )

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
