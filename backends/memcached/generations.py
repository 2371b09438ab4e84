"""The clear-generation protocol: how ``clear`` works without ``flush_all``.

A namespace *generation* counter is kept in memcached; every data key embeds it and ``clear``
increments it. Old entries become unreachable and age out; nothing else is touched. Every
call must see the counter, which costs a read a second key. ``clear=none`` (URL) or
``clearable=False`` gives a namespace without ``clear``
(:class:`.backend.MemcachedBackendWithoutClear`: declared ``Guarantees(clear=False)``, and
``clear`` raises :class:`~cachespec.backends.Unsupported`), whose keys are
``<namespace>:-:<body>`` and whose calls touch only their own keys.

This module holds what the protocol is made of: the generation a client caches
(:class:`Generation`), how a counter value becomes a key prefix (:func:`parse_generation`),
and where a new counter starts (:func:`random_start`). The exchanges with the server that
read, create and increment the counter are :class:`.backend.MemcachedBackend`'s.

clear and other clients
    memcached can neither list keys nor delete by prefix, so ``clear`` increments a
    generation counter kept in memcached (``incr``). Every data key embeds the generation, so
    the old entries become unreachable: they are never returned again and stay in memory
    until they expire or are evicted. ``flush_all`` is never used: it would empty every other
    tenant of the server too.

    The counter is created with ``add`` from a random 63-bit value. If it is ever evicted or
    flushed, the next generation is a fresh random number, which does not meet an old one
    (chance per re-creation: clears so far / 2**63); the namespace then looks empty, as if
    every entry had been evicted.

    *Reads are exact.* ``get`` and ``get_many`` fetch the counter in the same round trip as
    the data (first: memcached answers a multi-key ``get`` in order) and fetch again under
    the server's generation if it is not the cached one. A read that starts after any
    client's ``clear`` returned sees none of the entries written before it. Cost: one round
    trip; two right after a clear made by another client, which is unavoidable since the data
    keys depend on the generation.

    *Writes* (``set``, ``set_many``, ``add``, ``delete``, ``delete_many``, and the
    compare-and-X operations) need the generation before they are sent. With
    ``namespace_refresh=0`` the plain writes send a ``get`` of the counter ahead of themselves
    in the same round trip, under the generation this client last saw, and are sent again
    under the server's if the counter had moved (see ``MemcachedBackend._write``): exact, one
    round trip per write (two right after another client's clear). The compare-and-X
    operations read the counter first (two round trips, three for one that matches). With
    ``namespace_refresh=r > 0`` a write uses the cached generation when the server confirmed
    it (to a read, a write's check, or this client's own ``clear``) less than ``r`` seconds
    ago, without the counter, but for up to ``r`` seconds after a ``clear`` by *another*
    client, this client's writes may go to the old generation. Such a ``set`` returns
    normally and is never visible (a lost write); such a ``delete`` misses an entry written
    after the clear (a lost invalidation: that entry lives on until its TTL); such an ``add``
    answers for the old generation (it may refuse an absent key, or succeed alongside another
    client's ``add``), and so does a compare-and-X (it may act on an entry the clear made
    unreachable). This client's own ``clear`` is seen by its next call, always.

    The default is ``0`` because the weakened form breaks promises this project checks
    (explicit invalidation bounds staleness at 0; ``add`` is atomic) in a way the declared
    :class:`~cachespec.spec.Guarantees` cannot express. Since plain writes carry the counter
    read in their own round trip, ``namespace_refresh > 0`` saves only the compare-and-X
    operations' extra round trip and a few bytes: it is kept for callers that set it, and
    rarely worth its lost writes.
"""

from __future__ import annotations

import math
import re
import secrets
from typing import NamedTuple

__all__ = [
    "UNREAD",
    "Generation",
    "counter_key",
    "parse_generation",
    "random_start",
    "without_clear",
]

_GENERATION_RE = re.compile(rb"[0-9]{1,20}")  # a 64-bit unsigned counter: at most 20 digits


class Generation(NamedTuple):
    """The namespace generation as this client last saw it."""

    raw: bytes  # the counter's value exactly as memcached returned it
    prefix: str  # "<namespace>:<digits>:", the start of every data key
    checked_at: float  # a monotonic time at which the server held this value


UNREAD = Generation(b"", "", -math.inf)
"""Before the counter is first read: any generation the server returns replaces it."""


def without_clear(namespace: str) -> Generation:
    """The one fixed "generation" of a namespace without ``clear``: never read from the
    server nor refreshed. ``-`` is never a counter value, so its keys never meet a
    generation's."""
    return Generation(b"-", f"{namespace}:-:", math.inf)


def counter_key(namespace: str) -> str:
    """The memcached key of ``namespace``'s counter. Every data key has two ``:`` after the
    namespace and the counter one, so the counter is never a data key."""
    return f"{namespace}:generation"


def parse_generation(value: bytes, namespace: str, confirmed_at: float) -> Generation | None:
    """The generation the counter value ``value`` stands for, confirmed at ``confirmed_at``;
    ``None`` if it is not a counter (something else wrote the key).

    ``incr`` pads a number that got shorter with spaces: ``b"7   "`` is generation 7, and
    its prefix is the same as ``b"7"``'s (``raw`` keeps the bytes as memcached returned
    them, to recognise the same value next time).
    """
    digits = value.rstrip(b" ")
    if not _GENERATION_RE.fullmatch(digits):
        return None
    return Generation(value, f"{namespace}:{digits.decode('ascii')}:", confirmed_at)


def random_start() -> bytes:
    """A new counter's first value: a random 63-bit number, so that a re-created counter
    meets an old generation's entries only with a chance of about 1 in 2**63."""
    return str(secrets.randbits(63)).encode("ascii")
