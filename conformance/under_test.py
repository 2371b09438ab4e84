"""The strategy implementations under test (ours, a named one, or a third party's) and what
each promises (:class:`~cachespec.spec.promises.Promises`).

Apart from the staleness machine (:mod:`.staleness`), which drives and judges them: this
module says what runs, that one what happens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from cachespec.backends import Backend
from cachespec.backends.cache import Cache
from cachespec.backends.serializers import Serializer, SignedPickleSerializer
from cachespec.backends.strategies import EventInvalidator, WriteThrough, naive_cache_aside
from cachespec.spec.promises import Promises

from .doubles import Source
from .target import TargetError, load_object

__all__ = ["STRATEGIES", "STRATEGY_PATHS", "NaiveCacheAside", "Strategies", "resolve_strategies"]


class Strategies:
    """The strategy implementations under test: ours. Override a method to check another.

    ``cachespec check BACKEND --strategy naive-cache-aside`` swaps :meth:`read` for the
    textbook unguarded read; ``--strategy module:callable`` takes a reader function
    ``f(cache, key, compute, ttl)`` or a :class:`Strategies` (sub)class or instance.

    ``promises`` is what the strategy declares (docs/design.md, "Strategy promises"): a
    subclass that differs from ours by design says so there, and the suite checks it
    against that instead of failing it; a reader function may carry a ``promises``
    attribute.
    """

    name = "guarded"
    promises: ClassVar[Promises] = Promises()

    def describe(self) -> str:
        """The name, with what the declaration gives up, for the report's header."""
        if self.promises == Promises():
            return self.name
        return f"{self.name} (promises: {self.promises.describe()})"

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        """Cache-aside: our guarded ``get_or_compute`` (lease + compare-and-set fill)."""
        return cache.get_or_compute(key, compute, ttl)

    def write_and_invalidate(self, cache: Cache, source: Source, key: str, value: Any) -> None:
        """Explicit invalidation: the source first, then the cache entry goes."""
        source.write(key, value)
        cache.invalidate(key)

    def write_through(self, cache: Cache, source: Source, key: str, value: Any) -> None:
        WriteThrough(cache, source.write, source_version=source.version).write(key, value)

    def handle_event(self, cache: Cache, key: str) -> None:
        """The subscriber's reaction to a change event naming ``key``."""
        EventInvalidator(cache).handle(key)

    def event_safety_ttl(self, ttl: float) -> float | None:
        """The TTL fills get under event invalidation, when the configured fill TTL is
        ``ttl``: the bound when an event is lost (``ttl`` itself, the Cache's default_ttl,
        which EventInvalidator insists on)."""
        return ttl

    def serializer(self) -> Serializer:
        return SignedPickleSerializer(b"conformance-suite-signing-key")

    def make_cache(self, backend: Backend, **options: Any) -> Cache:
        """The cache object the strategies run on, over ``backend`` (override to check a
        :class:`~cachespec.backends.cache.Cache` of your own)."""
        # Guarded over a backend with compare_and_set; over one without, the plain fill, for
        # a strategy whose own read needs no guard (the properties that run our guarded
        # read there are not declared: properties/strategies.py, ``needs``).
        offers = backend.guarantees
        options.setdefault("guarded", offers.compare_and_set and offers.add)
        return Cache(backend, serializer=self.serializer(), **options)


class NaiveCacheAside(Strategies):
    """The stale-set race, shipped so that the suite can show it (docs/design.md)."""

    name = "naive-cache-aside"

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        return naive_cache_aside(cache, key, compute, ttl)


STRATEGIES: dict[str, type[Strategies]] = {
    "guarded": Strategies,
    "naive-cache-aside": NaiveCacheAside,
}
# Named strategies in modules of their own, which import this one.
STRATEGY_PATHS: dict[str, str] = {
    "decorated": "cachespec.conformance.decorated:Decorated",  # reads through @cached
}


def resolve_strategies(chosen: str | Strategies) -> Strategies:
    """A name, ``module:callable`` (a Strategies class or instance, or a reader function
    ``f(cache, key, compute, ttl)``), or a Strategies instance."""
    if isinstance(chosen, Strategies):
        return _declared(chosen, chosen.name)
    if chosen in STRATEGIES:
        return STRATEGIES[chosen]()
    chosen = STRATEGY_PATHS.get(chosen, chosen)
    module_name, colon, attr = chosen.partition(":")
    if not colon:
        known = ", ".join([*STRATEGIES, *STRATEGY_PATHS])
        raise TargetError(f"unknown strategy {chosen!r} (known: {known}, or module:callable)")
    found = load_object(module_name, attr, chosen)
    if isinstance(found, type) and issubclass(found, Strategies):
        found = found()
    if isinstance(found, Strategies):
        return _declared(found, chosen)
    if callable(found):
        reader = found
        label: str = str(chosen)
        declared = getattr(found, "promises", Promises())
        if not isinstance(declared, Promises):
            raise TargetError(
                f"strategy {chosen!r}: its promises must be a cachespec.spec.promises.Promises, "
                f"got {type(declared).__name__}"
            )

        class Custom(Strategies):
            name = label
            promises = declared

            def read(
                self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None
            ) -> Any:
                return reader(cache, key, compute, ttl)

        return Custom()
    raise TargetError(f"strategy {chosen!r} is neither a Strategies nor a reader function")


def _declared(strategies: Strategies, chosen: str) -> Strategies:
    """``strategies``, once its declaration is one: a bad one is a usage error (exit 2)
    before anything runs, never a property failing on it."""
    if not isinstance(strategies.promises, Promises):
        raise TargetError(
            f"strategy {chosen!r}: its promises must be a cachespec.spec.promises.Promises, "
            f"got {type(strategies.promises).__name__}"
        )
    return strategies
