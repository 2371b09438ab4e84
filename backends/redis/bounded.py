"""A bounded Redis namespace: an exact LRU of ``capacity`` entries, kept by Lua scripts.

Eviction
--------
A namespace opened with a ``capacity`` is an exact LRU (:class:`~cachespec.spec.ExactLRU`)
kept by Lua scripts on the server: every operation is one script call that reads and updates
the namespace's bookkeeping beside its entries (:mod:`.scripts` describes the keys,
:mod:`.layout` their names). It needs a server that does not evict its keys (no
``maxmemory``, or ``maxmemory-policy noeviction``): such a server could evict the
bookkeeping, so ``server_evicts`` cannot be combined with a ``capacity``. A plain
namespace's eviction is described in :mod:`.backend`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis
from redis.commands.core import Script
from redis.exceptions import ResponseError

from cachespec.spec import EvictionProfile, ExactLRU

from ..contract import ConfigurationError, check_items, check_key, check_keys
from . import scripts
from .backend import UNAVAILABLE, RedisBackend
from .layout import bookkeeping_keys, encode
from .ttl import px_ttl

__all__ = ["BoundedRedisBackend"]


class BoundedRedisBackend(RedisBackend):
    """A namespace with ``capacity=N``: what ``RedisBackend(client, capacity=N)`` builds.

    An exact LRU of at most N live entries (:class:`~cachespec.spec.ExactLRU`), kept atomic
    on the server: every operation is one Lua script call (``EVALSHA``) that reads and
    updates two sorted sets beside the entries, recency (a use counter per key) and an index
    of expiry times. A hit (in request order for ``get_many``), a write, a successful
    ``add`` and a successful ``compare_and_set`` make an entry the most recently used; a
    failed ``add`` or ``compare_and_set`` does not (a comparison alone is not a use), and
    ``compare_and_delete`` frees the entry's place only when it deletes. Inserting into a
    full namespace first drops every expired entry, then the least recently used live one.
    The server must run Lua (fakeredis needs ``lupa``: ``pip install 'fakeredis[lua]'``).
    The scripts assume the adapter is the only writer of the namespace: a key deleted or
    written around it is tracked wrongly until it is next read, written or cleared.

    The arguments are :class:`RedisBackend`'s; ``capacity`` is required, and
    ``server_evicts`` must stay False.
    """

    __slots__ = (
        "_capacity",
        "_clear_script",
        "_delete_script",
        "_meta",
        "_read_script",
        "_write_script",
    )

    def _register_scripts(
        self, client: redis.Redis | redis.RedisCluster, capacity: int | None
    ) -> tuple[Script, Script]:
        if capacity is None:
            raise ConfigurationError(
                f"{self._name}: capacity must be an int >= 1 for a bounded namespace, got None"
            )
        self._capacity = capacity
        self._meta: tuple[bytes, bytes, bytes] = bookkeeping_keys(self._base)
        self._read_script: Script = client.register_script(scripts.READ)
        self._write_script: Script = client.register_script(scripts.WRITE)
        self._delete_script: Script = client.register_script(scripts.DELETE)
        self._clear_script: Script = client.register_script(scripts.CLEAR)
        return client.register_script(scripts.LRU_COMPARE_SET), client.register_script(
            scripts.LRU_COMPARE_DELETE
        )

    def _load_scripts(self) -> bool:
        """Load every script: a server that runs none cannot keep this namespace at all."""
        try:
            for script in self._scripts():
                self._client.script_load(script.script)
        except UNAVAILABLE:
            raise  # the caller reports it as BackendUnavailable
        except ResponseError as exc:
            raise ConfigurationError(
                f"{self._name}: a namespace with a capacity needs Lua scripting on the server, "
                f"which refused it ({exc}); fakeredis runs Lua only with lupa installed "
                "(pip install 'fakeredis[lua]')"
            ) from exc
        return True

    def _scripts(self) -> tuple[Script, ...]:
        """The scripts loaded at construction (all of them)."""
        return (
            self._read_script,
            self._write_script,
            self._delete_script,
            self._clear_script,
            self._compare_set_script,
            self._compare_delete_script,
        )

    def _eviction(self, server_evicts: bool) -> EvictionProfile:
        return ExactLRU(self._capacity)

    def _compare_keys(self, name: bytes) -> list[bytes]:
        return [*self._meta, name]

    def __repr__(self) -> str:
        return (
            f"RedisBackend({self._name!r}, namespace={self._namespace!r}, "
            f"capacity={self._capacity})"
        )

    # ---------------------------------------------------------------------------- reads
    def _read_one(self, name: bytes) -> bytes | None:
        value: bytes | None = self._read_script(keys=[*self._meta, name])[0]
        return value

    def _read_many(self, names: list[bytes]) -> list[bytes | None]:
        values: list[bytes | None] = self._read_script(keys=[*self._meta, *names])
        return values

    # --------------------------------------------------------------------------- writes
    # A write the server refuses for want of memory is a plain CacheError here (an error
    # reply, like any other), not BackendFull: this namespace runs its writes in scripts, on
    # a server that must not evict, and Redis refuses such a script whole, keeping the old
    # values, which BackendFull promises are gone.
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        data, ms, name = self._prepared(key, value, ttl)
        with self._server_errors:
            self._write(name, data, ms, add=False)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        data, ms, name = self._prepared(key, value, ttl)
        with self._server_errors:
            return self._write(name, data, ms, add=True)

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = check_items(items, self._max_value_size)
        ms = px_ttl(ttl)
        if not checked:
            return
        prefix = self._prefix
        with self._server_errors:
            self._write_script(
                keys=[*self._meta, *(prefix + encode(key) for key, _ in checked)],
                args=[self._capacity, "" if ms is None else ms, "0"]
                + [data for _, data in checked],
            )

    def _write(self, name: bytes, data: bytes, ms: int | None, *, add: bool) -> bool:
        """One write (set or add) through the write script."""
        stored = self._write_script(
            keys=[*self._meta, name],
            args=[str(self._capacity), "" if ms is None else ms, "1" if add else "0", data],
        )
        return bool(stored)

    def delete(self, key: str) -> None:
        name = self._prefix + encode(check_key(key))
        with self._server_errors:
            self._delete_script(keys=[*self._meta, name])

    def delete_many(self, keys: Iterable[str]) -> None:
        doomed = check_keys(keys)
        if not doomed:
            return
        prefix = self._prefix
        names = [prefix + encode(key) for key in doomed]
        with self._server_errors:
            self._delete_script(keys=[*self._meta, *names])

    def clear(self) -> None:
        """Remove every key of this namespace, and nothing else.

        The entries it tracks and its bookkeeping go in one script: atomic, and O(capacity)
        rather than O(database).
        """
        with self._server_errors:
            self._clear_script(keys=list(self._meta))
