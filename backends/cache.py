"""The cache layer: values in, values out, over any backend, with guarded fills.

:class:`Cache` wraps a backend, a serializer and a default TTL. Its cache-aside read,
:meth:`Cache.get_or_compute`, is *guarded*: a fill computed before an invalidation can never
land after it (DESIGN.md, the stale-set race). The guard is a lease written with the
backend's atomic ``add`` before the source is read, and replaced by the value only with an
atomic ``compare_and_set`` on that very lease: an invalidation (a ``delete``) in between
removes the lease, so the late fill finds nothing to replace and is dropped. The caller still
gets the value it computed; the cache just keeps out of it.

Entries are framed with one tag byte, so no user value can ever look like a lease:

* ``v`` + payload: a value;
* ``V`` + 8-byte version + payload: a value written through from a versioned source
  (:mod:`cachespec.backends.strategies`);
* ``L`` + 16-byte token: a fill lease.

A payload that does not decode is counted, dropped from the backend, and read as a miss: it
never reaches the caller as an exception.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Final, TypeVar

from cachespec.spec import NO_VALUE, NoValue, validate_ttl

from .contract import Backend, CacheError, ConfigurationError, check_key
from .serializers import DecodeError, JSONSerializer, Serializer

V = TypeVar("V")

VALUE, VERSIONED, LEASE = b"v", b"V", b"L"
_VERSION_BYTES = 8


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT_TTL"


DEFAULT_TTL: Final = _Default()
"""``ttl=DEFAULT_TTL`` (the default) means the cache's ``default_ttl``."""


@dataclass
class CacheStats:
    """Counters a user can read (and a dashboard can scrape)."""

    hits: int = 0
    misses: int = 0
    fills: int = 0
    fills_dropped: int = 0  # a guarded fill that lost its lease: an invalidation came first
    invalidations: int = 0
    decode_failures: int = 0
    errors: int = 0  # backend failures that get_or_compute fell through

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def frame_value(payload: bytes) -> bytes:
    return VALUE + payload


def frame_versioned(version: int, payload: bytes) -> bytes:
    return VERSIONED + version.to_bytes(_VERSION_BYTES, "big") + payload


def entry_version(raw: bytes) -> int | None:
    """The source version of a write-through entry (None for any other entry)."""
    if raw[:1] == VERSIONED and len(raw) > _VERSION_BYTES:
        return int.from_bytes(raw[1 : 1 + _VERSION_BYTES], "big")
    return None


def is_lease(raw: bytes) -> bool:
    return raw[:1] == LEASE


