"""The memcached namespaces: :class:`MemcachedBackend`, cleared by a generation counter
kept in the server, and :class:`MemcachedBackendWithoutClear`, which has no ``clear``.

``MemcachedBackend(..., clearable=False)`` (URL option ``clear=none``) builds the second: it
overrides the methods whose generation it does without, so neither kind tests a flag on its
hot path. What both do alike is in :mod:`.base`; the protocol behind ``clear`` is described
in :mod:`.generations`.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from cachespec.spec import MEMCACHED_EVICTION, NO_VALUE, Guarantees, NoEviction, NoValue
from cachespec.spec.failover import Failover

from ..contract import (
    BackendFull,
    CacheError,
    Clock,
    ConfigurationError,
    Unsupported,
    check_key,
    check_limit,
    check_seconds,
)
from .base import MemcachedBase
from .driver import Client, load_driver
from .expiry import RELATIVE_EXPTIME_LIMIT, TTL_RESOLUTION, longest_ttl
from .generations import (
    UNREAD,
    Generation,
    counter_key,
    parse_generation,
    random_start,
    without_clear,
)
from .keys import GENERATION_DIGITS, NAMESPACE_PATTERN, key_body, plain_key_budget, server_key

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_NAMESPACE_REFRESH",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "ITEM_OVERHEAD_MARGIN",
    "MemcachedBackend",
    "MemcachedBackendWithoutClear",
]

DEFAULT_PORT = 11211
_MAX_PORT = 65535  # TCP ports are 16 bits
DEFAULT_NAMESPACE = "cachespec"
DEFAULT_TIMEOUT = 5.0
DEFAULT_NAMESPACE_REFRESH = 0.0
"""Exact by default: see :mod:`.generations`, "clear and other clients", for why."""

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


class MemcachedBackend(MemcachedBase):
    """A memcached server as a cachespec backend (the decisions are in the package docstring).

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
        The backend is then a :class:`MemcachedBackendWithoutClear`.
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
        ``clear`` increments a generation counter that every data key embeds; reads are
        exact, and so are writes with ``namespace_refresh=0``. How, what it costs, and what
        ``namespace_refresh > 0`` gives up: :mod:`cachespec.backends.memcached.generations`.

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

    __slots__ = ()

    _clearable: ClassVar[bool] = True  # the kind of namespace: with clear, or without
    # What a node's failure does (spec/failover.py): nothing to declare for one server.
    _failover: ClassVar[Failover | None] = None
    # The longest generation in a data key: the counter's digits, or the fixed "-".
    _generation_width: ClassVar[int] = GENERATION_DIGITS

    def __new__(cls, *args: Any, clearable: bool = True, **kwargs: Any) -> MemcachedBackend:
        """``MemcachedBackend(..., clearable=False)`` is a :class:`MemcachedBackendWithoutClear`
        (the arguments are :meth:`__init__`'s)."""
        kind = (
            MemcachedBackendWithoutClear if cls is MemcachedBackend and clearable is False else cls
        )
        return super().__new__(kind)

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
        if clearable is not self._clearable:  # only a subclass built directly gets here
            raise ConfigurationError(
                f"{type(self).__name__} is a namespace "
                f"{'with' if self._clearable else 'without'} clear, not clearable={clearable}: "
                f"build it as MemcachedBackend(..., clearable={clearable})"
            )
        if not isinstance(namespace, str) or not NAMESPACE_PATTERN.fullmatch(namespace):
            raise ConfigurationError(
                f"namespace must match {NAMESPACE_PATTERN.pattern} (no ':'), got {namespace!r}"
            )
        check_seconds("timeout", timeout)
        check_seconds("namespace_refresh", namespace_refresh, allow_zero=True)
        if namespace_refresh and not clearable:
            raise ConfigurationError(
                "namespace_refresh applies to the clear generation; a namespace without clear "
                "(clear=none) has no generation to refresh"
            )
        check_limit("max_value_size", max_value_size, minimum=0)
        if not callable(monotonic):
            raise ConfigurationError(f"monotonic must be a callable, got {monotonic!r}")
        self._label = label or f"memcached://{_host_for_url(host)}:{port}"
        self._driver = load_driver()
        self._namespace = namespace
        self._counter_key = counter_key(namespace)
        self._counter_wire = self._counter_key.encode("ascii")
        # Data keys are "<namespace>:<up to 20 digits>:<body>" (or "<namespace>:-:<body>"):
        # at most 250 bytes in all.
        self._plain_budget = plain_key_budget(namespace, self._generation_width)
        self._refresh = float(namespace_refresh)
        self._monotonic = monotonic
        self._max_value_size = 0  # set below, once the server has told its item size limit
        self._lock = threading.Lock()
        self._generation = UNREAD  # replaced below, before any use
        self._counter_ttl = 0  # the counter's exptime: never, unless a guest's (see below)
        self._client = self._build_client(host, port, timeout)
        try:
            settings = self._call("stats settings", self._client.stats, "settings")
            item_size_max = int(settings.get(b"item_size_max", _DEFAULT_ITEM_SIZE_MAX))
            server_time = self._server_time(require_meta=True)
            self._start_generation()
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
            failover=self._failover,
        )

    def _build_client(self, host: str, port: int, timeout: float) -> Client:
        """The client every call goes through: a pool of connections to ``host:port``. The
        one place a subclass changes to talk to something else (a ring of nodes:
        :mod:`.ring`), as dogpile's Sentinel and Cluster backends do."""
        return self._driver.pooled_client(
            (host, port),
            connect_timeout=timeout,
            timeout=timeout,
            no_delay=True,
            default_noreply=False,
            allow_unicode_keys=False,
        )

    def _start_generation(self) -> None:
        """Read the counter (creating it if missing) before the first call: the constructor
        reports a server that cannot."""
        self._load_generation()

    # ------------------------------------------------------------------------------- reads
    def get(self, key: str) -> bytes | NoValue:
        check_key(key)
        return self._read([key]).get(key, NO_VALUE)

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
    def _store_single(
        self, op: str, verb: bytes, key: str, data: bytes, seconds: float | None
    ) -> bytes:
        (reply,) = self._store(op, verb, [(key, data)], seconds)
        return reply

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
        if self._refresh and self._monotonic() - generation.checked_at < self._refresh:
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

    # -------------------------------------------------------------------------- generation
    def clear(self) -> None:
        """Start a new generation of this namespace with ``incr`` (see :mod:`.generations`).

        Writes only the counter key: no other key, in this namespace or any other, is written
        or deleted. A missing counter is created from a new random value instead.
        """
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

    def clear_as_guest(self, written: Iterable[str]) -> None:
        """:meth:`clear`, then delete the old generation's entries of ``written``: a guest
        on a server it shares leaves nothing there (the suite, on a server you run). They
        are deleted by their old names only once the clear moved the generation, so a clear
        that moved nothing still shows (docs/design.md, "A user's server keeps only its own
        data")."""
        bodies = list(dict.fromkeys(key_body(key, self._plain_budget) for key in written))
        before = self._write_prefix()
        self.clear()
        if not bodies or self._generation.prefix == before:
            return
        wire = b"".join(b"delete " + server_key(before, body) + b"\r\n" for body in bodies)
        self._send("clear", wire, [(None, b"")] * len(bodies))

    def discard(self) -> None:
        """A new generation (the entries become unreachable), then the counter goes too:
        a namespace no one will use again leaves no item without expiry on the server.
        The old entries themselves stay until their TTL: memcached cannot list them, so
        whoever wrote them must delete them (the suite does, key by key)."""
        self.clear()
        self._call("discard", self._client.delete, self._counter_key, noreply=False)

    def expire_bookkeeping(self, ttl: float) -> None:
        """The generation counter expires ``ttl`` seconds after it is (re)created, and the
        one there now as well (``touch``). For a guest's namespace only (the suite's on a
        server you run): one whose counter expires in use reads as cleared."""
        check_seconds("ttl", ttl)
        seconds = math.ceil(ttl)
        if seconds > RELATIVE_EXPTIME_LIMIT:  # memcached would read it as a Unix time
            raise ConfigurationError(
                f"the counter's ttl must be at most {RELATIVE_EXPTIME_LIMIT} s, got {ttl!r}"
            )
        self._counter_ttl = seconds
        if self._clearable:
            self._call("touch", self._client.touch, self._counter_key, seconds, noreply=False)

    def _write_prefix(self) -> str:
        generation = self._generation
        if self._refresh == 0 or self._monotonic() - generation.checked_at >= self._refresh:
            generation = self._load_generation()
        return generation.prefix

    def _load_generation(self) -> Generation:
        """Read the counter (one round trip), creating it if it is missing."""
        sent_at = self._monotonic()
        wire = self._counter_wire
        value = self._call("get", self._client.fetch, [wire]).get(wire)
        return self._adopt(value, sent_at)

    def _adopt(self, value: bytes | None, confirmed_at: float) -> Generation:
        """Make the server's counter value this client's generation (create a missing one).

        ``confirmed_at`` is a monotonic time at which the server held ``value``, or an earlier
        one: when a ``get`` was sent, or when an ``incr``/``add`` answered. Of concurrent
        answers (threads share this client) the latest confirmed is kept, so a read that
        raced this client's own ``clear`` cannot bring back the pre-clear generation. The
        cache only takes values the server returned: an error leaves it as it was.
        """
        if value is None:
            value, confirmed_at = self._create_counter()
        generation = parse_generation(value, self._namespace, confirmed_at)
        if generation is None:
            raise CacheError(
                f"{self._label}: the namespace counter {self._counter_key!r} holds "
                f"{value[:40]!r}, not a number: something else wrote to this namespace"
            )
        with self._lock:
            if confirmed_at >= self._generation.checked_at:
                self._generation = generation
        return generation

    def _confirm(self, generation: Generation, confirmed_at: float) -> None:
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
            start = random_start()
            if self._call(
                "counter", self._client.add, counter, start, self._counter_ttl, noreply=False
            ):
                return start, self._monotonic()
            sent_at = self._monotonic()  # another client created it since we looked
            wire = self._counter_wire
            value = self._call("get", self._client.fetch, [wire]).get(wire)
            if value is not None:
                return value, sent_at
        raise CacheError(f"{self._label}: the namespace counter {counter!r} keeps vanishing")


