"""The in-memory backend: TTLs on an injected clock, exact LRU, safe under threads.

It is the embedded default (``memory://``) and the reference implementation the conformance
suite is calibrated on. Layout, chosen for the hit path and for memory per entry:

* one ``OrderedDict`` from key to entry, least recently used first;
* an entry without a TTL is the value itself (``bytes``); an entry with a TTL is the tuple
  ``(expires, key, value)``, which doubles as its own item in a min-heap of expiry times,
  so the heap costs one list slot per entry and nothing else;
* an entry is live while ``now < expires``; every expiry test below is that comparison,
  inlined on purpose (a helper call would cost the hit path a third of its time).

Writes take a lock. Reads do not: each ``OrderedDict`` operation is atomic under the GIL,
and a read that finds an expired entry takes the lock to drop it only if it is still the
same entry. Because readers reorder the dict without the lock, a writer never iterates it
in Python (see ``_rebuild_expiries``). Under concurrency a read's recency update can land
just after a concurrent eviction chose its victim; every operation stays atomic, and the
exact LRU order is exact for any sequential history (which the conformance suite checks).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from cachespec.spec import NO_VALUE, ExactLRU, Guarantees, NoEviction, NoValue, validate_ttl

from .contract import (
    Backend,
    Clock,
    ConfigurationError,
    check_items,
    check_key,
    check_keys,
    check_limit,
    check_value,
)
from .urls import BackendURL

# (expires, key, value): ordered by expiry first, so the tuple is its own heap item.
_Timed = tuple[float, str, bytes]
_Entry = bytes | _Timed

DEFAULT_CAPACITY = 1024


class MemoryBackend(Backend):
    """A bounded in-process cache with TTLs and exact LRU eviction.

    ``capacity`` is a number of entries (``None`` for unbounded, which is rarely what a
    long-running process wants). ``clock`` returns seconds and never goes backwards; tests
    inject one they control. ``max_value_size`` (bytes) refuses larger values.
    """

    __slots__ = (
        "_capacity",
        "_clock",
        "_data",
        "_expiries",
        "_lock",
        "_lookup",
        "_max_value_size",
        "_touch",
        "guarantees",
    )

    def __init__(
        self,
        capacity: int | None = DEFAULT_CAPACITY,
        *,
        clock: Clock = time.monotonic,
        max_value_size: int | None = None,
    ) -> None:
        eviction = NoEviction() if capacity is None else ExactLRU(capacity)
        check_limit("max_value_size", max_value_size, minimum=0)
        if not callable(clock):
            raise ConfigurationError(f"clock must be a callable returning seconds, got {clock!r}")
        self.guarantees = Guarantees(
            ttl_resolution=0.0,
            eviction=eviction,
            max_value_size=max_value_size,
            thread_safe=True,
            compare_and_set=True,
        )
        self._capacity = capacity
        self._clock = clock
        self._max_value_size = max_value_size
        self._lock = threading.Lock()
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._expiries: list[_Timed] = []
        # Bound C methods: the hit path is two C calls and one comparison.
        self._lookup = self._data.get
        self._touch = self._data.move_to_end

    # ---------------------------------------------------------------------------- reads
    # The promotion (``move_to_end``) is inlined in both readers rather than a helper: a
    # Python call costs a quarter of a hit (bench/memory.py). It raises KeyError when a
    # concurrent write evicted the key since we read it; there is nothing to promote then.
    def get(self, key: str) -> bytes | NoValue:
        entry = self._lookup(key)
        if entry.__class__ is bytes:  # no TTL: the entry is the value
            try:  # noqa: SIM105 - try/except is free on this path, contextlib.suppress is not
                self._touch(key)
            except KeyError:
                pass
            return entry
        if entry is None:
            check_key(key)  # only a miss can be a non-str key: no object equals a str key
            return NO_VALUE
        timed: _Timed = entry  # type: ignore[assignment]
        if self._clock() < timed[0]:
            try:  # noqa: SIM105
                self._touch(key)
            except KeyError:
                pass
            return timed[2]
        self._drop(key, timed)
        return NO_VALUE

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = check_keys(keys)
        found: dict[str, bytes] = {}
        now: float | None = None
        for key in wanted:
            entry = self._lookup(key)
            if entry is None:
                continue
            if entry.__class__ is not bytes:
                timed: _Timed = entry  # type: ignore[assignment]
                if now is None:
                    now = self._clock()
                if not now < timed[0]:
                    self._drop(key, timed)
                    continue
                entry = timed[2]
            try:  # noqa: SIM105
                self._touch(key)
            except KeyError:
                pass
            found[key] = entry
        return found

    def _drop(self, key: str, entry: _Timed) -> None:
        lock = self._lock
        lock.acquire()
        try:
            if self._data.get(key) is entry:
                del self._data[key]
        finally:
            lock.release()

    # --------------------------------------------------------------------------- writes
    # Writes hold the lock with acquire/release rather than ``with``: the same guarantee,
    # and ``with`` measured twice the cost on CPython 3.11 here (bench/memory.py).
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        data = check_value(check_key(key), value, self._max_value_size)
        seconds = validate_ttl(ttl)
        lock = self._lock
        lock.acquire()
        try:
            self._store(key, data, seconds, self._clock())
        finally:
            lock.release()

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = check_items(items, self._max_value_size)
        seconds = validate_ttl(ttl)
        lock = self._lock
        lock.acquire()
        try:
            now = self._clock()
            for key, data in checked:
                self._store(key, data, seconds, now)
        finally:
            lock.release()

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        data = check_value(check_key(key), value, self._max_value_size)
        seconds = validate_ttl(ttl)
        lock = self._lock
        lock.acquire()
        try:
            now = self._clock()
            entry = self._data.get(key)
            if entry is not None and (entry.__class__ is bytes or now < entry[0]):
                return False
            self._store(key, data, seconds, now)
            return True
        finally:
            lock.release()

    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        data = check_value(check_key(key), value, self._max_value_size)
        expected = check_value(key, expected)
        seconds = validate_ttl(ttl)
        lock = self._lock
        lock.acquire()
        try:
            now = self._clock()
            if self._live_value(key, now) != expected:
                return False
            self._store(key, data, seconds, now)
            return True
        finally:
            lock.release()

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        expected = check_value(check_key(key), expected)
        lock = self._lock
        lock.acquire()
        try:
            if self._live_value(key, self._clock()) != expected:
                return False
            del self._data[key]
            return True
        finally:
            lock.release()

    def _live_value(self, key: str, now: float) -> bytes | None:
        """The live value under ``key`` or None; the lock is held (no promotion)."""
        entry = self._data.get(key)
        if entry is None or entry.__class__ is bytes:
            return entry
        timed: _Timed = entry  # type: ignore[assignment]
        return timed[2] if now < timed[0] else None

    def delete(self, key: str) -> None:
        self.delete_many([check_key(key)])

    def delete_many(self, keys: Iterable[str]) -> None:
        doomed = check_keys(keys)
        lock = self._lock
        lock.acquire()
        try:
            for key in doomed:
                self._data.pop(key, None)
        finally:
            lock.release()

    def clear(self) -> None:
        lock = self._lock
        lock.acquire()
        try:
            self._data.clear()
            self._expiries.clear()
        finally:
            lock.release()

    def _store(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        """Write one entry; the lock is held."""
        timed: _Timed | None = None if ttl is None else (now + ttl, key, value)
        entry: _Entry = value if timed is None else timed
        data = self._data
        if key in data:
            data[key] = entry
            data.move_to_end(key)
        else:
            if self._capacity is not None and len(data) >= self._capacity:
                self._make_room(now)
            data[key] = entry
        if timed is not None:
            heap = self._expiries
            heapq.heappush(heap, timed)
            if len(heap) > 2 * len(data) + 64:
                self._rebuild_expiries()

    def _rebuild_expiries(self) -> None:
        """Drop the heap's stale items (overwritten, deleted, evicted); the lock is held.

        ``list(...)`` copies the values in one C call, during which no other thread runs:
        iterating the dict in Python instead would let a lock-free reader's promotion
        (``move_to_end``) land mid-iteration, and OrderedDict raises on that.
        """
        snapshot = list(self._data.values())
        heap = [entry for entry in snapshot if entry.__class__ is not bytes]
        heapq.heapify(heap)
        self._expiries = heap  # type: ignore[assignment]

    def _make_room(self, now: float) -> None:
        """Free one place in a full cache; the lock is held.

        Expired entries go first, all of them; only then the least recently used live one.
        """
        data = self._data
        heap = self._expiries
        while heap and not now < heap[0][0]:
            entry = heapq.heappop(heap)
            if data.get(entry[1]) is entry:
                del data[entry[1]]
        if len(data) >= self._capacity:  # type: ignore[operator]
            data.popitem(last=False)


def memory_from_url(
    url: BackendURL, *, clock: Clock | None = None, namespace: str | None = None
) -> MemoryBackend:
    """``memory://?capacity=N&max_value_size=B`` (``capacity=none``: unbounded).

    Every instance is a namespace of its own, so ``namespace`` needs no handling here.
    """
    url.expect(host=False, path=False)
    capacity = url.pop_int("capacity", default=DEFAULT_CAPACITY, allow_none=True, minimum=1)
    max_value_size = url.pop_int("max_value_size", default=None, allow_none=True, minimum=0)
    url.expect_no_options()
    return MemoryBackend(capacity, clock=clock or time.monotonic, max_value_size=max_value_size)
