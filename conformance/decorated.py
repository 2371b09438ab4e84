"""The strategies through ``@cached``, so that the suite checks the decorator as it checks
``get_or_compute``: ``cachespec check --strategy decorated``.

Reads call a decorated loader instead of ``get_or_compute``; the writers, invalidations and
events address the very entries it fills. Its keys are the machines' own
(``namespace=""`` with a key function), so the suite's bookkeeping of what was cached under
which key holds unchanged. What the decorator adds (its key, its binding, its TTL) is then
held to every staleness and efficacy bound the strategies are.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from cachespec.backends.cache import Cache
from cachespec.backends.decorator import CachedFunction, cached

from .staleness import Source, Strategies


def _load(key: str, compute: Callable[[], Any]) -> Any:
    """The decorated loader: the source's value for ``key``, as the machine computes it."""
    return compute()


def _key_of(key: str, compute: Callable[[], Any] | None = None) -> str:
    return key


class Decorated(Strategies):
    """Our strategies, with every cache-aside read through a ``@cached`` function."""

    name = "decorated"

    def __init__(self) -> None:
        # One decorated loader per cache and TTL: the decorator fixes its TTL, and a
        # machine's reads may come with several.
        self._loaders: weakref.WeakKeyDictionary[
            Cache[Any], dict[float | None, CachedFunction[Any]]
        ] = weakref.WeakKeyDictionary()

    def loader(self, cache: Cache[Any], ttl: float | None) -> CachedFunction[Any]:
        per_ttl = self._loaders.setdefault(cache, {})
        if ttl not in per_ttl:
            per_ttl[ttl] = cached(cache, ttl=ttl, namespace="", key=_key_of)(_load)
        return per_ttl[ttl]

    def read(
        self, cache: Cache[Any], key: str, compute: Callable[[], Any], ttl: float | None
    ) -> Any:
        return self.loader(cache, ttl)(key, compute)

    def write_and_invalidate(self, cache: Cache[Any], source: Source, key: str, value: Any) -> None:
        """The source first, then the decorated function's entry goes: ``fn.invalidate``."""
        source.write(key, value)
        self.loader(cache, None).invalidate(key)


__all__ = ["Decorated"]
