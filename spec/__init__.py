"""The reference model: pure, deterministic, no I/O, no real clock.

Everything here is importable as ``cachespec.spec``.
"""

from .eviction import (
    MEMCACHED_EVICTION,
    REDIS_SERVER_EVICTION,
    SERVER_EVICTION,
    ApproximateLRU,
    EvictionCheck,
    EvictionProfile,
    ExactLRU,
    NoEviction,
)
from .guarantees import CacheWide, Guarantees, NoExpiry, PerEntry, TTLDeclaration
from .miss import NO_VALUE, NoValue
from .model import CacheModel, Violation
from .ttl import validate_ttl

__all__ = [
    "MEMCACHED_EVICTION",
    "NO_VALUE",
    "REDIS_SERVER_EVICTION",
    "SERVER_EVICTION",
    "ApproximateLRU",
    "CacheModel",
    "CacheWide",
    "EvictionCheck",
    "EvictionProfile",
    "ExactLRU",
    "Guarantees",
    "NoEviction",
    "NoExpiry",
    "NoValue",
    "PerEntry",
    "TTLDeclaration",
    "Violation",
    "validate_ttl",
]
