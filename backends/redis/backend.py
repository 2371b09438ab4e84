"""The Redis backend: :class:`RedisBackend`, a plain namespace, and what every kind shares.

:class:`RedisBackend` is the class users build and check against. Without ``capacity`` it is
a plain namespace, one native command per operation, defined here. ``RedisBackend(client,
capacity=N)`` builds a :class:`~cachespec.backends.redis.bounded.BoundedRedisBackend`
instead, a subclass that overrides every data operation with a Lua script call keeping an
exact LRU (as dogpile.cache's Redis Sentinel and Cluster backends subclass its Redis
backend). Construction, errors and the compare operations are shared.

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
:data:`~cachespec.spec.REDIS_SERVER_EVICTION` (defined in spec/eviction.py, beside the
other server profiles), which says what such a server keeps: no particular
entry, at no particular moment. Redis's ``allkeys-lru`` samples keys (docs/facts.md: 63-82% of
its evictions match a true LRU's), its LRU clock ticks once a second, its eviction pool keeps
candidates scored in earlier rounds, and an eviction that overruns its time budget goes on
from a timer between later commands: the suite saw an entry hit and then miss at the next
read, with no write between. A namespace opened with a ``capacity`` is an exact LRU kept by
Lua scripts on the server; see :mod:`.bounded`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, TypeVar, cast

import redis
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, OutOfMemoryError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cachespec.spec import (
    NO_VALUE,
    REDIS_SERVER_EVICTION,
    EvictionProfile,
    Guarantees,
    NoEviction,
    NoValue,
)

from ..contract import (
    Backend,
    BackendFull,
    BackendUnavailable,
    CacheError,
    ConfigurationError,
    check_items,
    check_key,
    check_keys,
    check_limit,
    check_value,
)
from . import scripts
from .layout import encode, glob_escape, namespace_base
from .ttl import MAX_TTL, REDIS_TTL_RESOLUTION, px_ttl

__all__ = ["DEFAULT_NAMESPACE", "REDIS_SERVER_EVICTION", "UNAVAILABLE", "RedisBackend"]

DEFAULT_NAMESPACE: Final = "cachespec"

# Errors meaning "the server cannot serve us": refused, unreachable, too slow, or it refuses
# our credentials (AuthenticationError and BusyLoadingError are ConnectionError subclasses in
# redis-py; NOPERM is a ResponseError subclass). Any other error reply is a CacheError.
UNAVAILABLE: Final = (RedisConnectionError, RedisTimeoutError, NoPermissionError)

_Kind = TypeVar("_Kind", bound="RedisBackend")


class _ServerErrors:
    """Types the Redis errors of the block it guards as the contract's: no connection is
    :class:`BackendUnavailable`, an error reply a :class:`CacheError`. A class built once
    per backend, not ``@contextmanager``: it wraps every get and set, and a generator-based
    manager costs a microsecond more per call."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name  # the backend's, for messages (no reference back: no cycle)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if isinstance(exc, UNAVAILABLE):
            raise _unavailable(self._name, exc) from exc
        if isinstance(exc, ResponseError):
            raise _refused_command(self._name, exc) from exc


def _unavailable(name: str, exc: Exception) -> BackendUnavailable:
    return BackendUnavailable(f"{name}: Redis unavailable: {exc}")


def _refused_command(name: str, exc: ResponseError) -> CacheError:
    """Any other error reply, typed: a key of this namespace that holds another Redis type
    (WRONGTYPE: someone else's data), a script error. The cache layer falls through to the
    source on it, as on any CacheError."""
    return CacheError(f"{name}: Redis refused the command: {exc}")


