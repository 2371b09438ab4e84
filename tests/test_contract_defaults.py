"""A wrapper that implements only get, set, add, delete and clear gets the batch operations
from the contract, and they pass the suite's batch properties."""

from __future__ import annotations

import threading

import pytest

from cachespec.backends import (
    NO_VALUE,
    Backend,
    NoValue,
    ValueTooLarge,
    check_key,
    check_ttl,
    check_value,
)
from cachespec.conformance import ManualClock, Target, run_suite
from cachespec.spec import Guarantees


class FiveMethods(Backend):
    """A dict with TTLs on the harness's clock: only the contract's required operations."""

    def __init__(self, clock: ManualClock, max_value_size: int | None = None) -> None:
        self.guarantees = Guarantees(thread_safe=True, max_value_size=max_value_size)
        self._clock = clock
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str) -> bytes | NoValue:
        entry = self._data.get(key)
        if entry is None:
            return NO_VALUE
        value, expires = entry
        if expires is not None and not self._clock() < expires:
            del self._data[key]
            return NO_VALUE
        return value

    def get(self, key: str) -> bytes | NoValue:
        with self._lock:
            return self._live(check_key(key))

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        data = check_value(check_key(key), value, self.guarantees.max_value_size)
        seconds = check_ttl(ttl)
        with self._lock:
            self._data[key] = (data, None if seconds is None else self._clock() + seconds)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        data = check_value(check_key(key), value, self.guarantees.max_value_size)
        seconds = check_ttl(ttl)
        with self._lock:
            if self._live(key) is not NO_VALUE:
                return False
            self._data[key] = (data, None if seconds is None else self._clock() + seconds)
            return True

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(check_key(key), None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


BATCH_PROPERTIES = ["ops.get_many", "ops.set_many", "ops.delete_many", "keys.type", "values.type"]


def test_the_contracts_batch_operations_pass_the_batch_properties() -> None:
    report = run_suite(Target("five-methods", FiveMethods), seed=1, only=BATCH_PROPERTIES)
    assert report.failed() == []
    assert report.checked == len(BATCH_PROPERTIES)


def test_set_many_checks_every_value_before_it_writes_one() -> None:
    backend = FiveMethods(ManualClock(), max_value_size=4)
    with pytest.raises(ValueTooLarge):
        backend.set_many({"a": b"ok", "b": b"too large"})
    assert backend.get("a") is NO_VALUE  # nothing half-written
    with pytest.raises(TypeError):
        backend.get_many("ab")  # a lone str is not a batch of its characters
