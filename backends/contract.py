"""The backend contract: what every cachespec backend does, stated once.

A backend stores ``bytes`` under ``str`` keys, inside its own namespace. The cache layer
above it serializes values; the conformance suite checks a backend against the model in
:mod:`cachespec.spec` using only the methods below and the backend's declared
:class:`~cachespec.spec.Guarantees`.

Arguments are checked before anything is sent or stored, so a refused call writes nothing:

* keys: any ``str`` (any Unicode, the empty string included); anything else is a
  ``TypeError``. A backend whose store restricts keys (memcached: 250 bytes, no whitespace)
  maps every key to one it accepts, injectively: two keys never share an entry, and no key
  is ever truncated.
* values: ``bytes``; anything else is a ``TypeError``. A value longer than the declared
  ``max_value_size`` raises :class:`ValueTooLarge`, and the key's old entry stays as it was.
* TTLs: see :func:`cachespec.spec.validate_ttl` (``None``, or finite seconds > 0).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType

from cachespec.spec import NO_VALUE, Guarantees, NoValue, validate_ttl

__all__ = [
    "NO_VALUE",
    "Backend",
    "BackendFull",
    "BackendUnavailable",
    "CacheError",
    "Clock",
    "ConfigurationError",
    "NoValue",
    "Unsupported",
    "ValueTooLarge",
    "check_items",
    "check_key",
    "check_keys",
    "check_ttl",
    "check_value",
]

Clock = Callable[[], float]
"""Seconds on a clock that never goes backwards (``time.monotonic`` by default)."""


class CacheError(Exception):
    """Base class of the errors cachespec raises itself."""


class ValueTooLarge(CacheError, ValueError):
    """A value exceeds the backend's item size limit; nothing was written."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        self.key = key
        self.size = size
        self.limit = limit
        super().__init__(
            f"value for key {key!r} is {size} bytes, over this backend's limit of {limit} bytes; "
            "nothing was written"
        )


