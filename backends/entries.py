"""The bytes :class:`~cachespec.backends.cache.Cache` keeps under a key, framed and parsed in
one place.

Every entry starts with one tag byte, so that no user value can ever look like a lease:

* ``v`` + payload: a value (:class:`Plain`);
* ``V`` + 8-byte version + payload: a value written through from a versioned source
  (:class:`Versioned`, :mod:`cachespec.backends.strategies`);
* ``L`` + 16-byte token: a fill lease (:class:`Lease`);
* ``x`` + expiry + compute time + payload: a guarded fill, which early refresh reads
  (:class:`Refreshable`);
* ``r`` + 16-byte token + an ``x`` entry: that fill while one caller refreshes it
  (:class:`Refreshing`). Other callers read the old value from it and leave the refresh
  to that caller; the refresh lands by compare-and-set on these exact bytes.

:func:`parse` turns bytes into one of these (or :class:`Corrupt`), and the cache matches on
the result once, rather than slicing tags wherever it reads (docs/design.md, "Entries").
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

VALUE, VERSIONED, LEASE, REFRESHABLE, REFRESHING = b"v", b"V", b"L", b"x", b"r"
TOKEN_BYTES = 16
_VERSION_BYTES = 8
_REFRESH = struct.Struct(">dd")  # the entry's expiry on the cache's clock, the compute time
REFRESHABLE_HEADER = 1 + _REFRESH.size  # where a refreshable entry's payload starts


@dataclass(frozen=True, slots=True)
class Plain:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Versioned:
    version: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Lease:
    """A fill in progress: whoever holds these exact bytes may replace them."""


@dataclass(frozen=True, slots=True)
class Refreshable:
    expiry: float  # on the cache's clock; inf for an entry without a TTL
    delta: float  # how long the compute took (XFetch scales its head start by it)
    payload: bytes


@dataclass(frozen=True, slots=True)
class Refreshing:
    """A refreshable entry one caller has claimed to refresh: ``old`` is its exact bytes."""

    fill: Refreshable
    old: bytes


@dataclass(frozen=True, slots=True)
class Corrupt:
    """Bytes no version of this module wrote: read as a miss, and dropped."""

    why: str


Entry = Plain | Versioned | Lease | Refreshable | Refreshing | Corrupt


def parse(raw: bytes) -> Entry:
    """What ``raw`` holds. Never raises: bytes of no known shape are :class:`Corrupt`."""
    tag = raw[:1]
    if tag == REFRESHABLE and len(raw) >= REFRESHABLE_HEADER:
        expiry, delta = _REFRESH.unpack_from(raw, 1)
        return Refreshable(expiry, delta, raw[REFRESHABLE_HEADER:])
    if tag == VALUE:
        return Plain(raw[1:])
    if tag == LEASE:
        return Lease()
    if tag == VERSIONED and len(raw) > _VERSION_BYTES:
        return Versioned(
            int.from_bytes(raw[1 : 1 + _VERSION_BYTES], "big"), raw[1 + _VERSION_BYTES :]
        )
    if tag == REFRESHING:
        # Only a refreshable entry can be claimed: read it as one, not by parsing again (a
        # forged ``r`` inside ``r`` inside ... would recurse as deep as its bytes go).
        old = raw[1 + TOKEN_BYTES :]
        if old[:1] == REFRESHABLE and len(old) >= REFRESHABLE_HEADER:
            expiry, delta = _REFRESH.unpack_from(old, 1)
            return Refreshing(Refreshable(expiry, delta, old[REFRESHABLE_HEADER:]), old)
    return Corrupt(f"no entry of this shape: tag {tag!r}, {len(raw)} bytes")


# ---------------------------------------------------------------------------- framing
def frame_value(payload: bytes) -> bytes:
    return VALUE + payload


def frame_versioned(version: int, payload: bytes) -> bytes:
    return VERSIONED + version.to_bytes(_VERSION_BYTES, "big") + payload


def frame_refreshable(expiry: float, delta: float, payload: bytes) -> bytes:
    """A fill that remembers when it expires and how long it took to compute (XFetch)."""
    return REFRESHABLE + _REFRESH.pack(expiry, delta) + payload


def claim(old: bytes) -> bytes:
    """``old`` (a refreshable entry) claimed by one refresher: a token no other caller holds."""
    return REFRESHING + os.urandom(TOKEN_BYTES) + old


def new_lease() -> bytes:
    """A lease no other caller holds: ``L`` and a random token."""
    return LEASE + os.urandom(TOKEN_BYTES)


def common_payload(raw: bytes) -> bytes | None:
    """The payload of the two usual shapes, a guarded fill or a plain value, else None:
    :func:`parse` for the hit path, which cannot afford to build an object per hit."""
    tag = raw[:1]
    if tag == REFRESHABLE and len(raw) >= REFRESHABLE_HEADER:
        return raw[REFRESHABLE_HEADER:]
    if tag == VALUE:
        return raw[1:]
    return None


# ------------------------------------------------- shortcuts for code layered on the cache
def is_lease(raw: bytes) -> bool:
    return raw[:1] == LEASE


def entry_version(raw: bytes) -> int | None:
    """The source version of a write-through entry (None for any other entry)."""
    entry = parse(raw)
    return entry.version if isinstance(entry, Versioned) else None


def refresh_meta(raw: bytes) -> tuple[float, float] | None:
    """``(expiry, delta)`` of a refreshable entry, else None."""
    entry = parse(raw)
    return (entry.expiry, entry.delta) if isinstance(entry, Refreshable) else None


__all__ = [
    "Corrupt",
    "Entry",
    "Lease",
    "Plain",
    "Refreshable",
    "Refreshing",
    "Versioned",
    "claim",
    "common_payload",
    "entry_version",
    "frame_refreshable",
    "frame_value",
    "frame_versioned",
    "is_lease",
    "new_lease",
    "parse",
    "refresh_meta",
]
