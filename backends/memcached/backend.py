"""The memcached backend: ``memcached://host[:port]`` over pymemcache, every call answered.

memcached is a shared server with a text protocol, a 250-byte key limit, a coarse clock, an
item size limit and no way to list keys. This adapter maps the contract onto it as follows;
each point is a decision, explained where it is implemented.

Replies (:mod:`.client`, :mod:`.replies`)
    Every command waits for the server's answer: with ``noreply`` pymemcache reports success
    for a set the server refused (docs/facts.md).

Keys (:mod:`.keys`, :meth:`MemcachedBackend.server_key`)
    ``<namespace>:<generation>:<body>`` (``<namespace>:-:<body>`` without ``clear``), the
    body being the key itself or ``#`` plus its SHA-256: never truncated, never shared by
    two keys.

TTLs (:mod:`.expiry`)
    An exptime at least ``ttl + 2.1`` s away on memcached's drifting whole-second clock, so
    that no entry dies before its TTL; past the 30-day relative limit, an absolute time
    computed from the *server's* clock.

Values (:data:`ITEM_OVERHEAD_MARGIN`)
    ``max_value_size`` defaults to the server's item size limit (``stats settings``) minus a
    margin that covers memcached's per-item overhead for our longest key: a larger value is
    refused before anything is sent, so memcached never gets to delete the old entry as it
    does on an oversize ``set``.

clear (:meth:`MemcachedBackend.clear`)
    A namespace *generation* counter kept in memcached; every data key embeds it and ``clear``
    increments it. Old entries become unreachable and age out; nothing else is touched. Every
    call must see the counter, which costs a read a second key. ``clear=none`` (URL) or
    ``clearable=False`` gives a namespace without ``clear`` (declared: ``Guarantees(clear=
    False)``, and ``clear`` raises :class:`~cachespec.backends.Unsupported`), whose keys are
    ``<namespace>:-:<body>`` and whose calls touch only their own keys.

compare_and_set, compare_and_delete (:meth:`MemcachedBackend.compare_and_set`)
    ``gets`` (the value and its CAS token), compare in Python, then ``cas`` (text protocol) or
    the meta delete ``md <key> C<token>``: the server acts only if the item's token is still
    the one read, so nothing lands between the comparison and the write. A stale token means
    some write landed in between; since memcached gives every write a new token, even one of
    the same bytes, the adapter reads again and retries while the value still matches.

Threads
    A pool of connections (:class:`.client.PipelinedClient`): one per concurrent caller.

pymemcache is imported when the first backend is built, never at import time, so the package
works without the ``memcached`` extra.
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, NoReturn, TypeVar

from cachespec.spec import (
    MEMCACHED_EVICTION,
    NO_VALUE,
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
    Unsupported,
    check_items,
    check_key,
    check_keys,
    check_value,
)
from .driver import Client, load_driver
from .errors import raise_for
from .expiry import (
    RELATIVE_EXPTIME_LIMIT,
    TICK_SLACK,
    TTL_RESOLUTION,
    absolute_exptime,
    check_ttl,
    longest_ttl,
    relative_exptime,
)
from .keys import (
    DIGEST_MARKER,
    GENERATION_DIGITS,
    MAX_KEY_BYTES,
    NAMESPACE_PATTERN,
    key_body,
    plain_key_budget,
    server_key,
)
from .replies import (
    MD_OUTCOMES,
    MIN_VERSION,
    is_error_line,
    md_line,
    reply_error,
    reply_lines,
    server_version,
    split_counter,
    stats_time,
)

__all__ = [
    "CAS_ATTEMPTS",
    "DEFAULT_NAMESPACE",
    "DEFAULT_NAMESPACE_REFRESH",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "DIGEST_MARKER",
    "ITEM_OVERHEAD_MARGIN",
    "MAX_KEY_BYTES",
    "NAMESPACE_PATTERN",
    "RELATIVE_EXPTIME_LIMIT",
    "TICK_SLACK",
    "TTL_RESOLUTION",
    "MemcachedBackend",
    "key_body",
    "relative_exptime",
]

DEFAULT_PORT = 11211
_MAX_PORT = 65535  # TCP ports are 16 bits
DEFAULT_NAMESPACE = "cachespec"
DEFAULT_TIMEOUT = 5.0
DEFAULT_NAMESPACE_REFRESH = 0.0
"""Exact by default: see :class:`MemcachedBackend`, "clear and other clients", for why."""

_GENERATION_RE = re.compile(rb"[0-9]{1,20}")

_T = TypeVar("_T")

CAS_ATTEMPTS = 16
"""How many ``gets`` + ``cas`` (or ``md``) rounds a compare-and-X makes before giving up.

A round fails only when another write landed on the key between its ``gets`` and its ``cas``
*and* the key still holds the expected bytes (a rewrite of the same value): otherwise the
answer is ``False`` at once. Sixteen such writes in a row is not contention a cache sees; the
call then raises :class:`~cachespec.backends.CacheError` rather than answer wrongly."""

# ---------------------------------------------------------------------------------- values
ITEM_OVERHEAD_MARGIN = 512
"""Bytes kept free below the server's ``item_size_max`` for everything that is not the value.

