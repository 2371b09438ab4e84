"""From names and URLs to backends.

``open_backend("memory://?capacity=100")`` builds a backend from a URL. Schemes map to
factories ``factory(url: BackendURL, *, clock, namespace) -> Backend``. Built-in schemes
are listed here by import path, so a driver (redis-py, pymemcache) is imported only when its
scheme is opened. Third parties add schemes through the ``cachespec.backends`` entry-point
group (``myscheme = "mypkg.cache:from_url"`` in their ``pyproject.toml``) or
:func:`register_scheme` at run time.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Protocol

from cachespec.spec import Guarantees

from .contract import Backend, Clock, ConfigurationError
from .lazy import LazyBackend
from .urls import BackendURL

ENTRY_POINT_GROUP = "cachespec.backends"


class BackendFactory(Protocol):
    def __call__(
        self, url: BackendURL, *, clock: Clock | None = None, namespace: str | None = None
    ) -> Backend: ...


_BUILTIN: dict[str, str] = {
    "memory": "cachespec.backends.memory:memory_from_url",
    "redis": "cachespec.backends.redis:redis_from_url",
    "rediss": "cachespec.backends.redis:redis_from_url",
    "unix": "cachespec.backends.redis:redis_from_url",
    "fakeredis": "cachespec.backends.redis:fakeredis_from_url",
    "memcached": "cachespec.backends.memcached:memcached_from_url",
    "memcached+ring": "cachespec.backends.memcached:memcached_ring_from_url",
    "redis+cluster": "cachespec.backends.redis:redis_cluster_from_url",
    "rediss+cluster": "cachespec.backends.redis:redis_cluster_from_url",
}
_registered: dict[str, BackendFactory] = {}
#: The built-in schemes whose backends live in the calling process, with no server behind
#: them: what no server fault can reach and no other process can open.
IN_PROCESS_SCHEMES: frozenset[str] = frozenset({"memory", "fakeredis"})
# The extra that installs each driver a built-in scheme imports when it is opened.
_EXTRAS = {"redis": "redis", "fakeredis": "fakeredis", "pymemcache": "memcached"}


def register_scheme(scheme: str, factory: BackendFactory) -> None:
    """Make ``scheme://`` URLs open through ``factory`` (overrides entry points)."""
    if not scheme.isidentifier() and not scheme.replace("+", "").replace("-", "").isalnum():
        raise ConfigurationError(f"not a URL scheme: {scheme!r}")
    _registered[scheme.lower()] = factory


def _load(path: str) -> BackendFactory:
    module_name, _, attr = path.partition(":")
    target: object = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return target  # type: ignore[return-value]


def _entry_point_paths() -> dict[str, str]:
    return {ep.name.lower(): ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def schemes() -> list[str]:
    """Every scheme ``open_backend`` knows, built-in, installed or registered."""
    return sorted({*_BUILTIN, *_entry_point_paths(), *_registered})


def factory_for(scheme: str) -> BackendFactory:
    scheme = scheme.lower()
    if scheme in _registered:
        return _registered[scheme]
    path = _BUILTIN.get(scheme) or _entry_point_paths().get(scheme)
    if path is None:
        raise ConfigurationError(
            f"no backend for scheme {scheme!r}:// (known: {', '.join(schemes())})"
        )
    return _load(path)


# What a lazily opened backend of these schemes declares until its server is reached: every
# Redis and memcached server runs the adapters' compare-and-set, which guarded fills need.
_LAZY_DECLARED: dict[str, Guarantees] = dict.fromkeys(
    ("redis", "rediss", "unix", "memcached"), Guarantees(compare_and_set=True)
)


def open_backend(
    url: str,
    *,
    clock: Clock | None = None,
    namespace: str | None = None,
    lazy: bool = False,
    retry_after: float = 5.0,
) -> Backend:
    """Build the backend ``url`` names. ``clock`` applies to in-process backends.

    ``lazy=True``: a server that cannot be reached now does not fail the call; the backend
    (a :class:`~cachespec.backends.lazy.LazyBackend`) opens at a later call, trying at most
    once every ``retry_after`` seconds, and raises ``BackendUnavailable`` until then, which
    ``Cache.get_or_compute`` answers from the source. The URL, its scheme and its driver
    are still checked now.
    """
    parsed = BackendURL(url)
    if not lazy:
        return _open(parsed, clock, namespace)
    _factory(parsed)  # an unknown scheme or a missing driver is the caller's mistake: now
    declared = _LAZY_DECLARED.get(parsed.scheme.lower())
    if declared is None:
        # What a guarded Cache built on it may rely on must be known before the server is
        # reached, and it is known only for these schemes.
        raise parsed.error(
            f"lazy=True opens {', '.join(f'{s}://' for s in _LAZY_DECLARED)} URLs only; "
            f"{parsed.scheme}:// is opened now, or not at all"
        )
    backend = LazyBackend(
        lambda: _open(parsed, clock, namespace),
        name=parsed.safe,
        declared=declared,
        retry_after=retry_after,
    )
    backend.try_open()
    return backend


def _factory(parsed: BackendURL) -> BackendFactory:
    try:
        return factory_for(parsed.scheme)
    except ConfigurationError as exc:
        raise parsed.error(str(exc)) from None
    except ModuleNotFoundError as exc:
        raise _missing_driver(parsed, exc) from None


def _open(parsed: BackendURL, clock: Clock | None, namespace: str | None) -> Backend:
    factory = _factory(parsed)
    try:
        return factory(parsed, clock=clock, namespace=namespace)
    except ConfigurationError as exc:
        if exc.args and str(exc.args[0]).startswith(parsed.safe):
            raise
        raise parsed.error(str(exc)) from None
    except ModuleNotFoundError as exc:  # a factory that imports its driver when called
        raise _missing_driver(parsed, exc) from None


def _missing_driver(parsed: BackendURL, exc: ModuleNotFoundError) -> ConfigurationError:
    """A driver that is not installed: a usage error naming what to install, not a
    traceback (the drivers are extras: a bare install has none of them)."""
    missing = (exc.name or "?").partition(".")[0]
    extra = _EXTRAS.get(missing)
    fix = f"pip install 'cachespec[{extra}]'" if extra else f"install {missing!r}"
    return parsed.error(
        f"{parsed.scheme}:// needs the Python package {missing!r}, which is not installed: {fix}"
    )
