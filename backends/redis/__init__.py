"""The Redis backend (``redis://``, ``rediss://``, ``unix://``) and its in-process twin, ``fakeredis://``.

This module imports redis-py at the top: the registry imports it only when one of these schemes
is opened, and ``cachespec.backends`` itself never does, so a bare install still works.
fakeredis is imported only inside :func:`fakeredis_from_url` and :func:`fakeredis_client`.

The keys a namespace uses on the server are in :mod:`.layout`; TTLs, and how late a server
may serve an entry, in :mod:`.ttl`.

Compare-and-set
---------------
``compare_and_set`` and ``compare_and_delete`` are Lua scripts in either kind of namespace
(one ``EVALSHA`` per call): the ``GET``, the byte-for-byte comparison and the write or
``UNLINK`` run as one atomic step on the server. A key past its TTL is gone on the server (``GET``
answers nil), so a missing or expired key never matches. A plain namespace needs Lua for
these two operations only: on a server that runs no scripts it declares
``compare_and_set=False`` and its other operations work as before.

Eviction
--------
A plain namespace declares that it never evicts (:class:`~cachespec.spec.NoEviction`): run
the server without ``maxmemory``, or with ``noeviction``. On a server that evicts by memory
(``allkeys-lru`` and the other ``maxmemory-policy`` values), open it with
``server_evicts=True`` (URL option ``eviction=server``): it then declares
:data:`REDIS_SERVER_EVICTION`, which says what such a server keeps: no particular
entry, at no particular moment. Redis's ``allkeys-lru`` samples keys (docs/facts.md: 63-82% of
its evictions match a true LRU's), its LRU clock ticks once a second, its eviction pool keeps
candidates scored in earlier rounds, and an eviction that overruns its time budget goes on
from a timer between later commands: the suite saw an entry hit and then miss at the next
read, with no write between. A namespace opened with a ``capacity`` is an exact LRU kept by
Lua scripts on the server; see :class:`RedisBackend`.

Needs Redis 5 or later: ``UNLINK`` (4.0), and scripts that write after reading ``TIME``
(effect replication, the default since 5.0). Checked on 7.0.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import unquote

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, OutOfMemoryError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from cachespec.spec import (
    NO_VALUE,
    SERVER_EVICTION,
    ExactLRU,
    Guarantees,
    NoEviction,
    NoValue,
)

from ..contract import (
    Backend,
    BackendFull,
    BackendUnavailable,
    CacheError,
    Clock,
    ConfigurationError,
    check_items,
    check_key,
    check_keys,
    check_value,
)
from ..urls import BackendURL
from . import scripts
from .layout import bookkeeping_keys, encode, glob_escape, namespace_base
from .ttl import FAKEREDIS_TTL_RESOLUTION, MAX_TTL, REDIS_TTL_RESOLUTION, px_ttl

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_TIMEOUT",
    "FAKEREDIS_TTL_RESOLUTION",
    "MAX_TTL",
    "REDIS_SERVER_EVICTION",
    "REDIS_TTL_RESOLUTION",
    "RedisBackend",
    "fakeredis_client",
    "fakeredis_from_url",
    "redis_from_url",
]

DEFAULT_NAMESPACE: Final = "cachespec"
DEFAULT_TIMEOUT: Final = 5.0
"""Seconds allowed to connect, and to wait for each reply."""

# Errors meaning "the server cannot serve us": refused, unreachable, too slow, or it refuses
# our credentials (AuthenticationError and BusyLoadingError are ConnectionError subclasses in
# redis-py; NOPERM is a ResponseError subclass). Any other error reply is a CacheError.
_UNAVAILABLE: Final = (RedisConnectionError, RedisTimeoutError, NoPermissionError)

REDIS_SERVER_EVICTION: Final = dataclasses.replace(SERVER_EVICTION, refuses_when_full=True)
"""What a plain namespace with ``server_evicts`` declares: :data:`SERVER_EVICTION`, and a
write may be refused. Redis refuses a write (``OOM command not allowed``) when it cannot free
enough memory by evicting; it then keeps the key's old value, so the adapter deletes the keys
the write touched before it raises :class:`~cachespec.backends.BackendFull` (see
:meth:`RedisBackend._refused`): each holds the new value or nothing, never the old one."""


# ------------------------------------------------------------------------------ backend
class RedisBackend(Backend):
    """A namespace on a Redis server (or on fakeredis), through a redis-py client.

    ``client`` is a ``redis.Redis`` built with ``decode_responses=False`` (values are bytes).
    Construction PINGs the server, so an unreachable one fails here, with
    :class:`~cachespec.backends.BackendUnavailable`, not at first use. Any later call that
    cannot reach the server raises the same error; other server errors propagate as
    redis-py raised them.

    ``namespace`` (non-empty) prefixes every key; :meth:`clear` removes exactly this
    namespace's keys (``SCAN`` + ``UNLINK``, never ``FLUSHDB``). Two backends on one server
    with the same namespace see the same entries.

    ``server_evicts`` says that the server evicts by memory (a ``maxmemory`` with an
    evicting policy); the namespace then declares :data:`REDIS_SERVER_EVICTION`
    instead of :class:`~cachespec.spec.NoEviction`. It cannot be combined with a
    ``capacity``: the server could evict the bookkeeping that keeps the exact LRU.

    ``capacity=None`` (the default) never evicts. ``capacity=N`` makes the namespace an exact
    LRU of at most N live entries (:class:`~cachespec.spec.ExactLRU`), kept atomic on the
    server: every operation is one Lua script call (``EVALSHA``) that reads and updates two
    sorted sets beside the entries, recency (a use counter per key) and an index of expiry
    times. A hit (in request order for ``get_many``), a write, a successful ``add`` and a
    successful ``compare_and_set`` make an entry the most recently used; a failed ``add`` or
    ``compare_and_set`` does not (a comparison alone is not a use), and ``compare_and_delete``
    frees the entry's place only when it deletes. Inserting into a full namespace first drops
    every expired entry, then the least recently used live one. The server must
    run Lua (fakeredis needs ``lupa``: ``pip install 'fakeredis[lua]'``). The scripts assume
    the adapter is the only writer of the namespace: a key deleted or written around it is
    tracked wrongly until it is next read, written or cleared.

    ``compare_and_set`` and ``compare_and_delete`` are one script call each in either kind of
    namespace (see the module docstring). A plain namespace loads those two scripts at
    construction; a server that runs no Lua at all (fakeredis without ``lupa``) leaves it
    without them (``guarantees.compare_and_set`` is False, and they raise
    ``NotImplementedError``), and a user whose ACL refuses scripts gets
    ``BackendUnavailable`` from them, as from any refused command.

    ``max_value_size`` (bytes) refuses larger values with
    :class:`~cachespec.backends.ValueTooLarge` before anything is sent. ``None`` declares no
    limit; the server still refuses a value over its ``proto-max-bulk-len`` (512 MB by
    default) by dropping the connection, which surfaces as ``BackendUnavailable`` (the old
    entry stays: checked on 7.0 with the limit lowered to 1 MB).

    ``ttl_resolution`` is how late the server may serve an entry past its TTL:
    :data:`REDIS_TTL_RESOLUTION` for Redis, :data:`FAKEREDIS_TTL_RESOLUTION` for fakeredis.
    ``name`` names the server in error messages (pass a redacted URL: ``BackendURL.safe``).
    ``close_client``: :meth:`close` closes the client too (the URL factories set it; a client
    you pass in stays yours by default).
    """

    __slots__ = (
        "_base",
        "_capacity",
        "_clear_script",
        "_client",
        "_close_client",
        "_compare_delete_script",
        "_compare_set_script",
        "_delete_script",
        "_execute",
        "_max_value_size",
        "_meta",
        "_name",
        "_namespace",
        "_prefix",
        "_read_script",
        "_write_script",
        "guarantees",
    )

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        capacity: int | None = None,
        max_value_size: int | None = None,
        ttl_resolution: float = REDIS_TTL_RESOLUTION,
        server_evicts: bool = False,
        name: str | None = None,
        close_client: bool = False,
    ) -> None:
        self._name = name or "redis"
        if not isinstance(namespace, str) or not namespace:
            raise ConfigurationError(
                f"{self._name}: namespace must be a non-empty str, got {namespace!r} "
                "(the namespace is what keeps clear() off other tenants' keys)"
            )
        if capacity is not None and (
            isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1
        ):
            raise ConfigurationError(
                f"{self._name}: capacity must be an int >= 1 or None, got {capacity!r}"
            )
        if max_value_size is not None and (
            isinstance(max_value_size, bool)
            or not isinstance(max_value_size, int)
            or max_value_size < 0
        ):
            raise ConfigurationError(
                f"{self._name}: max_value_size must be an int >= 0 or None, got {max_value_size!r}"
            )
        if not isinstance(server_evicts, bool):
            raise ConfigurationError(
                f"{self._name}: server_evicts must be a bool, got {server_evicts!r}"
            )
        if server_evicts and capacity is not None:
            raise ConfigurationError(
                f"{self._name}: a namespace with a capacity needs a server that does not evict "
                "its keys (no maxmemory, or maxmemory-policy noeviction); server_evicts=True "
                "says this one does"
            )
        if client.get_connection_kwargs().get("decode_responses"):
            raise ConfigurationError(
                f"{self._name}: the client must not decode responses (values are bytes); "
                "build it with decode_responses=False"
            )
        self._client = client
        # redis-py leaves execute_command unannotated; every reply is typed where it is used.
        self._execute: Callable[..., Any] = client.execute_command
        self._close_client = close_client
        self._namespace = namespace
        self._capacity = capacity
        self._max_value_size = max_value_size
        self._base = namespace_base(namespace)
        self._prefix = self._base + b":"
        self._meta: tuple[bytes, bytes, bytes] = bookkeeping_keys(self._base)
        # register_script only hashes the source; the scripts are loaded below.
        self._read_script: Script = client.register_script(scripts.READ)
        self._write_script: Script = client.register_script(scripts.WRITE)
        self._delete_script: Script = client.register_script(scripts.DELETE)
        self._clear_script: Script = client.register_script(scripts.CLEAR)
        bounded = capacity is not None
        self._compare_set_script: Script = client.register_script(
            scripts.LRU_COMPARE_SET if bounded else scripts.COMPARE_SET
        )
        self._compare_delete_script: Script = client.register_script(
            scripts.LRU_COMPARE_DELETE if bounded else scripts.COMPARE_DELETE
        )
        # Loaded now so that the first call is one round trip (EVALSHA), and so that a server
        # without Lua fails here (bounded) or is known here (plain) rather than at first use.
        compare_and_set = True
        self._ping()
        try:
            if bounded:
                for script in self._scripts():
                    client.script_load(script.script)
            else:
                compare_and_set = self._load_compare_scripts()
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            raise ConfigurationError(
                f"{self._name}: a namespace with a capacity needs Lua scripting on the server, "
                f"which refused it ({exc}); fakeredis runs Lua only with lupa installed "
                "(pip install 'fakeredis[lua]')"
            ) from exc
        self.guarantees = Guarantees(
            ttl_resolution=ttl_resolution,
            eviction=(
                REDIS_SERVER_EVICTION
                if server_evicts
                else NoEviction()
                if capacity is None
                else ExactLRU(capacity)
            ),
            max_value_size=max_value_size,
            max_ttl=MAX_TTL,
            # redis-py's connection pool is thread-safe, and every operation is one atomic
            # command or script on the server (add is SET NX; the compare operations and
            # every operation of a bounded namespace are scripts).
            thread_safe=True,
            compare_and_set=compare_and_set,
        )

    def _ping(self) -> None:
        """PING: the first command, which opens a connection and so SELECTs the database.

        A server with fewer databases refuses the SELECT. Reported here, by itself: the
        script loading that follows reads a server error as a server without Lua. How many
        databases a server has is its own setting (16 by default), so only the server can
        say that the index is too big; any other server error propagates unchanged."""
        try:
            self._client.ping()
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            if "DB index is out of range" not in str(exc):
                raise
            db = self._client.get_connection_kwargs().get("db", 0)
            raise ConfigurationError(
                f"{self._name}: database {db} is out of range for this server ({exc}); "
                "Redis has databases 0-15 unless its 'databases' setting says otherwise"
            ) from exc

    def _scripts(self) -> tuple[Script, ...]:
        """The scripts a bounded namespace loads at construction (all of them)."""
        return (
            self._read_script,
            self._write_script,
            self._delete_script,
            self._clear_script,
            self._compare_set_script,
            self._compare_delete_script,
        )

    def _load_compare_scripts(self) -> bool:
        """Load a plain namespace's two compare scripts; return whether the server runs Lua.

        A plain namespace's other operations need no Lua, so a refusal is not fatal here. A
        server without scripting (fakeredis without lupa) answers with an error: the namespace
        then does not offer the compare operations. A user that an ACL forbids scripts
        (NOPERM) may be allowed them later: the scripts are loaded again at first use
        (``EVALSHA`` reloads a script the server lacks), and a refusal then is
        ``BackendUnavailable``, as for any command the ACL refuses.
        """
        try:
            for script in (self._compare_set_script, self._compare_delete_script):
                self._client.script_load(script.script)
        except NoPermissionError:
            return True
        except ResponseError:
            return False
        return True

    def __repr__(self) -> str:
        bound = "" if self._capacity is None else f", capacity={self._capacity}"
        return f"RedisBackend({self._name!r}, namespace={self._namespace!r}{bound})"

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def key_prefix(self) -> bytes:
        """The bytes every entry's Redis key starts with (``{namespace}:``)."""
        return self._prefix

    def _unavailable(self, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(f"{self._name}: Redis unavailable: {exc}")

    def _refused_command(self, exc: ResponseError) -> CacheError:
        """Any other error reply, typed: a key of this namespace that holds another Redis
        type (WRONGTYPE: someone else's data), a script error. The cache layer falls
        through to the source on it, as on any CacheError."""
        return CacheError(f"{self._name}: Redis refused the command: {exc}")

    # ---------------------------------------------------------------------------- reads
    def get(self, key: str) -> bytes | NoValue:
        name = self._prefix + encode(check_key(key))
        try:
            if self._capacity is None:
                value = self._execute("GET", name)
            else:
                value = self._read_script(keys=[*self._meta, name])[0]
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            raise self._refused_command(exc) from exc
        return NO_VALUE if value is None else value

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = check_keys(keys)
        if not wanted:
            return {}
        prefix = self._prefix
        names = [prefix + encode(key) for key in wanted]
        try:
            if self._capacity is None:
                values = self._execute("MGET", *names)  # one command, one round trip
            else:
                values = self._read_script(keys=[*self._meta, *names])
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            raise self._refused_command(exc) from exc
        return {key: value for key, value in zip(wanted, values, strict=True) if value is not None}

    # ----------------------------------------------------------------- compare and set
    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        self._offers_compare("compare_and_set")
        data = check_value(check_key(key), value, self._max_value_size)
        expected = check_value(key, expected)  # never stored: no size limit
        ms = px_ttl(ttl)
        name = self._prefix + encode(key)
        try:
            replaced = self._compare_set_script(
                keys=[name] if self._capacity is None else [*self._meta, name],
                args=[expected, data, "" if ms is None else ms],
            )
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            raise self._refused_command(exc) from exc
        return bool(replaced)

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        self._offers_compare("compare_and_delete")
        expected = check_value(check_key(key), expected)
        name = self._prefix + encode(key)
        try:
            deleted = self._compare_delete_script(
                keys=[name] if self._capacity is None else [*self._meta, name],
                args=[expected],
            )
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            raise self._refused_command(exc) from exc
        return bool(deleted)

    def _offers_compare(self, operation: str) -> None:
        if not self.guarantees.compare_and_set:
            raise NotImplementedError(
                f"{self._name}: {operation} needs Lua scripting, which this server does not "
                "run; fakeredis runs Lua only with lupa installed (pip install 'fakeredis[lua]')"
            )

    # --------------------------------------------------------------------------- writes
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        data = check_value(check_key(key), value, self._max_value_size)
        ms = px_ttl(ttl)
        name = self._prefix + encode(key)
        try:
            if self._capacity is not None:
                self._write(name, data, ms, add=False)
            elif ms is None:
                # A plain SET drops any TTL the key had (docs/facts.md), as set(ttl=None) must.
                self._execute("SET", name, data)
            else:
                self._execute("SET", name, data, "PX", ms)
        except OutOfMemoryError as exc:
            raise self._refused("set", [key], [name], exc) from exc
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            raise self._refused_command(exc) from exc

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        data = check_value(check_key(key), value, self._max_value_size)
        ms = px_ttl(ttl)
        name = self._prefix + encode(key)
        try:
            if self._capacity is not None:
                return self._write(name, data, ms, add=True)
            # SET NX is atomic on the server: of concurrent adds exactly one gets OK; the
            # others get nil and change nothing. An expired key counts as absent.
            if ms is None:
                stored = self._execute("SET", name, data, "NX")
            else:
                stored = self._execute("SET", name, data, "NX", "PX", ms)
        except OutOfMemoryError as exc:
            raise self._refused("add", [key], [], exc) from exc  # SET NX changed nothing
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            raise self._refused_command(exc) from exc
        return bool(stored)

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = check_items(items, self._max_value_size)
        ms = px_ttl(ttl)
        if not checked:
            return
        prefix = self._prefix
        named = [(prefix + encode(key), data) for key, data in checked]
        try:
            if self._capacity is not None:
                self._write_script(
                    keys=[*self._meta, *(name for name, _ in named)],
                    args=[self._capacity, "" if ms is None else ms, "0"]
                    + [data for _, data in checked],
                )
            elif ms is None:
                # MSET: one command, atomic, and like SET it drops old TTLs.
                self._execute(
                    "MSET",
                    *[part for pair in named for part in pair],
                )
            else:
                # MSET takes no TTL: one SET PX per key, sent in one round trip. MULTI/EXEC
                # rather than a bare pipeline: the batch is applied whole, never interleaved
                # with other clients' commands, and a connection lost before EXEC applies
                # none of it. It costs two more (tiny) commands in the same round trip.
                pipe = self._client.pipeline(transaction=True)
                queue: Callable[..., Any] = pipe.execute_command  # unannotated in redis-py
                for name, data in named:
                    queue("SET", name, data, "PX", ms)
                pipe.execute()
        except OutOfMemoryError as exc:  # MSET, or a SET that aborted the whole MULTI
            names = [name for name, _ in named]
            raise self._refused("set_many", [key for key, _ in checked], names, exc) from exc
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            raise self._refused_command(exc) from exc

    def _refused(
        self, op: str, keys: list[str], names: list[bytes], exc: OutOfMemoryError
    ) -> BackendFull:
        """The error for a write Redis refused for want of memory, once ``names`` are gone.

        Redis refuses a write whole (``SET``, ``MSET``, a ``MULTI`` it aborts) and keeps the
        old values; the contract says a refused write leaves each key with the new value or
        nothing, never the old one (a caller that was replacing a stale value must not keep
        reading it). ``UNLINK`` frees memory, so Redis allows it when full. A refused ``add``
        changed nothing and passes no names. A namespace with a ``capacity`` runs its writes
        in scripts, on a server that must not evict; such an error is raised again unchanged.
        """
        if self._capacity is not None:
            raise exc
        if names:
            try:
                self._execute("UNLINK", *names)
            except _UNAVAILABLE as lost:
                raise self._unavailable(lost) from exc
        gone = "; their old values were deleted" if names else "; nothing was written"
        return BackendFull(
            f"{self._name}: {op}: the server refused to store {keys!r} for want of memory "
            f"({exc}){gone}",
            keys,
        )

    def delete(self, key: str) -> None:
        name = self._prefix + encode(check_key(key))
        try:
            if self._capacity is None:
                # UNLINK: deleting a missing key is not an error; a large value is freed in
                # the background instead of blocking the server.
                self._execute("UNLINK", name)
            else:
                self._delete_script(keys=[*self._meta, name])
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            raise self._refused_command(exc) from exc

    def delete_many(self, keys: Iterable[str]) -> None:
        doomed = check_keys(keys)
        if not doomed:
            return  # UNLINK with no key is a syntax error
        prefix = self._prefix
        names = [prefix + encode(key) for key in doomed]
        try:
            if self._capacity is None:
                self._execute("UNLINK", *names)  # one command, one round trip
            else:
                self._delete_script(keys=[*self._meta, *names])
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            raise self._refused_command(exc) from exc

    def clear(self) -> None:
        """Remove every key of this namespace, and nothing else.

        A plain namespace is swept with ``SCAN MATCH {namespace}*`` (its glob characters
        escaped), ``UNLINK`` per page: O(keys in the database), in pages, never ``FLUSHDB``.
        Entries written during the sweep may or may not survive it. The sweep also removes a
        bounded namespace's bookkeeping, so it leaves either kind consistent.

        A bounded namespace removes the entries it tracks and its bookkeeping in one script:
        atomic, and O(capacity) rather than O(database).
        """
        try:
            if self._capacity is not None:
                self._clear_script(keys=list(self._meta))
                return
            pattern = glob_escape(self._base) + b"*"
            cursor = 0
            while True:
                cursor, names = self._client.scan(cursor, match=pattern, count=1000)
                if names:
                    self._execute("UNLINK", *names)
                if cursor == 0:
                    break
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            raise self._refused_command(exc) from exc

    def close(self) -> None:
        """Close the client if this backend created it (the URL factories do)."""
        if self._close_client:
            self._client.close()

    def _write(self, name: bytes, data: bytes, ms: int | None, *, add: bool) -> bool:
        """One bounded write (set or add) through the write script."""
        stored = self._write_script(
            keys=[*self._meta, name],
            args=[str(self._capacity), "" if ms is None else ms, "1" if add else "0", data],
        )
        return bool(stored)


# ------------------------------------------------------------------------- redis:// URLs
def _pop_namespace(url: BackendURL, override: str | None) -> str:
    """The ``namespace`` option, read even when overridden (so it is not "unknown")."""
    from_url = url.pop_str("namespace", DEFAULT_NAMESPACE) or ""
    return from_url if override is None else override


def _redis_db(url: BackendURL) -> int:
    path = url.path.strip("/")
    if not path:
        return 0
    if not path.isdigit() or not path.isascii():
        raise url.error(f"the path names the database, a whole number: got {url.path!r}")
    return int(path)


def _owning(
    client: redis.Redis,
    url: BackendURL,
    *,
    namespace: str,
    capacity: int | None,
    max_value_size: int | None,
    ttl_resolution: float,
    server_evicts: bool = False,
) -> RedisBackend:
    """A backend that owns ``client`` (closes it), or ``client`` closed if building fails."""
    try:
        return RedisBackend(
            client,
            namespace=namespace,
            capacity=capacity,
            max_value_size=max_value_size,
            ttl_resolution=ttl_resolution,
            server_evicts=server_evicts,
            name=url.safe,
            close_client=True,
        )
    except BaseException:
        client.close()
        raise


def redis_from_url(
    url: BackendURL, *, clock: Clock | None = None, namespace: str | None = None
) -> RedisBackend:
    """``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS), or
    ``unix:///path/to/redis.sock[?db=N]``.

    Options: ``namespace`` (default ``cachespec``; the ``namespace`` argument overrides it),
    ``timeout`` (seconds to connect and to wait for each reply, default 5), ``capacity`` (an
    exact-LRU namespace of that many entries; default unbounded), ``max_value_size`` (bytes;
    default no limit), ``eviction`` (``none``, the default, or ``server`` for a server that
    evicts by memory: see ``server_evicts``), ``password_env`` / ``password_file`` (the
    password from an environment variable or a file, not the URL). Any other option is a
    ConfigurationError. A user name and password in the URL are percent-decoded.

    ``clock`` is ignored: a real server expires keys on its own clock (the harness moves that
    clock with libfaketime, not through this argument).

    redis-py's retries are off: a call that cannot reach the server raises
    ``BackendUnavailable`` within about ``timeout`` instead of backing off and retrying, and
    a non-idempotent call (``add``, an evicting write) is never sent twice. The next call
    reconnects.
    """
    del clock  # the server's own clock governs expiry
    is_unix = url.scheme == "unix"
    if is_unix:
        url.expect(host=False, path=True)
        if url.path in ("", "/"):
            raise url.error("unix:// needs the socket's path: unix:///path/to/redis.sock")
        db = url.pop_int("db", default=0, minimum=0) or 0
    else:
        db = _redis_db(url)
        if url.port == 0:
            # Port 0 asks the kernel for any free port when binding; no server listens on it.
            # Refused, not read as "no port given" (6379): that would reach another server.
            raise url.error("port 0 is not a server's port; give its port, or none for 6379")
    chosen_namespace = _pop_namespace(url, namespace)
    timeout = url.pop_float("timeout", default=DEFAULT_TIMEOUT, minimum=0.0)
    if not timeout > 0:
        raise url.error(f"option timeout={timeout} must be more than 0 seconds")
    capacity = url.pop_int("capacity", default=None, allow_none=True, minimum=1)
    max_value_size = url.pop_int("max_value_size", default=None, allow_none=True, minimum=0)
    server_evicts = url.pop_choice("eviction", ("none", "server"), "none") == "server"
    password = url.pop_password()
    url.expect_no_options()
    username = unquote(url.username) if url.username else None
    no_retries = Retry(NoBackoff(), 0)
    if is_unix:
        client = redis.Redis(
            unix_socket_path=unquote(url.path),
            db=db,
            username=username,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=no_retries,
        )
    else:
        client = redis.Redis(
            host=url.host or "localhost",
            port=6379 if url.port is None else url.port,
            db=db,
            username=username,
            password=password,
            ssl=url.scheme == "rediss",
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=no_retries,
        )
    return _owning(
        client,
        url,
        namespace=chosen_namespace,
        capacity=capacity,
        max_value_size=max_value_size,
        ttl_resolution=REDIS_TTL_RESOLUTION,
        server_evicts=server_evicts,
    )


# ---------------------------------------------------------------------------- fakeredis
@functools.cache
def _fakeredis_kit() -> tuple[Any, Any, Any]:
    """fakeredis's classes, and our clocked variants of two of them.

    Built on first use so that fakeredis is imported only when it is used. Returns
    ``(fakeredis module, ClockedConnection, make_server)``.

    The hook, in fakeredis 2.41: before every command a socket stamps each database of its
    server with the time, ``db.time = time.time()``, and key expiry (SET PX, PTTL, the
    ``expireat < db.time`` test) reads ``db.time`` for the rest of that command. A
    ``ClockedDatabase`` ignores the stamp and snapshots its server's clock instead, so the
    clock is read once per command (a script sees one instant, as on Redis). ``TIME`` reads
    ``time.time()`` directly, so a ``ClockedSocket`` answers it from the same snapshot. Both
    hooks belong to one server: no module attribute is patched, and servers on different
    clocks, or on real time, do not see each other's clocks.

    Not covered (fakeredis reads ``time.time()`` itself there): hash-field TTLs, stream IDs,
    client and ACL ages, CLIENT PAUSE. This adapter uses none of them.
    """
    import fakeredis  # noqa: PLC0415 - optional dependency, imported when used
    from fakeredis._core import Database  # noqa: PLC0415 - private: the time hook
    from fakeredis._socket import FakeSocket  # noqa: PLC0415 - private: the TIME hook

    class ClockedDatabase(Database):
        """A fakeredis database whose notion of "now" is an injected clock's."""

        def __init__(self, lock: threading.Lock, clock: Clock) -> None:
            self._clock = clock
            self._now = float(clock())
            super().__init__(lock)

        @property
        def time(self) -> float:
            return self._now

        @time.setter
        def time(self, _wall_clock: float) -> None:
            # fakeredis passes time.time() here before each command: take the clock's reading.
            self._now = float(self._clock())

    class ClockedSocket(FakeSocket):
        def time(self) -> list[bytes]:
            """``TIME`` from the command's clock snapshot, truncated to microseconds."""
            micros = math.floor(self._db.time * 1_000_000)
            seconds, micros = divmod(micros, 1_000_000)
            return [str(seconds).encode(), str(micros).encode()]

    class ClockedConnection(fakeredis.FakeRedisConnection):
        def _connect(self) -> Any:
            sock = super()._connect()
            if type(sock) is not FakeSocket:  # pragma: no cover - a fakeredis we do not know
                raise RuntimeError(
                    f"fakeredis {fakeredis.__version__}: unexpected socket class "
                    f"{type(sock).__name__}; cachespec's clock hook supports fakeredis 2.x"
                )
            # Same object, same state; only the TIME command is answered differently.
            sock.__class__ = ClockedSocket
            return sock

    def make_server(clock: Clock | None) -> Any:
        server = fakeredis.FakeServer(version=(7, 0))  # the Redis this project runs
        if clock is not None:
            lock = server.lock
            server.dbs = defaultdict(lambda: ClockedDatabase(lock, clock))
        return server

    return fakeredis, ClockedConnection, make_server


_fake_servers_lock = threading.Lock()
_fake_server_default: list[Any] = []
# One server per clock, for as long as the clock object lives. A clock that cannot be weakly
# referenced (a builtin such as time.monotonic) is held for the life of the process.
_fake_servers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_fake_servers_pinned: dict[Any, Any] = {}


def _fake_server(clock: Clock | None) -> Any:
    _, _, make_server = _fakeredis_kit()
    with _fake_servers_lock:
        if clock is None:
            if not _fake_server_default:
                _fake_server_default.append(make_server(None))
            return _fake_server_default[0]
        try:
            server = _fake_servers.get(clock)
        except TypeError:  # not weakly referenceable
            server = _fake_servers_pinned.get(clock)
            if server is None:
                server = _fake_servers_pinned[clock] = make_server(clock)
            return server
        if server is None:
            server = _fake_servers[clock] = make_server(clock)
        return server


def fakeredis_client(clock: Clock | None = None) -> redis.Redis:
    """A ``fakeredis.FakeRedis`` client on the fake server that follows ``clock``.

    ``clock=None``: one process-wide server on real time (fakeredis's own behaviour).
    Otherwise one server per clock object, shared by every client made with that same
    object (so two namespaces of one conformance session share a store, as on a real
    server), and kept while the clock lives. Key expiry and ``TIME`` on that server read
    ``clock()`` once per command; the clock must never go backwards. Pass a callable object
    or a function: a bound method is a new object at each attribute access, so each such
    access gets a server of its own once the previous one is collected.
    """
    fakeredis, clocked_connection, _ = _fakeredis_kit()
    server = _fake_server(clock)
    if clock is None:
        return fakeredis.FakeRedis(server=server)  # type: ignore[no-any-return]
    return fakeredis.FakeRedis(server=server, connection_class=clocked_connection)  # type: ignore[no-any-return]


def fakeredis_from_url(
    url: BackendURL, *, clock: Clock | None = None, namespace: str | None = None
) -> RedisBackend:
    """``fakeredis://?namespace=...&capacity=N&max_value_size=B``: the Redis adapter over fakeredis.

    The same :class:`RedisBackend` code as for a real server, on an in-process fakeredis
    server that follows ``clock`` (see :func:`fakeredis_client`). ``capacity`` needs Lua in
    fakeredis: ``pip install 'fakeredis[lua]'`` (lupa). TTL resolution:
    :data:`FAKEREDIS_TTL_RESOLUTION`.
    """
    url.expect(host=False, path=False)
    chosen_namespace = _pop_namespace(url, namespace)
    capacity = url.pop_int("capacity", default=None, allow_none=True, minimum=1)
    max_value_size = url.pop_int("max_value_size", default=None, allow_none=True, minimum=0)
    url.expect_no_options()
    client = fakeredis_client(clock)
    return _owning(
        client,
        url,
        namespace=chosen_namespace,
        capacity=capacity,
        max_value_size=max_value_size,
        ttl_resolution=FAKEREDIS_TTL_RESOLUTION,
    )
