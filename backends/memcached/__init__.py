"""The memcached backend: ``memcached://host[:port]`` over pymemcache, every call answered.

memcached is a shared server with a text protocol, a 250-byte key limit, a coarse clock, an
item size limit and no way to list keys. This adapter maps the contract onto it as follows;
each point is a decision, explained in the module that implements it.

Replies (:mod:`.client`, :mod:`.replies`)
    Every command waits for the server's answer (``default_noreply=False`` on the client and
    ``noreply=False`` on each call). With ``noreply`` pymemcache reports success for a set the
    server refused, and an oversize value vanishes silently (docs/facts.md).

Keys (:mod:`.keys`)
    ``<namespace>:<generation>:<body>`` (``<namespace>:-:<body>`` without ``clear``). The
    body is the key itself when it is *plain* (printable ASCII, no space, within a length
    budget, not starting with ``#``), else ``#`` plus the hex SHA-256 of the key's UTF-8
    bytes (lone surrogates encoded with ``surrogatepass``). Never truncated, never shared by
    two keys.

TTLs (:mod:`.expiry`)
    memcached's clock ticks in whole seconds and its tick drifts; the adapter sends an
    exptime at least ``ttl + 2.1`` s away so that no entry dies before its TTL, and declares
    the resulting worst-case lateness. Past memcached's 30-day relative limit it sends an
    absolute time computed from the *server's* clock.

Values (:data:`ITEM_OVERHEAD_MARGIN`, in :mod:`.backend`)
    ``max_value_size`` defaults to the server's item size limit (``stats settings``) minus a
    margin that covers memcached's per-item overhead for our longest key: a larger value is
    refused before anything is sent, so memcached never gets to delete the old entry as it
    does on an oversize ``set``.

clear (:mod:`.generations`, :meth:`MemcachedBackend.clear`)
    A namespace *generation* counter kept in memcached; every data key embeds it and ``clear``
    increments it. Old entries become unreachable and age out; nothing else is touched. Every
    call must see the counter, which costs a read a second key. ``clear=none`` (URL) or
    ``clearable=False`` gives a namespace without ``clear``
    (:class:`MemcachedBackendWithoutClear`; declared: ``Guarantees(clear=False)``, and
    ``clear`` raises :class:`~cachespec.backends.Unsupported`), whose keys are
    ``<namespace>:-:<body>`` and whose calls touch only their own keys.

compare_and_set, compare_and_delete (:mod:`.base`)
    ``gets`` (the value and its CAS token), compare in Python, then ``cas`` (text protocol) or
    the meta delete ``md <key> C<token>``: the server acts only if the item's token is still
    the one read, so nothing lands between the comparison and the write. A stale token means
    some write landed in between; since memcached gives every write a new token, even one of
    the same bytes, the adapter reads again and retries while the value still matches.

Threads (:mod:`.client`)
    A pool of connections (pymemcache's ``PooledClient``): one per concurrent caller.

Errors (:mod:`.errors`)
    Socket errors, timeouts and dropped connections are
    :class:`~cachespec.backends.BackendUnavailable`; what memcached reports is a
    :class:`~cachespec.backends.CacheError` (or ``ValueTooLarge``, ``BackendFull``).

A ring of nodes hashed on the client (``memcached+ring://``) is :mod:`.ring`: this backend
with another client (:mod:`.ring_client`, pymemcache's ``HashClient``).

The URL factory is :mod:`.urls`. pymemcache is imported when the first backend is built
(:mod:`.driver`), never at import time, so the package works without the ``memcached`` extra:
nothing here imports :mod:`.client`.
"""

from .backend import (
    DEFAULT_NAMESPACE,
    DEFAULT_NAMESPACE_REFRESH,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    ITEM_OVERHEAD_MARGIN,
    MemcachedBackend,
    MemcachedBackendWithoutClear,
)
from .base import CAS_ATTEMPTS
from .expiry import RELATIVE_EXPTIME_LIMIT, TICK_SLACK, TTL_RESOLUTION, relative_exptime
from .keys import DIGEST_MARKER, MAX_KEY_BYTES, NAMESPACE_PATTERN, key_body
from .ring import MemcachedRingBackend, RingOptions
from .ring_urls import memcached_ring_from_url
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
    "MemcachedBackendWithoutClear",
    "MemcachedRingBackend",
    "RingOptions",
    "key_body",
    "memcached_from_url",
    "memcached_ring_from_url",
    "relative_exptime",
]
