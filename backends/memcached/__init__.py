"""The memcached backend: ``memcached://host[:port]`` over pymemcache (see :mod:`.backend`)."""

from .backend import (
    CAS_ATTEMPTS,
    DEFAULT_NAMESPACE,
    DEFAULT_NAMESPACE_REFRESH,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    DIGEST_MARKER,
    ITEM_OVERHEAD_MARGIN,
    MAX_KEY_BYTES,
    NAMESPACE_PATTERN,
    RELATIVE_EXPTIME_LIMIT,
    TICK_SLACK,
    TTL_RESOLUTION,
    MemcachedBackend,
    key_body,
    relative_exptime,
)
from .urls import memcached_from_url

__all__ = [
    "CAS_ATTEMPTS",
    "DEFAULT_NAMESPACE",
    "DEFAULT_NAMESPACE_REFRESH",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "DIGEST_MARKER",
    "ITEM_OVERHEAD_MARGIN",
    "MAX_KEY_BYTES",
    "NAMESPACE_PATTERN",
    "RELATIVE_EXPTIME_LIMIT",
    "TICK_SLACK",
    "TTL_RESOLUTION",
    "MemcachedBackend",
    "key_body",
    "memcached_from_url",
    "relative_exptime",
]
