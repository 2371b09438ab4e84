"""Deliberately broken memcached rings, each rejected by a ``faults.ring_*`` property.

Each mutant is the real ring adapter with one part replaced by what a naive ring does.
``RING_MUTANTS`` has the shape of ``adapter_mutants.ADAPTER_MUTANTS`` (and is merged into it):
name -> (server kind, adapter options, how to break a built backend, the property that must
fail, a pattern its reason must match).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from cachespec.backends import Backend
from cachespec.backends.memcached import MemcachedRingBackend


def _ring(backend: Backend) -> Any:
    """The ring's client (a RingClient: pymemcache is untyped)."""
    return backend._client  # type: ignore[attr-defined]


def forgets_membership_changes(backend: Backend) -> None:
    """pymemcache's ``HashClient`` as it is: a dropped node's keys remap, and when it comes
    back its old entries come back with it; nothing is discarded on either change."""
    _ring(backend).on_change(lambda: None)


def counter_follows_the_hash(backend: Backend) -> None:
    """The namespace counter hashed like any key: while its node is away it is created anew
    on another one, and a clear there is undone when the old counter comes back."""
    _ring(backend)._pinned = frozenset()


class UntypedErrorsRing(MemcachedRingBackend):
    """Lets pymemcache's and the socket's errors through: a stopped node raises
    ``TimeoutError``, a dead one ``ConnectionRefusedError``, not a CacheError."""

    __slots__ = ()

    def _call(self, op: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("key", None)
        kwargs.pop("resend", None)
        return method(*args, **kwargs)


def untyped_errors(backend: Backend) -> None:
    backend.__class__ = UntypedErrorsRing


def keeps_timed_out_connections(backend: Backend) -> None:
    """adapter_mutants' hand-rolled client on every node: a connection whose call timed out
    goes back to the pool, and its late reply answers the next one-key ``get`` on it (a
    ring sends each node the keys that hash to it, so a one-key ``get`` is common)."""
    from adapter_mutants import keeps_timed_out_connections as on_one  # noqa: PLC0415

    for client in _ring(backend).clients.values():
        on_one(SimpleNamespace(_client=client))  # type: ignore[arg-type]


RING_MUTANTS: dict[str, tuple[str, dict[str, str], Callable[[Backend], None], str, str]] = {
    "ring_forgets_membership_changes": (
        "memcached-ring",
        {},
        forgets_membership_changes,
        "faults.ring_returning",
        r"superseded by write \d+, which returned while node \d+ was away",
    ),
    "ring_forgets_membership_changes_under_the_strategies": (
        "memcached-ring",
        {},
        forgets_membership_changes,
        "faults.ring_bounds",
        r"returned version \d+ .* allowed only version",
    ),
    "ring_counter_follows_the_hash": (
        "memcached-ring",
        {},
        counter_follows_the_hash,
        "faults.ring_clear",
        r"superseded by write \d+",
    ),
    "ring_untyped_errors": (
        "memcached-ring",
        {},
        untyped_errors,
        "faults.ring_calls",
        r"raised (TimeoutError|ConnectionRefusedError|\w+Error).*must raise a CacheError",
    ),
    "ring_keeps_timed_out_connections": (
        "memcached-ring",
        {},
        keeps_timed_out_connections,
        "faults.ring_keys",
        r"never written under",
    ),
}