class Cache:
    """Serialized values over a backend, with guarded cache-aside fills.

    ``default_ttl`` applies where a call passes no TTL (``None``: no expiry). ``lease_ttl``
    bounds how long a fill in progress blocks other fills if its caller dies. The backend
    must offer ``compare_and_set`` (its guarantees say so) unless ``guarded=False``, which
    gives the naive fill with the stale-set race (for comparison only).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        serializer: Serializer | None = None,
        default_ttl: float | None = None,
        lease_ttl: float = 30.0,
        guarded: bool = True,
    ) -> None:
        if guarded and not backend.guarantees.compare_and_set:
            raise ConfigurationError(
                f"{type(backend).__name__} does not offer compare_and_set, which guarded fills "
                "need; use a backend that does, or guarded=False (stale fills possible)"
            )
        self.backend = backend
        self.serializer: Serializer = serializer or JSONSerializer()
        self.default_ttl = validate_ttl(default_ttl)
        self.lease_ttl = validate_ttl(lease_ttl)
        self.guarded = guarded
        self.stats = CacheStats()
        self._stats_lock = threading.Lock()

    # ------------------------------------------------------------------------------ reads
    def get(self, key: str) -> object:
        """The cached value, or :data:`NO_VALUE` (a lease or an undecodable entry is a miss)."""
        found = self._read(key)
        self._count("hits" if found is not NO_VALUE else "misses")
        return found

    def get_many(self, keys: Iterable[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        wanted = list(keys)
        for key, raw in self.backend.get_many(wanted).items():
            value = self._decode(key, raw)
            if value is not NO_VALUE:
                found[key] = value
        with self._stats_lock:
            self.stats.hits += len(found)
            self.stats.misses += len(set(wanted)) - len(found)
        return found

    def get_or_compute(
        self, key: str, compute: Callable[[], V], ttl: float | _Default | None = DEFAULT_TTL
    ) -> V:
        """The cached value, or ``compute()``'s, which then fills the cache (guarded).

        ``compute`` runs at most once per call and is never given a lease it has lost: if an
        invalidation happens while it runs, its value is returned but not cached. If it
        raises, the lease is released (only ours) and the exception propagates. A failing
        cache (a :class:`~cachespec.backends.CacheError` from the backend) never fails the
        call: it falls through to ``compute`` and is counted in ``stats.errors``.
        """
        seconds = self._ttl(ttl)
        check_key(key)
        try:
            found = self._decode(key, self.backend.get(key))
        except CacheError:
            self._count("errors")
            return compute()
        if found is not NO_VALUE:
            self._count("hits")
            return found  # type: ignore[return-value]
        self._count("misses")
        if not self.guarded:
            return self._fill_naively(key, compute, seconds)
        lease = LEASE + os.urandom(16)
        try:
            leased = self.backend.add(key, lease, self.lease_ttl)
            if not leased:
                # Someone else holds a lease (or just filled): read again; never wait here.
                found = self._decode(key, self.backend.get(key))
        except CacheError:
            self._count("errors")
            return compute()
        if not leased:
            return found if found is not NO_VALUE else compute()  # type: ignore[return-value]
        try:
            value = compute()
            data = frame_value(self.serializer.dumps(value))
        except BaseException:
            self._quietly(lambda: self.backend.compare_and_delete(key, lease))
            raise
        if self._quietly(lambda: self.backend.compare_and_set(key, lease, data, seconds)):
            self._count("fills")
        else:
            self._count("fills_dropped")
        return value

    def _quietly(self, call: Callable[[], bool]) -> bool:
        """A best-effort cache call: a CacheError is counted and reads as False."""
        try:
            return call()
        except CacheError:
            self._count("errors")
            return False

    def _fill_naively(self, key: str, compute: Callable[[], V], seconds: float | None) -> V:
        value = compute()
        self.backend.set(key, frame_value(self.serializer.dumps(value)), seconds)
        self._count("fills")
        return value

    # ----------------------------------------------------------------------------- writes
    def set(self, key: str, value: object, ttl: float | _Default | None = DEFAULT_TTL) -> None:
        """Store ``value`` unconditionally (it is serialized first: nothing is written if
        that fails)."""
        data = frame_value(self.serializer.dumps(value))
        self.backend.set(key, data, self._ttl(ttl))

    def invalidate(self, key: str) -> None:
        """Remove ``key``'s entry (a value, or a fill's lease: the fill will be dropped)."""
        self.backend.delete(key)
        self._count("invalidations")

    def invalidate_many(self, keys: Iterable[str]) -> None:
        doomed = list(keys)
        self.backend.delete_many(doomed)
        with self._stats_lock:
            self.stats.invalidations += len(doomed)

    # ---------------------------------------------------------------------------- helpers
    def _ttl(self, ttl: float | _Default | None) -> float | None:
        return self.default_ttl if isinstance(ttl, _Default) else validate_ttl(ttl)

    def _read(self, key: str) -> object:
        return self._decode(key, self.backend.get(key))

    def _decode(self, key: str, raw: bytes | NoValue) -> object:
        """The value in ``raw``, or NO_VALUE for a miss, a lease or an undecodable entry."""
        if raw is NO_VALUE or is_lease(raw):
            return NO_VALUE
        tag = raw[:1]
        try:
            if tag == VALUE:
                return self.serializer.loads(raw[1:])
            if tag == VERSIONED and len(raw) > _VERSION_BYTES:
                return self.serializer.loads(raw[1 + _VERSION_BYTES :])
            raise DecodeError(f"unknown entry tag {tag!r}")
        except DecodeError:
            self._count("decode_failures")
            # Drop it only if it is still the same bytes: a fresh fill must not be lost.
            if self.backend.guarantees.compare_and_set:
                self.backend.compare_and_delete(key, raw)
            return NO_VALUE

    def _count(self, name: str) -> None:
        with self._stats_lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)