memcached 1.6 stores an item as a 48-byte header, an 8-byte CAS, the key plus a NUL, 4 bytes
of client flags when they are not 0, and the value plus ``\\r\\n``, and refuses an item larger
than ``item_size_max`` (``-I``, default 1 MiB). So the largest value under a key of ``k`` bytes
is ``item_size_max - 59 - k`` (measured on 1.6.18 with ``-I`` 512k, 1m and 2m and keys of 1,
5, 100 and 250 bytes: exactly that; docs/facts.md's 1,048,512 B for a 5-byte key is this formula).
Our longest key is 250 bytes and we send flags 0: 309 bytes of overhead (313 with flags). 512
leaves about 200 bytes for a build with a larger header. The limit at ``-I 1m``: 1,048,064 B.
"""

_DEFAULT_ITEM_SIZE_MAX = 1024 * 1024  # assumed when the server does not report its settings


class _Generation(NamedTuple):
    """The namespace generation as this client last saw it."""

    raw: bytes  # the counter's value exactly as memcached returned it
    prefix: str  # "<namespace>:<digits>:", the start of every data key
    checked_at: float  # a monotonic time at which the server held this value


class _Closed:
    """Stands in for the client after :meth:`MemcachedBackend.close`: every call fails."""

    def __init__(self, label: str) -> None:
        self._label = label

    def __getattr__(self, name: str) -> NoReturn:
        raise BackendUnavailable(f"{self._label}: this backend was closed")


class MemcachedBackend(Backend):
    """A memcached server as a cachespec backend (the decisions are in the module docstring).

    Construction talks to the server (``stats settings``, ``stats``, the generation counter)
    and raises :class:`BackendUnavailable` if it does not answer within ``timeout``.

    host, port
        The server. ``label`` names it in messages (default ``memcached://host:port``).
    namespace
        ``[A-Za-z0-9_.-]{1,64}``. Data keys start with ``<namespace>:<generation>:``, the
        counter is ``<namespace>:generation``: different namespaces never share a key.
    timeout
        Seconds for connecting and for each reply. A slower server is
        :class:`BackendUnavailable`, and the call may or may not have taken effect.
    max_value_size
        Default: the server's ``item_size_max`` minus :data:`ITEM_OVERHEAD_MARGIN`. A larger
        value is a :class:`ConfigurationError`: it would let memcached refuse a ``set``, and
        memcached deletes the old entry when it does.
    namespace_refresh
        For how long (seconds of real monotonic time) a write may trust the cached generation;
        ``0``, the default, reads it before every write. See "clear and other clients".
    clearable
        ``True`` (the default): ``clear`` by a generation counter, as below. ``False`` (URL
        option ``clear=none``): no counter; data keys are ``<namespace>:-:<body>`` (``-`` is
        never a generation, so the two layouts never share a key), a ``get`` is a one-key
        ``get``, a write goes alone, ``clear`` raises :class:`~cachespec.backends.Unsupported`
        and the guarantees say ``clear=False``. For an application that never clears, this
        is the raw client's cost. ``namespace_refresh`` has no use then and is refused.
    monotonic
        The clock for ``namespace_refresh`` (tests inject one). It is not a TTL clock: TTLs run
        on the server's clock, which nothing in this process can move.
    server_evicts
        The server runs short of memory (URL option ``eviction=server``): the namespace
        declares :data:`~cachespec.spec.MEMCACHED_EVICTION` instead of no eviction. A write
        memcached refuses for want of memory raises :class:`~cachespec.backends.BackendFull`
        (whatever this option says); a read that finds the namespace counter evicted and
        cannot create it again answers with misses, which is what that read would find.

    clear and other clients
        memcached can neither list keys nor delete by prefix, so ``clear`` increments a
        generation counter kept in memcached (``incr``). Every data key embeds the
        generation, so the old entries become unreachable: they are never returned again and
        stay in memory until they expire or are evicted. ``flush_all`` is never used: it
        would empty every other tenant of the server too.

        The counter is created with ``add`` from a random 63-bit value. If it is ever evicted
        or flushed, the next generation is a fresh random number, which does not meet an old
        one (chance per re-creation: clears so far / 2**63); the namespace then looks empty,
        as if every entry had been evicted.

        *Reads are exact.* ``get`` and ``get_many`` fetch the counter in the same round trip
        as the data (first: memcached answers a multi-key ``get`` in order) and fetch again
        under the server's generation if it is not the cached one. A read that starts after
        any client's ``clear`` returned sees none of the entries written before it. Cost: one
        round trip; two right after a clear made by another client, which is unavoidable
        since the data keys depend on the generation.

        *Writes* (``set``, ``set_many``, ``add``, ``delete``, ``delete_many``, and the
        compare-and-X operations) need the generation before they are sent. With
        ``namespace_refresh=0`` the plain writes send a ``get`` of the counter ahead of
        themselves in the same round trip, under the generation this client last saw, and
        are sent again under the server's if the counter had moved (see ``_write``): exact,
        one round trip per write (two right after another client's clear). The
        compare-and-X operations read the counter first (two round trips, three for one that
        matches). With ``namespace_refresh=r > 0`` a write uses the cached generation when
        the server confirmed it (to a read, a write's check, or this client's own ``clear``)
        less than ``r`` seconds ago, without the counter, but for up to ``r`` seconds after a
        ``clear`` by *another* client, this client's writes may go to the old generation.
        Such a ``set`` returns normally and is never visible (a lost write); such a
        ``delete`` misses an entry written after the clear (a lost invalidation: that entry
        lives on until its TTL); such an ``add`` answers for the old generation (it may
        refuse an absent key, or succeed alongside another client's ``add``), and so does a
        compare-and-X (it may act on an entry the clear made unreachable). This client's own
        ``clear`` is seen by its next call, always.

        The default is ``0`` because the weakened form breaks promises this project checks
        (explicit invalidation bounds staleness at 0; ``add`` is atomic) in a way the declared
        :class:`~cachespec.spec.Guarantees` cannot express. Since plain writes carry the
        counter read in their own round trip, ``namespace_refresh > 0`` saves only the
        compare-and-X operations' extra round trip and a few bytes: it is kept for callers
        that set it, and rarely worth its lost writes.

    Declared guarantees
        ``ttl_resolution`` :data:`TTL_RESOLUTION`. ``max_value_size`` as above. ``max_ttl``:
        an absolute exptime must stay below 2**31 (the protocol's exptime is a signed 32-bit
        integer) for at least a year after construction: one year, less from 2036 on, but
        never less than the longest TTL sent in relative form (30 days - 3 s); a longer TTL
        is a ``ValueError`` and nothing is sent. ``thread_safe``: a pool of connections, and
        ``add`` is atomic in the server. ``compare_and_set``: ``gets`` + ``cas`` / ``md``
        with the CAS token (see the methods). ``eviction``: :class:`~cachespec.spec.NoEviction`,
        or with ``server_evicts`` :data:`~cachespec.spec.MEMCACHED_EVICTION`.
        memcached evicts per slab class (items of different sizes do not compete) with a
        segmented LRU in which an item read once is not protected and one read twice is
        (docs/facts.md); how many of *our* entries survive depends on ``-m``, the value sizes,
        other tenants and the slab layout, none of which the adapter controls, so no count can
        be promised for an arbitrary server. NoEviction holds on a server far above its use.
        On one that runs full (checked on a 2 MiB server the harness starts), memcached also
        refuses writes it cannot make room for, and an item read twice is protected only once
        a background thread has moved it to the warm segment: until then a write that needs
        room evicts it from the cold tail like any other.

    Errors
        Socket errors, timeouts and dropped connections are :class:`BackendUnavailable`;
        other failures that memcached reports are :class:`~cachespec.backends.CacheError`.
        pymemcache closes a connection after any error, so no reply is ever read out of
        order, and the cached generation changes only to a value the server has returned, so
        an error leaves nothing half-updated in the client. On the server, a multi-key write
        that fails may have applied some of its items: memcached has no multi-key atomicity.
    """

    __slots__ = (
        "_clearable",
        "_client",
        "_counter_key",
        "_counter_wire",
        "_driver",
        "_generation",
        "_label",
        "_lock",
        "_max_value_size",
        "_monotonic",
        "_namespace",
        "_plain_budget",
        "_refresh",
        "guarantees",
    )

    def __init__(
        self,
        host: str = "localhost",
        port: int = DEFAULT_PORT,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = DEFAULT_TIMEOUT,
        max_value_size: int | None = None,
        namespace_refresh: float = DEFAULT_NAMESPACE_REFRESH,
        monotonic: Clock = time.monotonic,
        label: str | None = None,
        server_evicts: bool = False,
        clearable: bool = True,
    ) -> None:
        # Checked here, not left to the driver: pymemcache would take a bad host or port to
        # the socket layer, and the failure would read as BackendUnavailable (a server that
        # is down) instead of an option to fix.
        if not isinstance(host, str) or not host:
            raise ConfigurationError(f"host must be a non-empty str, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= _MAX_PORT:
            raise ConfigurationError(f"port must be an int from 1 to {_MAX_PORT}, got {port!r}")
        for flag, given in (("server_evicts", server_evicts), ("clearable", clearable)):
            if not isinstance(given, bool):
                raise ConfigurationError(f"{flag} must be a bool, got {given!r}")
        if not isinstance(namespace, str) or not NAMESPACE_PATTERN.fullmatch(namespace):
            raise ConfigurationError(
                f"namespace must match {NAMESPACE_PATTERN.pattern} (no ':'), got {namespace!r}"
            )
        _check_seconds("timeout", timeout, allow_zero=False)
        _check_seconds("namespace_refresh", namespace_refresh, allow_zero=True)
        if namespace_refresh and not clearable:
            raise ConfigurationError(
                "namespace_refresh applies to the clear generation; a namespace without clear "
                "(clear=none) has no generation to refresh"
            )
        if max_value_size is not None and (
            isinstance(max_value_size, bool)
            or not isinstance(max_value_size, int)
            or max_value_size < 0
        ):
            raise ConfigurationError(f"max_value_size must be an int >= 0, got {max_value_size!r}")
        if not callable(monotonic):
            raise ConfigurationError(f"monotonic must be a callable, got {monotonic!r}")
        self._label = label or f"memcached://{_host_for_url(host)}:{port}"
        self._driver = load_driver()
        self._namespace = namespace
        self._counter_key = f"{namespace}:generation"
        self._counter_wire = self._counter_key.encode("ascii")
        # Data keys are "<namespace>:<up to 20 digits>:<body>" (or "<namespace>:-:<body>"):
        # at most 250 bytes in all.
        self._clearable = clearable
        self._plain_budget = plain_key_budget(namespace, GENERATION_DIGITS if clearable else 1)
        self._refresh = float(namespace_refresh)
        self._monotonic = monotonic
        self._max_value_size = 0  # set below, once the server has told its item size limit
        self._lock = threading.Lock()
        self._generation = _Generation(b"", "", -math.inf)  # replaced below, before any use
        self._client: Client = self._driver.pooled_client(
            (host, port),
            connect_timeout=timeout,
            timeout=timeout,
            no_delay=True,
            default_noreply=False,
            allow_unicode_keys=False,
        )
        try:
            settings = self._call("stats settings", self._client.stats, "settings")
            item_size_max = int(settings.get(b"item_size_max", _DEFAULT_ITEM_SIZE_MAX))
            server_time = self._server_time(require_meta=True)
            if clearable:
                self._load_generation()
            else:  # one fixed "generation", never read from the server nor refreshed
                self._generation = _Generation(b"-", f"{namespace}:-:", math.inf)
            safe_limit = item_size_max - ITEM_OVERHEAD_MARGIN
            if max_value_size is None:
                max_value_size = safe_limit
            elif max_value_size > safe_limit:
                raise ConfigurationError(
                    f"{self._label}: max_value_size={max_value_size} is over {safe_limit}, the "
                    f"largest value this server (item_size_max {item_size_max}) surely stores "
                    "under our longest key; memcached deletes the old entry when it refuses one"
                )
        except BaseException:
            self._client.close()
            raise
        self._max_value_size = max_value_size
        self.guarantees = Guarantees(
            ttl_resolution=TTL_RESOLUTION,
            eviction=MEMCACHED_EVICTION if server_evicts else NoEviction(),
            max_value_size=max_value_size,
            max_ttl=float(longest_ttl(server_time)),
            thread_safe=True,
            compare_and_set=True,
            clear=clearable,
        )

    # -------------------------------------------------------------------------------- keys
    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def plain_key_budget(self) -> int:
        """The longest key (in characters) stored as itself rather than as a digest."""
        return self._plain_budget

    def server_key(self, key: str) -> str:
        """The memcached key ``key`` is stored under, in the generation this client last saw."""
        return self._generation.prefix + key_body(check_key(key), self._plain_budget)

    # ------------------------------------------------------------------------------- reads
    def get(self, key: str) -> bytes | NoValue:
        if self._clearable:
            check_key(key)
            return self._read([key]).get(key, NO_VALUE)
        name = server_key(self._generation.prefix, key_body(check_key(key), self._plain_budget))
        found: dict[bytes, bytes] = self._call("get", self._client.fetch, [name])
        return found.get(name, NO_VALUE)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = check_keys(keys)
        if not wanted:
            return {}
        return self._read(wanted)

    def _read(self, keys: list[str]) -> dict[str, bytes]:
        """Fetch ``keys`` and the generation counter in one ``get``, the counter first.

        If the counter is not the generation the keys were built with, the namespace was
        cleared (or the counter lost) since this client last looked: fetch again under the
        server's generation. Should the counter move again during that second fetch, a
        ``clear`` is running concurrently with this read, and the entries the second fetch
        found (under the generation the server held during this read) are a valid answer.
        """
        generation = self._generation
        budget = self._plain_budget
        names = {server_key(generation.prefix, key_body(key, budget)): key for key in keys}
        if not self._clearable:  # no counter to fetch
            found = self._call("get", self._client.fetch, list(names))
            return {names[name]: value for name, value in found.items()}
        counter = self._counter_wire
        sent_at = self._monotonic()
        found = self._call("get", self._client.fetch, [counter, *names])
        seen = found.pop(counter, None)
        if seen != generation.raw:
            try:
                fresh = self._adopt(seen, sent_at)
            except BackendFull:
                # The counter was evicted and the server has no room to create it again:
                # no entry of this namespace is reachable, so all misses is the answer.
                return {}
            if fresh.prefix != generation.prefix:
                names = {server_key(fresh.prefix, key_body(key, budget)): key for key in keys}
                sent_at = self._monotonic()
                found = self._call("get", self._client.fetch, [counter, *names])
                later = found.pop(counter, None)
                if later != fresh.raw:
                    # Evicted during this read and no room to create it: what the read found
                    # under the generation the server held meanwhile is still an answer.
                    with contextlib.suppress(BackendFull):
                        self._adopt(later, sent_at)
        elif self._refresh:
            self._confirm(generation, sent_at)
        return {names[name]: value for name, value in found.items()}

    # ------------------------------------------------------------------------------ writes
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        data = check_value(check_key(key), value, self._max_value_size)
        seconds = self._check_ttl(ttl)
        if self._clearable:
            (reply,) = self._store("set", b"set", [(key, data)], seconds)
        else:
            reply = self._store_one("set", b"set", key, data, seconds)
        if reply != b"STORED":
            raise CacheError(f"{self._label}: the server did not store key {key!r} ({reply!r})")

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """One ``set`` per item, pipelined in one round trip; raises if any item failed.

        A key the server answered ``NOT_STORED`` for is a
        :class:`~cachespec.backends.CacheError` naming it. memcached applies the items one
        by one: after an error some of them may be stored.
        """
        checked = check_items(items, self._max_value_size)
        seconds = self._check_ttl(ttl)
        if not checked:
            return
        replies = self._store("set_many", b"set", checked, seconds)
        refused = sorted(
            key for (key, _), reply in zip(checked, replies, strict=True) if reply != b"STORED"
        )
        if refused:
            raise CacheError(f"{self._label}: the server did not store keys {refused!r}")

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """memcached ``add``: atomic in the server; ``False``, and no change, if present.

        memcached does move the existing item up its LRU on a failed ``add``; that matters
        only to eviction, which this backend does not declare.
        """
        data = check_value(check_key(key), value, self._max_value_size)
        seconds = self._check_ttl(ttl)
        if self._clearable:
            (reply,) = self._store("add", b"add", [(key, data)], seconds)
        else:
            reply = self._store_one("add", b"add", key, data, seconds)
        if reply in (b"STORED", b"NOT_STORED"):
            return reply == b"STORED"
        raise CacheError(f"{self._label}: add({key!r}): unexpected reply {reply[:40]!r}")

    def delete(self, key: str) -> None:
        self.delete_many([check_key(key)])

    def delete_many(self, keys: Iterable[str]) -> None:
        doomed = check_keys(keys)
        if not doomed:
            return
        budget = self._plain_budget
        bodies = list(dict.fromkeys(key_body(key, budget) for key in doomed))

        def commands(prefix: str) -> bytes:
            return b"".join(b"delete " + server_key(prefix, body) + b"\r\n" for body in bodies)

        replies = self._write("delete", commands, [(None, b"")] * len(bodies))
        odd = [reply for reply in replies if reply not in (b"DELETED", b"NOT_FOUND")]
        if odd:
            raise CacheError(f"{self._label}: delete: unexpected reply {odd[0][:40]!r}")

    # ------------------------------------------------------------------- pipelined writes
    def _store(
        self, op: str, verb: bytes, items: Sequence[tuple[str, bytes]], seconds: float | None
    ) -> list[bytes]:
        """``verb`` (``set`` or ``add``) each item, in one round trip; the reply lines."""
        budget = self._plain_budget
        bodies = [key_body(key, budget) for key, _ in items]

        def commands(prefix: str) -> bytes:
            # The exptime is worked out for each send: an absolute one (a TTL over 30 days)
            # must not go stale over the round trip a resend follows.
            expire = self._exptime(seconds)
            return b"".join(
                b"%s %s 0 %d %d\r\n%s\r\n"
                % (verb, server_key(prefix, body), expire, len(data), data)
                for body, (_, data) in zip(bodies, items, strict=True)
            )

        return self._write(op, commands, items)

    def _store_one(
        self, op: str, verb: bytes, key: str, data: bytes, seconds: float | None
    ) -> bytes:
        """``verb`` one item without a generation (``clearable=False``): one command, one
        reply line, nothing else on the wire; the hot path of a namespace without clear."""
        name = server_key(self._generation.prefix, key_body(key, self._plain_budget))
        wire = b"%s %s 0 %d %d\r\n%s\r\n" % (verb, name, self._exptime(seconds), len(data), data)
        try:
            line: bytes = self._client.one_line(wire)
        except CacheError:
            raise
        except Exception as exc:  # as _call, but naming the user's key and value size
            self._raise_for(exc, op, key, (key, data))
        return line

    def _write(
        self,
        op: str,
        commands: Callable[[str], bytes],
        items: Sequence[tuple[str | None, bytes]],
    ) -> list[bytes]:
        """Send ``commands(prefix)``, one storage or delete command per item (user key and
        value, for messages), under the current generation; return their reply lines. One
        round trip unless a clear intervened.

        With ``namespace_refresh=0``, or a cached generation older than the refresh, the
        commands ride behind a ``get`` of the counter in one write (``get <counter>``, the
        commands, ``mn``; the meta no-op's ``MN`` ends the reply). memcached runs a
        connection's commands in order, so if the counter is this client's generation, the
        commands landed in it. If not, the namespace was cleared since this client last
        looked (or its counter lost): the commands landed under the old generation, where no
        reader looks, and are sent again under the server's. A ``clear`` from another client
        that lands between the ``get`` and the commands makes the write land in the old
        generation, as when the counter is read one round trip earlier: the write and the
        clear overlap, and the write took effect first.
        """
        count = len(items)
        generation = self._generation
        if not self._clearable or (
            self._refresh and self._monotonic() - generation.checked_at < self._refresh
        ):
            return self._send(op, commands(generation.prefix), items)
        sent_at = self._monotonic()
        wire = b"get " + self._counter_wire + b"\r\n" + commands(generation.prefix)

        def parse(reply: bytes) -> tuple[bytes | None, list[bytes]]:
            seen, rest = self._split_counter(op, reply)
            return seen, self._lines(op, rest, count)

        seen, lines = self._exchange(op, wire, parse)
        if seen != generation.raw:
            fresh = self._adopt(seen, sent_at)
            # The same number written differently (incr pads a shorter one with spaces)
            # is the same generation: sending again would answer an add with False after
            # it stored.
            if fresh.prefix != generation.prefix:
                return self._send(op, commands(fresh.prefix), items)
        elif self._refresh:
            self._confirm(generation, sent_at)
        return self._check_lines(op, lines, items)

    def _send(
        self, op: str, commands: bytes, items: Sequence[tuple[str | None, bytes]]
    ) -> list[bytes]:
        count = len(items)
        lines = self._exchange(op, commands, lambda reply: self._lines(op, reply, count))
        return self._check_lines(op, lines, items)

    def _exchange(self, op: str, wire: bytes, parse: Callable[[bytes], _T]) -> _T:
        """``wire`` and ``mn`` on one pooled connection, ``parse`` of the reply up to the
        ``MN`` that ends it (see :class:`.client.PipelinedClient`). ``parse`` runs before the
        connection goes back to the pool, so a reply it finds out of shape drops it."""
        result: _T = self._call(op, self._client.pipeline, wire, parse)
        return result

    def _split_counter(self, op: str, reply: bytes) -> tuple[bytes | None, bytes]:
        """Split the counter's ``get`` reply (``END``, or ``VALUE`` + data + ``END``) off."""
        split = split_counter(reply)
        if split is not None:
            return split
        if is_error_line(reply):
            line = reply.partition(b"\r\n")[0]
            driver = self._driver
            self._raise_for(reply_error(line, driver.error, driver.server_error), op, None, ())
        raise self._desynced(op, reply)

    def _lines(self, op: str, reply: bytes, count: int) -> list[bytes]:
        """The ``count`` reply lines of ``reply``, or an error if there are not exactly as
        many (raised inside ``_exchange``: the connection may hold more of the reply)."""
        lines = reply_lines(reply, count)
        if lines is None:
            raise self._desynced(op, reply)
        return lines

    def _check_lines(
        self, op: str, lines: list[bytes], items: Sequence[tuple[str | None, bytes]]
    ) -> list[bytes]:
        """Raise for an error line as pymemcache would, naming the item it answered."""
        driver = self._driver
        for line, (key, data) in zip(lines, items, strict=True):
            if is_error_line(line):
                error = reply_error(line, driver.error, driver.server_error)
                self._raise_for(error, op, key, (key, data))
        return lines

    def _desynced(self, op: str, reply: bytes) -> CacheError:
        return CacheError(
            f"{self._label}: {op}: unexpected reply {reply[:60]!r}; "
            "was the namespace counter written by something else?"
        )

    # ----------------------------------------------------------------------- atomic operations
    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        """``gets`` the entry; if it holds ``expected``, ``cas`` ``value`` with its token.

        Exchanges (``<name>`` is the memcached key ``set`` would use)::

            gets <name>                          -> END (missing or expired: False)
                                                 -> VALUE <name> <flags> <n> <token> / data / END
            cas <name> 0 <exptime> <n> <token>   -> STORED (True)
                                                 -> NOT_FOUND (gone since the gets: False)
                                                 -> EXISTS (token stale: read again)

        The server stores only if the item's token is still the one read, so no write lands
        between the comparison and the replacement. A stale token means a write landed in
        between. If the entry no longer holds ``expected`` the answer is ``False``, taken at
        the moment the other write made it so; if it does (the same bytes rewritten, which
        gets a new token too) ``False`` would be wrong, so the exchange is repeated, up to
        :data:`CAS_ATTEMPTS` times, after which the call raises
        :class:`~cachespec.backends.CacheError`.

        Value and TTL replace the old ones exactly as :meth:`set` does: the same size check,
        ``max_ttl`` check and exptime (computed just before each ``cas``, so that an absolute
        exptime is as fresh as ``set``'s). ``expected`` is type-checked only: a value over
        ``max_value_size`` is never stored here, so it simply does not match. Arguments are
        checked before anything is sent. The ``gets`` moves a hit up memcached's LRU, which
        matters only to eviction, which this backend does not declare.
        """
        data = check_value(check_key(key), value, self._max_value_size)
        expected = check_value(key, expected)
        seconds = self._check_ttl(ttl)
        name = self._write_prefix() + key_body(key, self._plain_budget)
        for _ in range(CAS_ATTEMPTS):
            token = self._token_if_holds("compare_and_set", name, expected)
            if token is None:
                return False
            expire = self._exptime(seconds)
            stored = self._call(
                "compare_and_set",
                self._client.cas,
                name,
                data,
                token,
                expire,
                noreply=False,
                key=key,
            )
            if stored is not False:  # True: STORED; None: NOT_FOUND, it went since the gets
                return stored is True
        raise self._contended("compare_and_set", key)

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        """``gets`` the entry; if it holds ``expected``, delete it with the meta command
        ``md <name> C<token>`` (memcached >= 1.6), which deletes only if the token matches.

        Exchanges (verified on memcached 1.6.18)::

            gets <name>           -> END (missing or expired: False) | VALUE ... <token> ...
            md <name> C<token>    -> HD (deleted: True)
                                  -> NF (gone since the gets: False)
                                  -> EX (token stale: read again, as compare_and_set does)

        The text protocol's ``delete`` takes no token, and a ``cas`` to a tombstone value would
        leave an entry that ``add`` sees. pymemcache 4.0 has no meta commands, so the line is
        sent with its ``raw_command`` (see :meth:`_delete_if_token`).
        """
        expected = check_value(check_key(key), expected)
        name = self._write_prefix() + key_body(key, self._plain_budget)
        for _ in range(CAS_ATTEMPTS):
            token = self._token_if_holds("compare_and_delete", name, expected)
            if token is None:
                return False
            deleted = self._delete_if_token(name, token)
            if deleted is not None:
                return deleted
        raise self._contended("compare_and_delete", key)

    def _token_if_holds(self, op: str, name: str, expected: bytes) -> bytes | None:
        """The CAS token of ``name``'s item if it holds exactly ``expected``, else None."""
        reply: tuple[bytes | None, bytes | None] = self._call(op, self._client.gets, name)
        found, token = reply  # (None, None) for a miss; b"" is a value
        if token is None or found != expected:
            return None
        return token

    def _delete_if_token(self, name: str, token: bytes) -> bool | None:
        """Send ``md <name> C<token>``; True: deleted, False: not found, None: token stale.

        One line out, one line back, on a pooled connection through pymemcache's public
        ``raw_command`` (never ``q``: the reply is always read). pymemcache raises on
        ``ERROR`` (a server without meta commands), ``CLIENT_ERROR`` and ``SERVER_ERROR`` and
        on a timeout, and drops that connection; :meth:`_call` maps those as for every call.
        An ``md`` reply is a single line, so any other line leaves the connection in step; it
        is a :class:`~cachespec.backends.CacheError`. The key and token are checked first,
        since this line is built by hand: no space or control byte can reach the server.
        """
        command = md_line(name, token)
        if command is None:
            raise CacheError(f"{self._label}: refusing to send md for {name!r} C{token!r}")
        reply = self._call("compare_and_delete", self._client.raw_command, command, b"\r\n")
        if reply in MD_OUTCOMES:
            return MD_OUTCOMES[reply]
        raise CacheError(
            f"{self._label}: compare_and_delete: unexpected reply {reply[:40]!r} to 'md'"
        )

    def _contended(self, op: str, key: str) -> CacheError:
        return CacheError(
            f"{self._label}: {op}({key!r}) gave up after {CAS_ATTEMPTS} attempts: each time, "
            "another write replaced the entry with the expected bytes between the read and "
            "the conditional write"
        )

    def clear(self) -> None:
        """Start a new generation of this namespace with ``incr`` (see the class docstring).

        Writes only the counter key: no other key, in this namespace or any other, is written
        or deleted. A missing counter is created from a new random value instead. Without a
        generation (``clearable=False``) it raises :class:`~cachespec.backends.Unsupported`
        and sends nothing.
        """
        if not self._clearable:
            raise Unsupported(
                f"{self._label}: namespace {self._namespace!r} was opened without clear "
                "(clear=none); its guarantees declare clear=False"
            )
        value = self._call("clear", self._client.incr, self._counter_key, 1, noreply=False)
        if value is None:  # no counter (evicted or flushed): a fresh random generation
            try:
                fresh, confirmed_at = self._create_counter()
            except BackendFull:
                # No room for a new counter. Without one no entry is reachable, which is
                # what clear asked for; the next call that can create it starts afresh.
                return
            self._adopt(fresh, confirmed_at)
        else:
            self._adopt(str(value).encode("ascii"), self._monotonic())

    def discard(self) -> None:
        """A new generation (the entries become unreachable), then the counter goes too:
        a namespace no one will use again leaves no item without expiry on the server.
        The old entries themselves stay until their TTL: memcached cannot list them, so
        whoever wrote them must delete them (the suite does, key by key)."""
        self.clear()
        self._call("discard", self._client.delete, self._counter_key, noreply=False)

    def close(self) -> None:
        """Close every pooled connection; later calls raise :class:`BackendUnavailable`."""
        client = self._client
        if isinstance(client, _Closed):
            return
        self._client = _Closed(self._label)
        client.close()

    # -------------------------------------------------------------------------- generation
    def _write_prefix(self) -> str:
        generation = self._generation
        if not self._clearable:
            return generation.prefix
        if self._refresh == 0 or self._monotonic() - generation.checked_at >= self._refresh:
            generation = self._load_generation()
        return generation.prefix

    def _load_generation(self) -> _Generation:
        """Read the counter (one round trip), creating it if it is missing."""
        sent_at = self._monotonic()
        wire = self._counter_wire
        value = self._call("get", self._client.fetch, [wire]).get(wire)
        return self._adopt(value, sent_at)

    def _adopt(self, value: bytes | None, confirmed_at: float) -> _Generation:
        """Make the server's counter value this client's generation (create a missing one).

        ``confirmed_at`` is a monotonic time at which the server held ``value``, or an earlier
        one: when a ``get`` was sent, or when an ``incr``/``add`` answered. Of concurrent
        answers (threads share this client) the latest confirmed is kept, so a read that
        raced this client's own ``clear`` cannot bring back the pre-clear generation. The
        cache only takes values the server returned: an error leaves it as it was.
        """
        if value is None:
            value, confirmed_at = self._create_counter()
        digits = value.rstrip(b" ")  # incr pads with spaces when the number gets shorter
        if not _GENERATION_RE.fullmatch(digits):
            raise CacheError(
                f"{self._label}: the namespace counter {self._counter_key!r} holds "
                f"{value[:40]!r}, not a number: something else wrote to this namespace"
            )
        generation = _Generation(
            value, f"{self._namespace}:{digits.decode('ascii')}:", confirmed_at
        )
        with self._lock:
            if confirmed_at >= self._generation.checked_at:
                self._generation = generation
        return generation

    def _confirm(self, generation: _Generation, confirmed_at: float) -> None:
        """Record that the server still held ``generation`` at ``confirmed_at``."""
        with self._lock:
            current = self._generation
            if current.raw == generation.raw and confirmed_at > current.checked_at:
                self._generation = current._replace(checked_at=confirmed_at)

    def _create_counter(self) -> tuple[bytes, float]:
        """Create the missing counter from a random 63-bit start; return its value.

        A fresh random generation meets the entries of an old one (which may still be in
        memory if only the counter was evicted) only with a chance of about 1 in 2**63.
        """
        counter = self._counter_key
        for _ in range(3):
            start = str(secrets.randbits(63)).encode("ascii")
            if self._call("counter", self._client.add, counter, start, 0, noreply=False):
                return start, self._monotonic()
            sent_at = self._monotonic()  # another client created it since we looked
            wire = self._counter_wire
            value = self._call("get", self._client.fetch, [wire]).get(wire)
            if value is not None:
                return value, sent_at
        raise CacheError(f"{self._label}: the namespace counter {counter!r} keeps vanishing")

    # -------------------------------------------------------------------------------- TTLs
    def _check_ttl(self, ttl: object) -> float | None:
        return check_ttl(ttl, self.guarantees.max_ttl)

    def _exptime(self, seconds: float | None) -> int:
        """The exptime to send: 0 (no expiry), relative seconds, or an absolute Unix time."""
        if seconds is None:
            return 0
        relative = relative_exptime(seconds)
        if relative <= RELATIVE_EXPTIME_LIMIT:
            return relative
        # Over 30 days: an absolute time on the server's clock, never this machine's, so that
        # clock skew (or the harness's fake server clock) cannot shorten the TTL. The time
        # spent since the stats request was sent is real time, whatever clock tests inject.
        asked = time.monotonic()
        server_time = self._server_time()
        waited = time.monotonic() - asked
        return absolute_exptime(server_time, seconds, waited)

    def _server_time(self, *, require_meta: bool = False) -> int:
        """The server's clock (``STAT time``, Unix seconds): one round trip.

        ``require_meta`` (at construction) also refuses a server older than 1.6.10: writes
        end with the meta no-op ``mn``, and ``compare_and_delete`` needs the meta delete
        ``md`` as it answers from 1.6.10 on (``HD``; ``OK`` before).
        """
        stats = self._call("stats", self._client.stats)
        if require_meta:
            text, version = server_version(stats)
            if version < MIN_VERSION:
                raise ConfigurationError(
                    f"{self._label}: memcached {text} is too old; this adapter needs 1.6.10 "
                    "or later (the meta no-op 'mn', and 'md' answering HD)"
                )
        server_time = stats_time(stats)
        if server_time is None:
            raise CacheError(f"{self._label}: 'stats' did not report the server time")
        return server_time

    # ------------------------------------------------------------------------------ errors
    def _call(self, op: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one client call; turn driver and socket errors into cachespec errors.

        ``key=`` is not passed on: it names the user's key in a ``ValueTooLarge``.
        """
        key: str | None = kwargs.pop("key", None)
        try:
            return method(*args, **kwargs)
        except CacheError:
            raise
        except Exception as exc:
            self._raise_for(exc, op, key, args)

    def _raise_for(
        self, exc: Exception, op: str, key: str | None, args: tuple[Any, ...]
    ) -> NoReturn:
        raise_for(
            exc,
            driver=self._driver,
            label=self._label,
            op=op,
            key=key,
            args=args,
            max_value_size=self._max_value_size,
        )


def _check_seconds(name: str, value: object, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    in_range = value >= 0 if allow_zero else value > 0
    if not (in_range and math.isfinite(value)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{name} must be finite and {bound} seconds, got {value!r}")


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
