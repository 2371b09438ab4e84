"""From what pymemcache raises to what a cachespec backend raises.

Socket errors, timeouts and dropped connections are
:class:`~cachespec.backends.BackendUnavailable`; a ``SERVER_ERROR`` for an item over the
server's size limit is :class:`~cachespec.backends.ValueTooLarge`, one for want of memory
:class:`~cachespec.backends.BackendFull`; other failures that memcached reports are
:class:`~cachespec.backends.CacheError`. pymemcache closes a connection after any error, so no
reply is ever read out of order.
"""

from __future__ import annotations

from typing import Any, NoReturn

from ..contract import BackendFull, BackendUnavailable, CacheError, ValueTooLarge
from .driver import Driver
from .replies import error_message, is_out_of_memory, is_too_large, value_size

__all__ = ["raise_for"]


def raise_for(
    exc: Exception,
    *,
    driver: Driver,
    label: str,
    op: str,
    key: str | None,
    args: tuple[Any, ...],
    max_value_size: int,
) -> NoReturn:
    """Raise the cachespec error for ``exc``, raised by the client call ``op`` with ``args``
    for the user's ``key`` (``None``: no single key), on the backend named ``label``;
    ``exc`` itself if it is none of the driver's or socket errors."""
    if isinstance(exc, (OSError, driver.closed)):
        raise BackendUnavailable(
            f"{label}: {op} failed, no answer from the server ({type(exc).__name__}: {exc})"
        ) from exc
    if isinstance(exc, driver.server_error):
        message = error_message(exc)
        if is_too_large(message):
            size = value_size(args)
            lost = (
                "memcached deletes the key's old entry when it refuses a 'set', so the old "
                "entry may be gone"
                if op.startswith("set")
                else "nothing was written"
            )
            error = ValueTooLarge(key if key is not None else "?", size, max_value_size)
            error.args = (
                f"{label}: the server refused the value for key {key!r} ({size} bytes) "
                f"as over its item size limit, below the declared max_value_size "
                f"{max_value_size} (was it restarted with a smaller -I?); {lost}",
            )
            raise error from exc
        if is_out_of_memory(message):
            keys = () if key is None else (key,)
            raise BackendFull(
                f"{label}: {op}: the server refused to store {key!r} for want of memory "
                f"({message.decode('ascii', 'replace')}); memcached deletes the key's old entry "
                "when it refuses a 'set'",
                keys,
            ) from exc
    if isinstance(exc, (driver.error, ValueError)):
        raise CacheError(f"{label}: {op} failed: {type(exc).__name__}: {exc}") from exc
    raise exc