class MemcachedBackendWithoutClear(MemcachedBackend):
    """A memcached namespace without ``clear``, built by ``MemcachedBackend(...,
    clearable=False)`` or ``clear=none`` in a URL (see ``clearable`` there).

    No counter: data keys are ``<namespace>:-:<body>``, a ``get`` is a one-key ``get``, a
    write goes alone, ``clear`` raises :class:`~cachespec.backends.Unsupported` and the
    guarantees say ``clear=False``. Every call touches only its own keys: for an application
    that never clears, the raw client's cost.
    """

    __slots__ = ()

    _clearable: ClassVar[bool] = False
    _generation_width: ClassVar[int] = 1

    def _start_generation(self) -> None:
        """One fixed "generation", never read from the server nor refreshed."""
        self._generation = without_clear(self._namespace)

    def get(self, key: str) -> bytes | NoValue:
        name = server_key(self._generation.prefix, key_body(check_key(key), self._plain_budget))
        found: dict[bytes, bytes] = self._call("get", self._client.fetch, [name])
        return found.get(name, NO_VALUE)

    def _read(self, keys: list[str]) -> dict[str, bytes]:
        """Fetch ``keys`` in one ``get``: there is no counter to fetch with them."""
        budget = self._plain_budget
        prefix = self._generation.prefix
        names = {server_key(prefix, key_body(key, budget)): key for key in keys}
        found = self._call("get", self._client.fetch, list(names))
        return {names[name]: value for name, value in found.items()}

    def _store_single(
        self, op: str, verb: bytes, key: str, data: bytes, seconds: float | None
    ) -> bytes:
        """``verb`` one item: one command, one reply line, nothing else on the wire; the hot
        path of a namespace without clear."""
        name = server_key(self._generation.prefix, key_body(key, self._plain_budget))

        def send() -> bytes:
            expire = self._exptime(seconds)  # for each send, as in _store
            line: bytes = self._client.one_line(
                b"%s %s 0 %d %d\r\n%s\r\n" % (verb, name, expire, len(data), data)
            )
            return line

        try:
            return send()
        except CacheError:
            raise
        except Exception as exc:  # as _call, but naming the user's key and value size
            resend = op in self._resent
            return self._again(exc, op, send, resend=resend, key=key, args=(key, data))

    def _write(
        self,
        op: str,
        commands: Callable[[str], bytes],
        items: Sequence[tuple[str | None, bytes]],
    ) -> list[bytes]:
        """Send ``commands`` under the fixed prefix, with nothing ahead of them."""
        return self._send(op, commands(self._generation.prefix), items)

    def _write_prefix(self) -> str:
        return self._generation.prefix

    def clear(self) -> None:
        """Raise :class:`~cachespec.backends.Unsupported` and send nothing: there is no
        generation to move on (the guarantees declare ``clear=False``)."""
        raise Unsupported(
            f"{self._label}: namespace {self._namespace!r} was opened without clear "
            "(clear=none); its guarantees declare clear=False"
        )


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
