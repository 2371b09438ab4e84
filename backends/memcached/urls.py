"""The URL factory: ``memcached://host[:port]?options`` to a :class:`.MemcachedBackend`."""

from __future__ import annotations

from ..contract import Clock
from ..urls import BackendURL
from .backend import (
    DEFAULT_NAMESPACE,
    DEFAULT_NAMESPACE_REFRESH,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    MemcachedBackend,
)
from .keys import NAMESPACE_PATTERN

__all__ = ["memcached_from_url"]


def memcached_from_url(
    url: BackendURL, *, clock: Clock | None = None, namespace: str | None = None
) -> MemcachedBackend:
    """``memcached://host[:port]?namespace=N&timeout=S&max_value_size=B&namespace_refresh=S&eviction=E&clear=C``.

    Defaults: ``localhost:11211``, namespace ``cachespec``, timeout 5 s, ``max_value_size``
    from the server, ``namespace_refresh=0``, ``eviction=none`` (``server``: the server runs
    short of memory, see ``server_evicts``), ``clear=generation`` (``none``: a namespace
    without ``clear``, see ``clearable``). The ``namespace`` keyword overrides the URL's
    option. ``clock`` is ignored: entries expire on the server's clock, which this process
    cannot move (the test harness moves a throwaway server's clock itself). memcached's text
    protocol has no authentication, so a user or password in the URL is refused, not dropped.
    """
    del clock  # TTLs run on the server's clock
    url.expect(host=True, path=False)
    if url.username or url.password:
        raise url.error("memcached:// takes no user or password (the protocol has none)")
    url_namespace = url.pop_str("namespace", DEFAULT_NAMESPACE)
    timeout = url.pop_float("timeout", default=DEFAULT_TIMEOUT)
    max_value_size = url.pop_int("max_value_size", default=None, minimum=0)
    refresh = url.pop_float("namespace_refresh", default=DEFAULT_NAMESPACE_REFRESH)
    server_evicts = url.pop_choice("eviction", ("none", "server"), "none") == "server"
    clearable = url.pop_choice("clear", ("generation", "none"), "generation") == "generation"
    url.expect_no_options()
    if refresh and not clearable:
        raise url.error("namespace_refresh needs the clear generation; clear=none has none")
    if timeout <= 0:
        raise url.error(f"option timeout={timeout} must be greater than 0")
    chosen = namespace if namespace is not None else url_namespace
    if not isinstance(chosen, str) or not NAMESPACE_PATTERN.fullmatch(chosen):
        raise url.error(f"namespace must match {NAMESPACE_PATTERN.pattern}, got {chosen!r}")
    if url.port == 0:
        # Port 0 asks the kernel for any free port when binding; no server listens on it.
        # Refused, not read as "no port given" (11211): that would reach another server.
        raise url.error(f"port 0 is not a server's port; give its port, or none for {DEFAULT_PORT}")
    return MemcachedBackend(
        url.host or "localhost",
        DEFAULT_PORT if url.port is None else url.port,
        namespace=chosen,
        timeout=timeout,
        max_value_size=max_value_size,
        namespace_refresh=refresh,
        label=url.safe,
        server_evicts=server_evicts,
        clearable=clearable,
    )
