"""Backends: the contract, the in-memory backend, and the URL registry.

Importable as ``cachespec.backends``. Drivers for Redis and memcached are imported only when
their backends are used, so the package works without the ``redis`` or ``memcached`` extras.
"""

from .contract import (
    NO_VALUE,
    Backend,
    BackendUnavailable,
    CacheError,
    Clock,
    ConfigurationError,
    NoValue,
    ValueTooLarge,
)
from .memory import MemoryBackend
from .registry import ENTRY_POINT_GROUP, open_backend, register_scheme, schemes
from .urls import BackendURL, redact

__all__ = [
    "ENTRY_POINT_GROUP",
    "NO_VALUE",
    "Backend",
    "BackendURL",
    "BackendUnavailable",
    "CacheError",
    "Clock",
    "ConfigurationError",
    "MemoryBackend",
    "NoValue",
    "ValueTooLarge",
    "open_backend",
    "redact",
    "register_scheme",
    "schemes",
]