class RedisBackend(Backend):
    """A namespace on a Redis server (or on fakeredis), through a redis-py client.

    Without ``capacity`` this class is the plain namespace: every operation is one native
    command (``GET``, ``MGET``, ``SET`` / ``SET NX`` with ``PX``, ``MSET``, ``UNLINK``), or
    one ``MULTI`` for a ``set_many`` with a TTL; only the compare operations are scripts.
    ``RedisBackend(client, capacity=N)`` builds a
    :class:`~cachespec.backends.redis.BoundedRedisBackend`, the subclass that keeps an exact
    LRU. Another subclass of this class is a plain namespace too, and takes no ``capacity``
    unless it subclasses ``BoundedRedisBackend``.

    ``client`` is a ``redis.Redis`` built with ``decode_responses=False`` (values are bytes).
    Construction PINGs the server, so an unreachable one fails here, with
    :class:`~cachespec.backends.BackendUnavailable`, not at first use. Any later call that
    cannot reach the server raises the same error; other server errors propagate as
    redis-py raised them.

    ``namespace`` (non-empty) prefixes every key; :meth:`clear` removes exactly this
    namespace's keys (``SCAN`` + ``UNLINK``, never ``FLUSHDB``). Two backends on one server
    with the same namespace see the same entries.

    ``server_evicts`` says that the server evicts by memory (a ``maxmemory`` with an
    evicting policy); the namespace then declares :data:`REDIS_SERVER_EVICTION` instead of
    :class:`~cachespec.spec.NoEviction`. It cannot be combined with a ``capacity``: the
    server could evict the bookkeeping that keeps the exact LRU.

    ``capacity=None`` (the default) never evicts. ``capacity=N`` makes the namespace an exact
    LRU of at most N live entries (:class:`~cachespec.spec.ExactLRU`), kept atomic on the
    server: see :class:`~cachespec.backends.redis.BoundedRedisBackend`. The server must
    run Lua (fakeredis needs ``lupa``: ``pip install 'fakeredis[lua]'``).

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
    :data:`~cachespec.backends.redis.REDIS_TTL_RESOLUTION` for Redis,
    :data:`~cachespec.backends.redis.FAKEREDIS_TTL_RESOLUTION` for fakeredis.
    ``name`` names the server in error messages (pass a redacted URL: ``BackendURL.safe``).
    ``close_client``: :meth:`close` closes the client too (the URL factories set it; a client
    you pass in stays yours by default).
    """

    __slots__ = (
        "_base",
        "_client",
        "_close_client",
        "_compare_delete_script",
        "_compare_set_script",
        "_execute",
        "_max_value_size",
        "_name",
        "_namespace",
        "_prefix",
        "guarantees",
    )

    def __new__(cls: type[_Kind], *args: Any, **options: Any) -> _Kind:
        """A :class:`~cachespec.backends.redis.BoundedRedisBackend` when this class itself
        is given a ``capacity``; otherwise an instance of ``cls``. The arguments are
        :meth:`__init__`'s, which checks them."""
        if cls is not RedisBackend or options.get("capacity") is None:
            return object.__new__(cls)
        # Imported here, not above: bounded.py subclasses this class, so imports this module.
        from .bounded import BoundedRedisBackend  # noqa: PLC0415

        return cast(_Kind, object.__new__(BoundedRedisBackend))

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
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
        # ``with self._server_errors:`` around every command (see _ServerErrors).
        self._server_errors = _ServerErrors(self._name)
        if not isinstance(namespace, str) or not namespace:
            raise ConfigurationError(
                f"{self._name}: namespace must be a non-empty str, got {namespace!r} "
                "(the namespace is what keeps clear() off other tenants' keys)"
            )
        check_limit("capacity", capacity, minimum=1, owner=self._name)
        check_limit("max_value_size", max_value_size, minimum=0, owner=self._name)
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
        self._max_value_size = max_value_size
        self._base = self._namespace_base(namespace)
        self._prefix = self._base + b":"
        # register_script only hashes the source; the scripts are loaded below.
        self._compare_set_script, self._compare_delete_script = self._register_scripts(
            client, capacity
        )
        # Loaded now so that the first call is one round trip (EVALSHA), and so that a server
        # without Lua fails here (bounded) or is known here (plain) rather than at first use.
        self._ping()
        try:
            compare_and_set = self._load_scripts()
        except UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        self.guarantees = Guarantees(
            ttl_resolution=ttl_resolution,
            eviction=self._eviction(server_evicts),
            max_value_size=max_value_size,
            max_ttl=MAX_TTL,
            # redis-py's connection pool is thread-safe, and every operation is one atomic
            # command or script on the server (add is SET NX; the compare operations and
            # every operation of a bounded namespace are scripts).
            thread_safe=True,
            compare_and_set=compare_and_set,
        )

    # --------------------------------------------------- what a bounded namespace overrides
    def _register_scripts(
        self, client: redis.Redis | redis.RedisCluster, capacity: int | None
    ) -> tuple[Script, Script]:
        """Keep what this kind needs of ``capacity`` and register its scripts with ``client``
        (hashing only, no round trip); return its compare-and-set and compare-and-delete
        scripts."""
        if capacity is not None:  # only a subclass gets here: RedisBackend itself dispatches
            raise ConfigurationError(
                f"{self._name}: {type(self).__name__} is a plain namespace, without capacity "
                f"(got {capacity!r}); a bounded namespace subclasses BoundedRedisBackend"
            )
        return client.register_script(scripts.COMPARE_SET), client.register_script(
            scripts.COMPARE_DELETE
        )

    def _load_scripts(self) -> bool:
        """Load the two compare scripts (after the PING); return whether the server runs Lua.

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

    # ------------- what a namespace on a cluster overrides (cluster.py), with _read_many below
    def _namespace_base(self, namespace: str) -> bytes:
        """What every key of the namespace starts with (:mod:`.layout`)."""
        return namespace_base(namespace)

    def _mset(self, named: list[tuple[bytes, bytes]], ms: int | None) -> None:
        """Write every ``(name, data)`` with the TTL ``ms`` (None: none), in one round trip."""
        if ms is None:
            # MSET: one command, atomic, and like SET it drops old TTLs.
            self._execute("MSET", *[part for pair in named for part in pair])
            return
        # MSET takes no TTL: one SET PX per key, sent in one round trip. MULTI/EXEC rather
        # than a bare pipeline: the batch is applied whole, never interleaved with other
        # clients' commands, and a connection lost before EXEC applies none of it. It costs
        # two more (tiny) commands in the same round trip.
        pipe = self._client.pipeline(transaction=True)
        queue: Callable[..., Any] = pipe.execute_command  # unannotated in redis-py
        for name, data in named:
            queue("SET", name, data, "PX", ms)
        pipe.execute()

    def _unlink(self, names: list[bytes]) -> None:
        """Delete ``names`` (at least one): one ``UNLINK``, one round trip."""
        self._execute("UNLINK", *names)

    def _scan(self, pattern: bytes) -> Iterator[list[bytes]]:
        """The keys matching ``pattern``, a page at a time (``SCAN``)."""
        cursor = 0
        while True:
            cursor, names = self._client.scan(cursor, match=pattern, count=1000)
            if names:
                yield cast(list[bytes], names)  # decode_responses=False: keys are bytes
            if cursor == 0:
                return

    def _eviction(self, server_evicts: bool) -> EvictionProfile:
        """The eviction profile this namespace declares (see the module docstring)."""
        return REDIS_SERVER_EVICTION if server_evicts else NoEviction()

    def _compare_keys(self, name: bytes) -> list[bytes]:
        """The ``KEYS`` of a compare script on the entry ``name``."""
        return [name]

    def _ping(self) -> None:
        """PING: the first command, which opens a connection and so SELECTs the database.

        A server with fewer databases refuses the SELECT. Reported here, by itself: the
        script loading that follows reads a server error as a server without Lua. How many
        databases a server has is its own setting (16 by default), so only the server can
        say that the index is too big; any other server error propagates unchanged."""
        try:
            self._client.ping()
        except UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        except ResponseError as exc:
            if "DB index is out of range" not in str(exc):
                raise
            db = self._client.get_connection_kwargs().get("db", 0)
            raise ConfigurationError(
                f"{self._name}: database {db} is out of range for this server ({exc}); "
                "Redis has databases 0-15 unless its 'databases' setting says otherwise"
            ) from exc

    def __repr__(self) -> str:
        return f"RedisBackend({self._name!r}, namespace={self._namespace!r})"

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def key_prefix(self) -> bytes:
        """The bytes every entry's Redis key starts with (``{namespace}:``)."""
        return self._prefix

    def _unavailable(self, exc: Exception) -> BackendUnavailable:
        return _unavailable(self._name, exc)

    def _refused_command(self, exc: ResponseError) -> CacheError:
        return _refused_command(self._name, exc)

    # ----------------------------------------------------------------- compare and set
    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        self._offers_compare("compare_and_set")
        data = check_value(check_key(key), value, self._max_value_size)
        expected = check_value(key, expected)  # never stored: no size limit
        ms = px_ttl(ttl)
        name = self._prefix + encode(key)
        with self._server_errors:
            replaced = self._compare_set_script(
                keys=self._compare_keys(name),
                args=[expected, data, "" if ms is None else ms],
            )
        return bool(replaced)

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        self._offers_compare("compare_and_delete")
        expected = check_value(check_key(key), expected)
        name = self._prefix + encode(key)
        with self._server_errors:
            deleted = self._compare_delete_script(keys=self._compare_keys(name), args=[expected])
        return bool(deleted)

    def _offers_compare(self, operation: str) -> None:
        if not self.guarantees.compare_and_set:
            raise NotImplementedError(
                f"{self._name}: {operation} needs Lua scripting, which this server does not "
                "run; fakeredis runs Lua only with lupa installed (pip install 'fakeredis[lua]')"
            )

    def close(self) -> None:
        """Close the client if this backend created it (the URL factories do)."""
        if self._close_client:
            self._client.close()

    # ---------------------------------------------------------------------------- reads
    def get(self, key: str) -> bytes | NoValue:
        name = self._prefix + encode(check_key(key))
        with self._server_errors:
            value = self._read_one(name)
        return NO_VALUE if value is None else value

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = check_keys(keys)
        if not wanted:
            return {}
        prefix = self._prefix
        names = [prefix + key.encode("utf-8", "surrogatepass") for key in wanted]  # encode()
        with self._server_errors:
            values = self._read_many(names)
        return {key: value for key, value in zip(wanted, values, strict=True) if value is not None}

    # How a namespace reads, the one thing its kinds do differently (a bounded namespace
    # reads through a script that counts the read as a use).
    def _read_one(self, name: bytes) -> bytes | None:
        value: bytes | None = self._execute("GET", name)
        return value

    def _read_many(self, names: list[bytes]) -> list[bytes | None]:
        values: list[bytes | None] = self._execute("MGET", *names)  # one command, one round trip
        return values

    # --------------------------------------------------------------------------- writes
    def _prepared(
        self, key: str, value: bytes, ttl: float | None
    ) -> tuple[bytes, int | None, bytes]:
        """A single write's checked value, its TTL in ms and its key on the server."""
        data = check_value(check_key(key), value, self._max_value_size)
        return data, px_ttl(ttl), self._prefix + encode(key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        data, ms, name = self._prepared(key, value, ttl)
        with self._server_errors:
            try:
                if ms is None:
                    # A plain SET drops any TTL the key had (docs/facts.md), as set(ttl=None)
                    # must.
                    self._execute("SET", name, data)
                else:
                    self._execute("SET", name, data, "PX", ms)
            except OutOfMemoryError as exc:
                raise self._refused("set", [key], [name], exc) from exc

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        data, ms, name = self._prepared(key, value, ttl)
        with self._server_errors:
            try:
                # SET NX is atomic on the server: of concurrent adds exactly one gets OK; the
                # others get nil and change nothing. An expired key counts as absent.
                if ms is None:
                    stored = self._execute("SET", name, data, "NX")
                else:
                    stored = self._execute("SET", name, data, "NX", "PX", ms)
            except OutOfMemoryError as exc:
                raise self._refused("add", [key], [], exc) from exc  # SET NX changed nothing
        return bool(stored)

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = check_items(items, self._max_value_size)
        ms = px_ttl(ttl)
        if not checked:
            return
        prefix = self._prefix
        named = [(prefix + encode(key), data) for key, data in checked]
        with self._server_errors:
            try:
                self._mset(named, ms)
            except OutOfMemoryError as exc:  # MSET, or a SET that aborted the whole MULTI
                names = [name for name, _ in named]
                raise self._refused("set_many", [key for key, _ in checked], names, exc) from exc

    def _refused(
        self, op: str, keys: list[str], names: list[bytes], exc: OutOfMemoryError
    ) -> BackendFull:
        """The error for a write Redis refused for want of memory, once ``names`` are gone.

        Redis refuses a write whole (``SET``, ``MSET``, a ``MULTI`` it aborts) and keeps the
        old values; the contract says a refused write leaves each key with the new value or
        nothing, never the old one (a caller that was replacing a stale value must not keep
        reading it). ``UNLINK`` frees memory, so Redis allows it when full. A refused ``add``
        changed nothing and passes no names.
        """
        if names:
            try:
                self._unlink(names)
            except UNAVAILABLE as lost:
                raise self._unavailable(lost) from exc
        gone = "; their old values were deleted" if names else "; nothing was written"
        return BackendFull(
            f"{self._name}: {op}: the server refused to store {keys!r} for want of memory "
            f"({exc}){gone}",
            keys,
        )

    def delete(self, key: str) -> None:
        name = self._prefix + encode(check_key(key))
        with self._server_errors:
            # UNLINK: deleting a missing key is not an error; a large value is freed in
            # the background instead of blocking the server.
            self._execute("UNLINK", name)

    def delete_many(self, keys: Iterable[str]) -> None:
        doomed = check_keys(keys)
        if not doomed:
            return  # UNLINK with no key is a syntax error
        prefix = self._prefix
        names = [prefix + encode(key) for key in doomed]
        with self._server_errors:
            self._unlink(names)

    def clear(self) -> None:
        """Remove every key of this namespace, and nothing else.

        Swept with ``SCAN MATCH {namespace}*`` (its glob characters escaped), ``UNLINK`` per
        page: O(keys in the database), in pages, never ``FLUSHDB``. Entries written during
        the sweep may or may not survive it. The sweep also removes a bounded namespace's
        bookkeeping (same base), so it leaves either kind consistent.
        """
        pattern = glob_escape(self._base) + b"*"
        with self._server_errors:
            for names in self._scan(pattern):
                self._unlink(names)