class BackendFull(CacheError):
    """The server refused a write for want of memory (memcached's ``SERVER_ERROR out of
    memory storing object``). Each key the write touched holds the new value or nothing,
    never the value it held before; a refused ``add`` changed nothing. The conformance suite
    accepts it only from a backend whose eviction profile declares ``refuses_when_full``;
    an adapter still raises it whenever its server refuses (the memcached adapter does,
    whatever its ``eviction`` option), so that the error is typed either way."""

    def __init__(self, message: str, keys: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.keys = tuple(keys)  # the user's keys the server refused, where known


class ConfigurationError(CacheError, ValueError):
    """A backend URL or option is malformed or unknown."""


class Unsupported(CacheError, NotImplementedError):
    """The backend does not offer this operation, as its guarantees declare
    (``clear=False``); nothing was changed."""


class BackendUnavailable(CacheError, ConnectionError):
    """The backend could not be reached within its timeout (the URL's password is redacted)."""


def check_key(key: object) -> str:
    """Return ``key`` if it is a ``str``; raise ``TypeError`` otherwise."""
    if not isinstance(key, str):
        raise TypeError(f"cache keys must be str, got {type(key).__name__}: {key!r}")
    return key


def check_value(key: str, value: object, limit: int | None = None) -> bytes:
    """Return ``value`` as plain ``bytes``; refuse other types and values over ``limit``."""
    if not isinstance(value, bytes):
        raise TypeError(
            f"backend values must be bytes (the cache layer serializes), "
            f"got {type(value).__name__} for key {key!r}"
        )
    if limit is not None and len(value) > limit:
        raise ValueTooLarge(key, len(value), limit)
    return value if type(value) is bytes else bytes(value)


def as_batch(keys: Iterable[str]) -> list[str]:
    """``keys`` as a list; a lone ``str`` (or ``bytes``) is not a batch of its characters."""
    if isinstance(keys, (str, bytes)):
        raise TypeError(f"expected an iterable of keys, got a single {type(keys).__name__}")
    return list(keys)


def check_keys(keys: Iterable[str]) -> list[str]:
    """Check every key of a batch before any is used; a lone ``str`` is not a batch."""
    batch = as_batch(keys)
    for key in batch:  # the check inline: a call per key was a tenth of a 100-key get_many
        if not isinstance(key, str):
            check_key(key)
    return batch


def check_items(items: Mapping[str, bytes], limit: int | None = None) -> list[tuple[str, bytes]]:
    """Check every key and value of a ``set_many`` before anything is written."""
    if not isinstance(items, Mapping):
        raise TypeError(f"set_many takes a mapping of key to value, got {type(items).__name__}")
    return [(check_key(key), check_value(key, value, limit)) for key, value in items.items()]


check_ttl = validate_ttl


def check_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    """``value`` as a finite number > 0 (or >= 0), else a ConfigurationError naming ``name``.

    NaN is refused explicitly: every comparison with it is False, so a check written as
    ``value <= 0`` would let it through."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
    bound_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and bound_ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def check_limit(option: str, value: object, *, minimum: int, owner: str = "") -> int | None:
    """An adapter's count option (``max_value_size``, ``capacity``): None, or an int of at
    least ``minimum`` (a bool is not a count); else a ConfigurationError naming ``option``
    (after ``owner``, the backend's redacted name, where it has one)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        prefix = f"{owner}: " if owner else ""
        raise ConfigurationError(
            f"{prefix}{option} must be an int >= {minimum} or None, got {value!r}"
        )
    return value


class Backend(abc.ABC):
    """A cache backend: ``bytes`` values under ``str`` keys, with optional TTLs.

    Every method is safe to call on any key in any state: there is no "key not found"
    error. A miss is :data:`NO_VALUE`, compared by identity, never ``None``.
    """

    #: What this backend promises; the conformance suite checks exactly this.
    guarantees: Guarantees

    @abc.abstractmethod
    def get(self, key: str) -> bytes | NoValue:
        """The live value under ``key``, or :data:`NO_VALUE`.

        A hit is a use: under an LRU profile it makes the entry the most recently used.
        """

    @abc.abstractmethod
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``, replacing any entry and its TTL.

        ``ttl=None`` stores without expiry, even over an entry that had one. A bounded backend
        may evict another entry to make room (see its eviction profile).
        """

    @abc.abstractmethod
    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store only if ``key`` has no live entry; return whether it stored.

        Atomic: of concurrent ``add`` calls on one absent key, exactly one returns ``True``.
        A failed ``add`` changes nothing, not even recency.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``'s entry. Idempotent: deleting a missing key is not an error."""

    # The batch operations have defaults, one call per key, so that a wrapper around a
    # library without them implements five methods, not eight; a backend that can do a
    # batch in one round trip overrides them.
    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """A mapping of the requested keys that hit, and only those.

        One round trip where the backend allows. Each hit is a use, in request order: a key
        asked for twice is used twice and ends where its last occurrence puts it.
        """
        found: dict[str, bytes] = {}
        for key in check_keys(keys):
            value = self.get(key)
            if value is not NO_VALUE:
                found[key] = value
            else:
                found.pop(key, None)  # asked again after it went: the last answer stands
        return found

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """``set`` for each item, in order, with one TTL. All arguments are checked first."""
        validate_ttl(ttl)
        # Every value against the declared limit before the first set: nothing half-written.
        for key, value in check_items(items, self.guarantees.max_value_size):
            self.set(key, value, ttl)

    def delete_many(self, keys: Iterable[str]) -> None:
        """``delete`` for each key."""
        for key in check_keys(keys):
            self.delete(key)

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove every entry in this backend's namespace, and nothing outside it.

        A backend whose guarantees declare ``clear=False`` raises :class:`Unsupported`
        instead, and changes nothing.
        """

    # Optional atomic operations: offered when ``guarantees.compare_and_set`` is True. The
    # cache layer's guarded fills and leases are built on them.
    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        """Replace ``key``'s live value with ``value`` (and ``ttl``) only if it equals
        ``expected`` byte for byte; return whether it did. Atomic: no write lands between
        the comparison and the replacement. A missing or expired key never matches. A
        comparison alone is not a use (recency is unchanged when nothing is replaced)."""
        raise NotImplementedError(f"{type(self).__name__} does not offer compare_and_set")

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        """Delete ``key`` only if its live value equals ``expected``; return whether it did.
        Atomic, like :meth:`compare_and_set` (a lease is released only by its owner)."""
        raise NotImplementedError(f"{type(self).__name__} does not offer compare_and_delete")

    def discard(self) -> None:
        """Remove this namespace for good: its entries, and whatever it keeps for itself
        (memcached's generation counter). For a namespace no one will use again, such as
        each of the conformance suite's on a server you run. Default: :meth:`clear`."""
        self.clear()

    def clear_as_guest(self, written: Iterable[str]) -> None:
        """:meth:`clear`, for a guest that must leave nothing on a server it shares: also
        remove from the server what the clear only made unreachable, of the keys in
        ``written`` (the ones this namespace wrote). For the conformance suite's
        namespaces on a server you run, whose ``clear`` is under test and must not be
        preceded by deletes that would hide what it does. Default: :meth:`clear`, for a
        clear that removes its entries (memcached's only hides them: it overrides this)."""
        self.clear()

    def expire_bookkeeping(self, ttl: float) -> None:  # noqa: B027 - most keep nothing
        """Let what this namespace keeps for itself (memcached's generation counter) expire
        ``ttl`` seconds after it is written, instead of never.

        For a guest's namespace on a server someone else runs, as the conformance suite's
        are: a run killed before :meth:`discard` then leaves nothing that lives forever.
        Not for an application's own namespace, whose bookkeeping must outlive any idle
        spell (a lost counter reads as a ``clear``). Default: nothing, for a backend that
        keeps nothing of its own."""

    def close(self) -> None:  # noqa: B027 - a backend without resources has nothing to close
        """Release connections; the backend is unusable afterwards."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
