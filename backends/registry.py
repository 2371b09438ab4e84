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

from .contract import Backend, Clock, ConfigurationError
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
}
_registered: dict[str, BackendFactory] = {}
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


def open_backend(url: str, *, clock: Clock | None = None, namespace: str | None = None) -> Backend:
    """Build the backend ``url`` names. ``clock`` applies to in-process backends."""
    parsed = BackendURL(url)
    try:
        factory = factory_for(parsed.scheme)
        return factory(parsed, clock=clock, namespace=namespace)
    except ConfigurationError as exc:
        if exc.args and str(exc.args[0]).startswith(parsed.safe):
            raise
        raise parsed.error(str(exc)) from None
    except ModuleNotFoundError as exc:
        # A driver that is not installed: a usage error naming what to install, not a
        # traceback (the drivers are extras: a bare install has none of them).
        missing = (exc.name or "?").partition(".")[0]
        extra = _EXTRAS.get(missing)
        fix = f"pip install 'cachespec[{extra}]'" if extra else f"install {missing!r}"
        raise parsed.error(
            f"{parsed.scheme}:// needs the Python package {missing!r}, which is not "
            f"installed: {fix}"
        ) from None
