"""The ``memcached+ring://h1:p1,h2:p2,...`` URL factory: :func:`memcached_ring_from_url`."""

from __future__ import annotations

from ..contract import Clock
from ..urls import BackendURL
from .backend import DEFAULT_NAMESPACE, DEFAULT_PORT, DEFAULT_TIMEOUT
from .keys import NAMESPACE_PATTERN
from .ring import DEFAULT_RING_OPTIONS, ON_FAILURE, MemcachedRingBackend, RingOptions

__all__ = ["memcached_ring_from_url"]


def memcached_ring_from_url(
    url: BackendURL, *, clock: Clock | None = None, namespace: str | None = None
) -> MemcachedRingBackend:
    """``memcached+ring://h1[:p1],h2[:p2],...?options``: one namespace over every node.

    The options of ``memcached://`` that make sense on a ring: ``namespace``, ``timeout``,
    ``max_value_size``, ``eviction``; and the node-failure ones (:class:`.ring.RingOptions`):
    ``retry_attempts`` (default 2), ``retry_timeout`` (s, 1), ``dead_timeout`` (s, 60),
    ``on_failure`` (``raise`` or ``miss``). ``clear=none`` and ``namespace_refresh`` are
    refused with the reason (:mod:`.ring`). A port left out is 11211; port 0 is refused.
    ``clock`` is ignored, as for one server: TTLs run on the servers' clocks.
    """
    del clock
    if url.path not in ("", "/"):
        raise url.error(f"memcached+ring:// takes no path, got {url.path!r}")
    if url.username or url.password:
        raise url.error("memcached+ring:// takes no user or password (the protocol has none)")
    servers: list[tuple[str, int]] = []
    for host, port in url.hosts:
        if not host:
            raise url.error("every node needs a host")
        if port == 0:
            raise url.error("port 0 is not a server's port; give each node's port")
        servers.append((host, DEFAULT_PORT if port is None else port))
    url_namespace = url.pop_str("namespace", DEFAULT_NAMESPACE)
    timeout = url.pop_float("timeout", default=DEFAULT_TIMEOUT)
    max_value_size = url.pop_int("max_value_size", default=None, minimum=0)
    server_evicts = url.pop_choice("eviction", ("none", "server"), "none") == "server"
    defaults = DEFAULT_RING_OPTIONS
    attempts = url.pop_int("retry_attempts", default=defaults.retry_attempts, minimum=1)
    ring = RingOptions(
        retry_attempts=defaults.retry_attempts if attempts is None else attempts,
        retry_timeout=url.pop_float("retry_timeout", default=defaults.retry_timeout),
        dead_timeout=url.pop_float("dead_timeout", default=defaults.dead_timeout),
        on_failure=url.pop_choice("on_failure", ON_FAILURE, defaults.on_failure),
    )
    if "clear" in url.options:
        raise url.error(
            "a ring takes no clear option: it needs the clear generation to discard a "
            "returning node's entries (docs/design.md, 'The memcached ring')"
        )
    if "namespace_refresh" in url.options:
        raise url.error(
            "a ring takes no namespace_refresh: writes must see the generation a node change "
            "moved to (docs/design.md, 'The memcached ring')"
        )
    url.expect_no_options()
    if timeout <= 0:
        raise url.error(f"option timeout={timeout} must be greater than 0")
    chosen = namespace if namespace is not None else url_namespace
    if not isinstance(chosen, str) or not NAMESPACE_PATTERN.fullmatch(chosen):
        raise url.error(f"namespace must match {NAMESPACE_PATTERN.pattern}, got {chosen!r}")
    return MemcachedRingBackend(
        servers,
        ring=ring,
        namespace=chosen,
        timeout=timeout,
        max_value_size=max_value_size,
        label=url.safe,
        server_evicts=server_evicts,
    )
