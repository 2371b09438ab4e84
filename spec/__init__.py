"""The reference model: pure, deterministic, no I/O, no real clock.

Everything here is importable as ``cachespec.spec``.
"""

from .eviction import (
    FIFO,
    MEMCACHED_EVICTION,
    REDIS_SERVER_EVICTION,
    SERVER_EVICTION,
    ApproximateLRU,
    EvictionCheck,
    EvictionProfile,
    ExactLRU,
    ExpiryOrdered,
    NoEviction,
    RandomEviction,
)
from .failover import AsyncReplicaFailover, RingRemap
from .guarantees import CacheWide, Guarantees, NoExpiry, PerEntry, TTLDeclaration
from .miss import NO_VALUE, NoValue
from .model import CacheModel, Violation
from .ttl import validate_ttl

__all__ = [
    "FIFO",
    "MEMCACHED_EVICTION",
    "NO_VALUE",
    "REDIS_SERVER_EVICTION",
    "SERVER_EVICTION",
    "ApproximateLRU",
    "AsyncReplicaFailover",
    "CacheModel",
    "CacheWide",
    "EvictionCheck",
    "EvictionProfile",
    "ExactLRU",
    "ExpiryOrdered",
    "Guarantees",
    "NoEviction",
    "NoExpiry",
    "NoValue",
    "PerEntry",
    "RandomEviction",
    "RingRemap",
    "TTLDeclaration",
    "Violation",
    "validate_ttl",
]
