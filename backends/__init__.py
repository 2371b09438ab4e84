"""Backends: the contract, the in-memory backend, and the URL registry.

Importable as ``cachespec.backends``. Drivers for Redis and memcached are imported only when
their backends are used, so the package works without the ``redis`` or ``memcached`` extras.
"""

from .cache import DEFAULT_TTL, Cache, CacheStats
from .contract import (
    NO_VALUE,
    Backend,
    BackendFull,
    BackendUnavailable,
    CacheError,
    Clock,
    ConfigurationError,
    NoValue,
    Unsupported,
    ValueTooLarge,
    check_items,
    check_key,
    check_keys,
    check_ttl,
    check_value,
)
from .decorator import CachedFunction, cached
from .memory import MemoryBackend
from .registry import ENTRY_POINT_GROUP, open_backend, register_scheme, schemes
from .serializers import (
    DecodeError,
    EncodeError,
    JSONSerializer,
    Serializer,
    SignedPickleSerializer,
)
from .strategies import EventInvalidator, ListenerHealth, RedisInvalidationListener, WriteThrough
from .urls import BackendURL, redact

__all__ = [
    "DEFAULT_TTL",
    "ENTRY_POINT_GROUP",
    "NO_VALUE",
    "Backend",
    "BackendFull",
    "BackendURL",
    "BackendUnavailable",
    "Cache",
    "CacheError",
    "CacheStats",
    "CachedFunction",
    "Clock",
    "ConfigurationError",
    "DecodeError",
    "EncodeError",
    "EventInvalidator",
    "JSONSerializer",
    "ListenerHealth",
    "MemoryBackend",
    "NoValue",
    "RedisInvalidationListener",
    "Serializer",
    "SignedPickleSerializer",
    "Unsupported",
    "ValueTooLarge",
    "WriteThrough",
    "cached",
    "check_items",
    "check_key",
    "check_keys",
    "check_ttl",
    "check_value",
    "open_backend",
    "redact",
    "register_scheme",
    "schemes",
]
