"""cachespec: executable cache semantics.

* :mod:`cachespec.spec` - the reference model (pure, deterministic).
* :mod:`cachespec.backends` - the backend contract, adapters, and the URL registry.
* :mod:`cachespec.conformance` - the suite that checks a backend against the model.
"""

import logging

from cachespec.backends import (
    NO_VALUE,
    Backend,
    BackendFull,
    BackendUnavailable,
    Cache,
    CacheError,
    ConfigurationError,
    EventInvalidator,
    JSONSerializer,
    MemoryBackend,
    NoValue,
    SignedPickleSerializer,
    Unsupported,
    ValueTooLarge,
    WriteThrough,
    cached,
    open_backend,
)
from cachespec.spec import (
    MEMCACHED_EVICTION,
    SERVER_EVICTION,
    ApproximateLRU,
    CacheWide,
    ExactLRU,
    Guarantees,
    NoEviction,
    NoExpiry,
    PerEntry,
)

__version__ = "0.1.0"

# A library's loggers write nowhere until the application configures logging (the standard
# library's advice): without this, Python's last-resort handler would print every WARNING
# to stderr, the suite's own deliberately failing caches included.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "MEMCACHED_EVICTION",
    "NO_VALUE",
    "SERVER_EVICTION",
    "ApproximateLRU",
    "Backend",
    "BackendFull",
    "BackendUnavailable",
    "Cache",
    "CacheError",
    "CacheWide",
    "ConfigurationError",
    "EventInvalidator",
    "ExactLRU",
    "Guarantees",
    "JSONSerializer",
    "MemoryBackend",
    "NoEviction",
    "NoExpiry",
    "NoValue",
    "PerEntry",
    "SignedPickleSerializer",
    "Unsupported",
    "ValueTooLarge",
    "WriteThrough",
    "cached",
    "open_backend",
]
