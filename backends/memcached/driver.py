"""pymemcache, loaded on first use: the client the backend calls, and its error classes.

pymemcache is imported when the first backend is built (:func:`load_driver`), never when this
package is imported, so ``cachespec.backends`` works without the ``memcached`` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol, TypeVar

from ..contract import ConfigurationError

__all__ = ["Client", "Driver", "load_driver"]

_T = TypeVar("_T")


class Client(Protocol):
    """The part of :class:`.client.PipelinedClient` the backend uses, typed (pymemcache is
    not)."""

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]: ...

    def fetch(self, names: list[bytes]) -> dict[bytes, bytes]: ...

    def set(
        self, key: str, value: bytes, expire: int = 0, noreply: bool | None = None
    ) -> bool | None: ...

    def set_many(
        self, values: dict[str, bytes], expire: int = 0, noreply: bool | None = None
    ) -> list[str]: ...

    def add(self, key: str, value: bytes, expire: int = 0, noreply: bool | None = None) -> bool: ...

    def delete(self, key: str, noreply: bool | None = None) -> bool: ...

    def delete_many(self, keys: Sequence[str], noreply: bool | None = None) -> bool: ...

    def incr(self, key: str, value: int, noreply: bool | None = False) -> int | None: ...

    def touch(self, key: str, expire: int = 0, noreply: bool | None = None) -> bool: ...

    def gets(self, key: str) -> tuple[bytes | None, bytes | None]: ...

    def cas(
        self, key: str, value: bytes, cas: bytes, expire: int = 0, noreply: bool | None = False
    ) -> bool | None: ...

    def raw_command(self, command: bytes, end_tokens: bytes = b"\r\n") -> bytes: ...

    def pipeline(self, wire: bytes, parse: Callable[[bytes], _T]) -> _T: ...

    def one_line(self, wire: bytes) -> bytes: ...

    def stats(self, *args: str) -> dict[bytes, Any]: ...

    def drop_idle(self) -> None: ...

    def fresh(self) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...


class Driver(NamedTuple):
    """The client class and the pymemcache errors the backend tells apart."""

    pooled_client: Callable[..., Client]
    error: type[Exception]  # pymemcache.exceptions.MemcacheError, the base of its errors
    server_error: type[Exception]  # MemcacheServerError: a SERVER_ERROR reply
    closed: type[Exception]  # MemcacheUnexpectedCloseError: the connection dropped


_driver: Driver | None = None


def load_driver() -> Driver:
    """Import pymemcache (once); a missing one is a :class:`ConfigurationError` naming the
    extra to install."""
    global _driver  # noqa: PLW0603 - imported once, on first use, so pymemcache stays optional
    if _driver is None:
        try:
            from pymemcache.exceptions import (  # type: ignore[import-untyped]  # noqa: PLC0415
                MemcacheError,
                MemcacheServerError,
                MemcacheUnexpectedCloseError,
            )

            from .client import PipelinedClient  # noqa: PLC0415 - it imports pymemcache
        except ImportError as exc:
            raise ConfigurationError(
                "memcached:// needs pymemcache: pip install 'cachespec[memcached]'"
            ) from exc
        _driver = Driver(
            PipelinedClient, MemcacheError, MemcacheServerError, MemcacheUnexpectedCloseError
        )
    return _driver
