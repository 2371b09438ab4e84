"""The reference model: pure, deterministic, no I/O, no real clock.

Everything here is importable as ``cachespec.spec``.
"""

from .guarantees import (
    MEMCACHED_EVICTION,
    SERVER_EVICTION,
    ApproximateLRU,
    EvictionProfile,
    ExactLRU,
    Guarantees,
    NoEviction,
)
from .miss import NO_VALUE, NoValue
from .model import CacheModel, Violation
from .ttl import validate_ttl

__all__ = [
    "MEMCACHED_EVICTION",
    "NO_VALUE",
    "SERVER_EVICTION",
    "ApproximateLRU",
    "CacheModel",
    "EvictionProfile",
    "ExactLRU",
    "Guarantees",
    "NoEviction",
    "NoValue",
    "Violation",
    "validate_ttl",
]
