"""The obviously correct backend the mutants change one rule of (tests/mutants.py), and the
correct caches of other eviction orders start from (tests/order_backends.py): a dict, a
recency list, one lock, an injected clock. It passes the whole suite."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from cachespec.backends import NO_VALUE, Backend, NoValue
from cachespec.backends.contract import check_items, check_key, check_keys, check_value
from cachespec.conformance import ManualClock
from cachespec.spec import ExactLRU, Guarantees, validate_ttl

CAPACITY = 4
SIZE_LIMIT = 64


class Entry:
    __slots__ = ("expires", "value")

    def __init__(self, value: bytes, expires: float | None) -> None:
        self.value = value
        self.expires = expires


class PlainBackend(Backend):
    """An obviously correct backend: a dict, a recency list, one lock, an injected clock."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        capacity: int | None = CAPACITY,
        max_value_size: int | None = None,
    ) -> None:
        self.clock = clock
        self.capacity = capacity
        self.max_value_size = max_value_size
        self.entries: dict[str, Entry] = {}
        self.order: list[str] = []  # least recently used first
        self.lock = threading.RLock()
        self.guarantees = Guarantees(
            eviction=ExactLRU(capacity) if capacity else Guarantees().eviction,
            max_value_size=max_value_size,
            thread_safe=True,
            compare_and_set=True,
        )

    # -- the rules mutants break --------------------------------------------------------
    def live(self, entry: Entry, now: float) -> bool:
        return entry.expires is None or now < entry.expires

    def expiry(self, ttl: float | None, now: float) -> float | None:
        return None if ttl is None else now + ttl

    def touch(self, key: str) -> None:
        self.order.remove(key)
        self.order.append(key)

    def over_capacity(self) -> bool:
        return self.capacity is not None and len(self.entries) > self.capacity

    def victim(self) -> str:
        return self.order[0]

    def is_hit(self, entry: Entry) -> bool:
        return True

    def map_key(self, key: str) -> str:
        return key

    # -- the contract, in terms of the rules ---------------------------------------------
    def lookup(self, key: str, now: float) -> bytes | NoValue:
        stored = self.map_key(key)
        entry = self.entries.get(stored)
        if entry is None or not self.live(entry, now) or not self.is_hit(entry):
            return NO_VALUE
        self.touch(stored)
        return entry.value

    def get(self, key: str) -> bytes | NoValue:
        check_key(key)
        with self.lock:
            return self.lookup(key, self.clock())

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = check_keys(keys)
        with self.lock:
            now = self.clock()
            found = {}
            for key in wanted:
                value = self.lookup(key, now)
                if value is not NO_VALUE:
                    found[key] = value
            return found

    def store(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        stored = self.map_key(key)
        if stored in self.entries:
            self.order.remove(stored)
        self.entries[stored] = Entry(value, self.expiry(ttl, now))
        self.order.append(stored)
        self.make_room(now)

    def make_room(self, now: float) -> None:
        for k in [k for k, e in self.entries.items() if not self.live(e, now)]:
            if self.over_capacity():
                self.forget(k)
        while self.over_capacity():
            self.forget(self.victim())

    def forget(self, stored: str) -> None:
        if self.entries.pop(stored, None) is not None:
            self.order.remove(stored)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        data = check_value(check_key(key), value, self.max_value_size)
        seconds = validate_ttl(ttl)
        with self.lock:
            self.store(key, data, seconds, self.clock())

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = check_items(items, self.max_value_size)
        seconds = validate_ttl(ttl)
        with self.lock:
            now = self.clock()
            for key, data in checked:
                self.store(key, data, seconds, now)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        data = check_value(check_key(key), value, self.max_value_size)
        seconds = validate_ttl(ttl)
        with self.lock:
            now = self.clock()
            entry = self.entries.get(self.map_key(key))
            if entry is not None and self.live(entry, now):
                return False
            self.store(key, data, seconds, now)
            return True

    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        data = check_value(check_key(key), value, self.max_value_size)
        seconds = validate_ttl(ttl)
        with self.lock:
            now = self.clock()
            if not self.matches(key, expected, now):
                return False
            self.store(key, data, seconds, now)
            return True

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        with self.lock:
            if not self.matches(check_key(key), expected, self.clock()):
                return False
            self.forget(self.map_key(key))
            return True

    def matches(self, key: str, expected: bytes, now: float) -> bool:
        entry = self.entries.get(self.map_key(key))
        return entry is not None and self.live(entry, now) and entry.value == expected

    def delete(self, key: str) -> None:
        check_key(key)
        with self.lock:
            self.forget(self.map_key(key))

    def delete_many(self, keys: Iterable[str]) -> None:
        with self.lock:
            for key in check_keys(keys):
                self.forget(self.map_key(key))

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.order.clear()


def plain(clock: ManualClock) -> PlainBackend:
    return PlainBackend(clock)
