"""What every memcached namespace does alike, with or without ``clear``.

:class:`MemcachedBase` holds the calls and the machinery that do not depend on how a
namespace finds its key prefix: the writes' pipelines, ``compare_and_set`` and
``compare_and_delete`` (``gets``, compare in Python, then ``cas`` or the meta delete
``md <key> C<token>``), expiry times, and turning driver errors into cachespec's. Its two
namespaces are in :mod:`.backend`: :class:`.backend.MemcachedBackend`, whose prefix is a
clear generation read from the server, and :class:`.backend.MemcachedBackendWithoutClear`,
whose prefix is fixed.

compare_and_set, compare_and_delete
    The server acts only if the item's token is still the one read, so nothing lands between
    the comparison and the write. A stale token means some write landed in between; since
    memcached gives every write a new token, even one of the same bytes, the adapter reads
    again and retries while the value still matches.
"""

from __future__ import annotations

import abc
import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, NoReturn, TypeVar

from cachespec.spec import NoValue

from ..contract import (
    Backend,
    BackendUnavailable,
    CacheError,
    Clock,
    ConfigurationError,
    check_items,
    check_key,
    check_keys,
    check_value,
)
from .driver import Client, Driver
from .errors import raise_for
from .expiry import RELATIVE_EXPTIME_LIMIT, absolute_exptime, check_ttl, relative_exptime
from .generations import Generation
from .keys import key_body, server_key
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
from .resend import RESENT, closed_by_server

__all__ = ["CAS_ATTEMPTS", "MemcachedBase"]

_T = TypeVar("_T")

CAS_ATTEMPTS = 16
"""How many ``gets`` + ``cas`` (or ``md``) rounds a compare-and-X makes before giving up.

A round fails only when another write landed on the key between its ``gets`` and its ``cas``
*and* the key still holds the expected bytes (a rewrite of the same value): otherwise the
answer is ``False`` at once. Sixteen such writes in a row is not contention a cache sees; the
call then raises :class:`~cachespec.backends.CacheError` rather than answer wrongly."""


class Closed:
    """Stands in for the client after :meth:`MemcachedBase.close`: every call fails."""

    def __init__(self, label: str) -> None:
        self._label = label

    def __getattr__(self, name: str) -> NoReturn:
        raise BackendUnavailable(f"{self._label}: this backend was closed")


class MemcachedBase(Backend):
    """A memcached namespace, less how it finds the prefix of its keys (see the module).

    The attributes are set by :class:`.backend.MemcachedBackend`'s constructor, which both
    namespaces share. A subclass says how a namespace reads (:meth:`get`, :meth:`_read`),
    sends one write (:meth:`_store_single`) or a pipeline of them (:meth:`_write`), which
    prefix a compare-and-X uses (:meth:`_write_prefix`), and how it clears.
    """

    __slots__ = (
        "_client",
        "_counter_key",
        "_counter_ttl",
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

    _client: Client
    _counter_key: str  # the namespace's generation counter (see generations.py)
    _counter_wire: bytes
    _counter_ttl: int  # the counter's exptime: 0 (never) but for a guest's namespace
    _driver: Driver
    _generation: Generation
    _label: str
    _lock: threading.Lock  # guards _generation's replacement
    _max_value_size: int
    _monotonic: Clock
    _namespace: str
    _plain_budget: int
    _refresh: float
    # The calls sent again once when the server closed their connection (.resend); a
    # class attribute so that a test's mutant can change it.
    _resent: ClassVar[frozenset[str]] = RESENT

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
    @abc.abstractmethod
    def get(self, key: str) -> bytes | NoValue: ...

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = check_keys(keys)
        if not wanted:
            return {}
        return self._read(wanted)

    @abc.abstractmethod
    def _read(self, keys: list[str]) -> dict[str, bytes]:
        """The entries of ``keys`` (checked, at least one) that the server holds."""

    # ------------------------------------------------------------------------------ writes
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        data = check_value(check_key(key), value, self._max_value_size)
        reply = self._store_single("set", b"set", key, data, self._check_ttl(ttl))
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
        reply = self._store_single("add", b"add", key, data, self._check_ttl(ttl))
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
    @abc.abstractmethod
    def _store_single(
        self, op: str, verb: bytes, key: str, data: bytes, seconds: float | None
    ) -> bytes:
        """``verb`` (``set`` or ``add``) one checked item; the server's reply line."""

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

    @abc.abstractmethod
    def _write(
        self,
        op: str,
        commands: Callable[[str], bytes],
        items: Sequence[tuple[str | None, bytes]],
    ) -> list[bytes]:
        """Send ``commands(prefix)``, one storage or delete command per item (user key and
        value, for messages), under this namespace's prefix; return their reply lines."""

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
        # A read: sent again if the server closed its connection (.resend), unlike the cas
        # or md that follows it.
        reply: tuple[bytes | None, bytes | None] = self._call(
            op, self._client.gets, name, resend="gets" in self._resent
        )
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

    @abc.abstractmethod
    def _write_prefix(self) -> str:
        """The key prefix a compare-and-X uses: the one its ``gets`` and write go under."""

    def close(self) -> None:
        """Close every pooled connection; later calls raise :class:`BackendUnavailable`."""
        client = self._client
        if isinstance(client, Closed):
            return
        self._client = Closed(self._label)
        client.close()

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
        ``resend=`` (default: ``op`` is in ``_resent``, :data:`.resend.RESENT`) says whether
        the call is safe to send again once, on a new connection, if the server closed the
        one it met (:meth:`_again`).
        """
        key: str | None = kwargs.pop("key", None)
        resend: bool | None = kwargs.pop("resend", None)
        try:
            return method(*args, **kwargs)
        except CacheError:
            raise
        except Exception as exc:
            if resend is None:
                resend = op in self._resent
            # A partial, not a closure: a closure's cells would cost every call ~150 ns.
            send = functools.partial(method, *args, **kwargs)
            return self._again(exc, op, send, resend=resend, key=key, args=args)

    def _again(
        self,
        exc: Exception,
        op: str,
        send: Callable[[], _T],
        *,
        resend: bool,
        key: str | None,
        args: tuple[Any, ...],
    ) -> _T:
        """After ``send()`` raised ``exc``: if the server closed the connection, drop the
        idle ones and, if ``resend``, ``send()`` once more on a new connection; otherwise
        raise the cachespec error for ``exc`` (:mod:`.resend`, docs/design.md "Outages").
        Kept off the path of a call that succeeds, which pays nothing for it."""
        if not closed_by_server(exc, self._driver.closed):
            self._raise_for(exc, op, key, args)
        # The server that closed this connection closed every idle one too (a restart): no
        # later call should meet them, whether or not this one is sent again.
        self._client.drop_idle()
        if not resend:
            self._raise_for(exc, op, key, args)
        with self._client.fresh():
            try:
                return send()
            except CacheError:
                raise
            except Exception as again:  # never a third time
                self._raise_for(again, op, key, args)

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
