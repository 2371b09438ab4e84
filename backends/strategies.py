"""Keeping a cache in step with its source of truth: the strategies, written once over the
backend contract (through :class:`~cachespec.backends.cache.Cache`).

* TTL only: ``Cache(backend, default_ttl=...)`` and ``get_or_compute``; stale for up to
  the TTL (plus the backend's resolution).
* Explicit invalidation: write the source, then ``cache.invalidate(key)``; a read that
  starts after the invalidation returned is fresh.
* Cache-aside under concurrency: ``Cache.get_or_compute`` is guarded (a lease and a
  compare-and-set), so a fill computed before an invalidation never lands after it.
  :func:`naive_cache_aside` is the classic unguarded read, shipped as the counter-example
  the conformance suite must catch (``cachespec check --strategy naive-cache-aside``).
* Write-through: :class:`WriteThrough` commits the source first, then puts the value in
  the cache, so the next read hits; versions, and a lease where the key is absent, keep
  concurrent writers from overwriting a newer value with an older one.
* Event invalidation: :class:`EventInvalidator` deletes the keys named by change events;
  it insists on a safety-net TTL, because a lost event would otherwise be stale forever.
  :class:`~.listener.RedisInvalidationListener` (in :mod:`.listener`, re-exported here)
  feeds it from Redis pub/sub, through cache errors and lost connections.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar, cast

from cachespec.spec import NO_VALUE, validate_ttl

from .cache import (
    DEFAULT_TTL,
    Cache,
    _Default,
    entry_version,
    frame_value,
    frame_versioned,
    is_lease,
    new_lease,
)
from .contract import ConfigurationError, check_key
from .listener import ListenerHealth, RedisInvalidationListener

V = TypeVar("V")


def naive_cache_aside(cache: Cache, key: str, compute: Callable[[], V], ttl: float | None) -> V:
    """The textbook cache-aside read, kept as a documented counter-example.

    ``get``; on a miss, ``compute()`` (read the source) and ``set``. Between the source read
    and the ``set`` a writer can update the source and invalidate the key; the ``set`` then
    writes the old value back, and every reader gets it until the TTL runs out: the
    stale-set race (Facebook, "Scaling Memcache", 2013). Do not use it; the suite shows why.
    """
    found = cache.get(key)
    if found is not NO_VALUE:
        return cast(V, found)
    value = compute()
    cache.backend.set(key, frame_value(cache.serializer.dumps(value)), ttl)
    return value


#: The source's own key for an item (a product id, say): what a write-through hands its
#: source, which the cache's key is derived from.
K_contra = TypeVar("K_contra", contravariant=True)
Item = TypeVar("Item")


class VersionedWrite(Protocol[K_contra]):
    # Positional-only: a user's function may name its parameters as it likes.
    def __call__(self, item: K_contra, value: Any, /) -> int | None:
        """Commit ``value`` to the source; return its version (increasing per item), or
        None if the source has no versions."""


class SourceVersion(Protocol[K_contra]):
    def __call__(self, item: K_contra, /) -> int | None:
        """The version the source holds for ``item`` now (None: no such item)."""


class WriteThrough(Generic[Item]):
    """Writes that go to the source first, then to the cache: the next read hits.

    ``write(item, value)`` takes the source's own key (``item``): ``write_source`` and
    ``source_version`` get it as it is, and the cache's key is ``key(item)`` (by default
    the item itself, which must then be a ``str``). A cache key that is not a ``str`` is a
    ``TypeError`` before the source is written.

    If the source write raises, the cache is not touched. Once it commits, the written
    value is put in the cache, without ever going back in time (docs/design.md,
    "Write-through"):

    * a copy written through earlier (it carries the source's version) is replaced by this
      version, with ``compare_and_set``, unless it already holds this version or a newer one;
    * anything whose version is unknown (a cache-aside fill, or a fill's lease) is removed
      with ``compare_and_delete``: it may predate this write;
    * into an absent key the copy goes under a lease, as a guarded fill does: ``add`` the
      lease, ask the source which version it holds now (``source_version``), and replace the
      lease with the copy only if that is still the version written. An absent key says
      nothing of the versions it held, so without that question a slow writer could install
      its old version after a newer one's copy expired; and a writer that commits after the
      question deletes the lease on its way, so the copy is then dropped.

    Copies live ``ttl`` (the cache's ``default_ttl`` by default). If the cache write fails,
    the key is invalidated. If that fails too, the old value may be served until the TTL it
    was cached with runs out: no step of a writer that cannot reach the cache can shorten it
    (an earlier ``safety_ttl`` claimed to, and did not: docs/design.md, "Write-through").
    A source without versions (its write returns None) gets plain invalidation, the only
    safe choice without them.
    """

    def __init__(
        self,
        cache: Cache,
        write_source: VersionedWrite[Item],
        *,
        source_version: SourceVersion[Item],
        ttl: float | _Default | None = DEFAULT_TTL,
        key: Callable[[Item], str] | None = None,
    ) -> None:
        if not cache.backend.guarantees.compare_and_set:
            raise ConfigurationError("write-through needs a backend with compare_and_set")
        if not callable(source_version):
            raise ConfigurationError(
                "write-through needs source_version(item): the version the source holds now"
            )
        if key is not None and not callable(key):
            raise ConfigurationError(f"key must be a function of the item, got {key!r}")
        self.cache = cache
        self._key = key
        self._write_source = write_source
        self._source_version = source_version
        self.ttl = cache.default_ttl if ttl is DEFAULT_TTL else validate_ttl(ttl)

    def cache_key(self, item: Item) -> str:
        """The cache's key for ``item`` (``TypeError`` unless it is a ``str``)."""
        return check_key(item if self._key is None else self._key(item))

    def write(self, item: Item, value: object) -> None:
        key = self.cache_key(item)  # a bad key fails here, before the source is written
        version = self._write_source(item, value)  # commit first: it may raise, nothing else ran
        self.cache.supersede([key])  # reads from now on must not join a flight that predates it
        try:
            if version is None:
                self.cache.invalidate(key)
            else:
                self._install(item, version, self.cache.serializer.dumps(value))
        except Exception:
            with contextlib.suppress(Exception):  # if this fails too, the safety TTL bounds it
                self.cache.invalidate(key)
            raise

    def _install(self, item: Item, version: int, payload: bytes, attempts: int = 16) -> None:
        key = self.cache_key(item)
        backend = self.cache.backend
        data = frame_versioned(version, payload)
        for _ in range(attempts):
            current = backend.get(key)
            if current is NO_VALUE:
                if self._install_absent(key, item, version, data):
                    return
                continue  # another caller put something there first: look again
            held = entry_version(current)
            if held is None:
                backend.compare_and_delete(key, current)  # then install into the absent key
            elif held >= version or backend.compare_and_set(key, current, data, self.ttl):
                return
        # Contention beyond reason: make sure no older value survives.
        self.cache.invalidate(key)

    def _install_absent(self, key: str, item: Item, version: int, data: bytes) -> bool:
        """Install ``data`` into an absent key under a lease; False if the key was taken."""
        backend = self.cache.backend
        lease = new_lease()
        if not backend.add(key, lease, self.cache.lease_ttl):
            return False
        try:
            still = self._source_version(item) == version
        except BaseException:
            backend.compare_and_delete(key, lease)
            raise
        if still:
            # Fails only if an invalidation or a newer writer removed the lease meanwhile:
            # then that one has the last word.
            backend.compare_and_set(key, lease, data, self.ttl)
        else:  # a newer write committed: its own install puts its copy here
            backend.compare_and_delete(key, lease)
        return True


Event = str | Iterable[str]


class EventInvalidator:
    """Deletes the keys that change events name; survives lost, duplicate, reordered events.

    An event is a key or an iterable of keys. Deleting is idempotent, so duplicates and any
    order are harmless; a lost event leaves an entry stale until its TTL, so the cache must
    have a ``default_ttl`` (the safety net) and fills must use it.
    """

    def __init__(self, cache: Cache) -> None:
        if cache.default_ttl is None:
            raise ConfigurationError(
                "event invalidation needs a safety-net TTL: give the Cache a default_ttl, "
                "or a lost event leaves its key stale forever"
            )
        self.cache = cache
        self.handled = 0

    def handle(self, event: Event) -> None:
        keys = [event] if isinstance(event, str) else list(event)
        self.cache.invalidate_many(keys)
        self.handled += 1

    def consume(self, feed: Iterable[Event]) -> None:
        """Handle every event of ``feed`` (an iterator, a queue's generator, ...)."""
        for event in feed:
            self.handle(event)


__all__ = [
    "DEFAULT_TTL",
    "EventInvalidator",
    "ListenerHealth",
    "RedisInvalidationListener",
    "WriteThrough",
    "is_lease",
    "naive_cache_aside",
]
