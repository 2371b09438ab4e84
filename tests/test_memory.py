"""The in-memory backend's own tests: the contract by example, its options, its internals.

The conformance suite checks its semantics exhaustively (``test_suite_clean.py``); these
tests pin what the suite does not see: URL options, error messages, memory housekeeping.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import pytest

from cachespec.backends import (
    NO_VALUE,
    ConfigurationError,
    MemoryBackend,
    ValueTooLarge,
    check_items,
    check_key,
    check_keys,
    check_ttl,
    check_value,
    open_backend,
)
from cachespec.conformance import ManualClock
from cachespec.spec import ExactLRU, NoEviction


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_round_trip_of_falsy_values_and_misses(clock: ManualClock) -> None:
    cache = MemoryBackend(clock=clock)
    cache.set("empty", b"")
    assert cache.get("empty") == b""
    assert cache.get("absent") is NO_VALUE
    assert cache.get_many(["empty", "absent"]) == {"empty": b""}


def test_no_value_refuses_to_be_a_truth_value() -> None:
    with pytest.raises(TypeError, match="is NO_VALUE"):
        bool(NO_VALUE)
    assert repr(NO_VALUE) == "NO_VALUE"


def test_expiry_is_exact_on_the_injected_clock(clock: ManualClock) -> None:
    cache = MemoryBackend(clock=clock)
    cache.set("k", b"v", ttl=1.5)
    clock.advance_to(math.nextafter(clock() + 1.5, 0))
    assert cache.get("k") == b"v"
    clock.advance(1.5)
    assert cache.get("k") is NO_VALUE


def test_bytes_subclasses_are_stored_as_plain_bytes(clock: ManualClock) -> None:
    class Tagged(bytes):
        pass

    cache = MemoryBackend(clock=clock)
    cache.set("k", Tagged(b"v"))
    assert type(cache.get("k")) is bytes


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.get(1), TypeError),
        (lambda c: c.get_many("abc"), TypeError),
        (lambda c: c.delete_many(b"ab"), TypeError),
        (lambda c: c.set_many([("k", b"v")]), TypeError),
        (lambda c: c.set("k", "v"), TypeError),
        (lambda c: c.set("k", b"v", ttl=0), ValueError),
        (lambda c: c.add("k", b"v", ttl=True), TypeError),
    ],
)
def test_bad_arguments_raise_typed_errors(
    clock: ManualClock, call: object, error: type[Exception]
) -> None:
    cache = MemoryBackend(clock=clock)
    with pytest.raises(error):
        call(cache)  # type: ignore[operator]


def test_value_over_the_limit_leaves_the_old_entry(clock: ManualClock) -> None:
    cache = MemoryBackend(clock=clock, max_value_size=4)
    cache.set("k", b"1234")
    with pytest.raises(ValueTooLarge, match="5 bytes, over this backend's limit of 4") as info:
        cache.set("k", b"12345")
    assert (info.value.key, info.value.size, info.value.limit) == ("k", 5, 4)
    with pytest.raises(ValueTooLarge):
        cache.set_many({"j": b"1", "k": b"12345"})
    assert cache.get_many(["k", "j"]) == {"k": b"1234"}


def test_expiry_heap_stays_proportional_to_the_cache(clock: ManualClock) -> None:
    cache = MemoryBackend(capacity=8, clock=clock)
    for i in range(10_000):
        cache.set("same", str(i).encode(), ttl=60)
    assert len(cache._expiries) <= 2 * len(cache._data) + 64
    assert cache.get("same") == b"9999"


def test_expired_entries_make_room_before_live_ones(clock: ManualClock) -> None:
    cache = MemoryBackend(capacity=2, clock=clock)
    cache.set("live", b"1")
    cache.set("brief", b"2", ttl=1)
    clock.advance(1)
    cache.set("new", b"3")
    assert cache.get_many(["live", "brief", "new"]) == {"live": b"1", "new": b"3"}


def test_a_read_that_meets_an_expired_entry_drops_it(clock: ManualClock) -> None:
    cache = MemoryBackend(clock=clock)
    cache.set("k", b"v", ttl=1)
    clock.advance(2)
    assert cache.get("k") is NO_VALUE
    assert "k" not in cache._data


def test_unbounded_and_bounded_declare_their_profiles(clock: ManualClock) -> None:
    assert MemoryBackend(None, clock=clock).guarantees.eviction == NoEviction()
    assert MemoryBackend(7, clock=clock).guarantees.eviction == ExactLRU(7)
    assert MemoryBackend(clock=clock).guarantees.thread_safe


@pytest.mark.parametrize(
    ("url", "capacity", "limit"),
    [
        ("memory://", 1024, None),
        ("memory://?capacity=5", 5, None),
        ("memory://?capacity=none&max_value_size=10", None, 10),
    ],
)
def test_urls_set_the_options(url: str, capacity: int | None, limit: int | None) -> None:
    backend = open_backend(url)
    assert isinstance(backend, MemoryBackend)
    assert backend._capacity == capacity
    assert backend.guarantees.max_value_size == limit


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory://?capasity=5", r"unknown option\(s\) capasity \(known: capacity, max_"),
        ("memory://?capacity=0", "must be at least 1"),
        ("memory://?capacity=ten", "not a whole number"),
        ("memory://?capacity=1&capacity=2", "given twice"),
        ("memory://somehost", "takes no host"),
        ("memory:///path", "takes no path"),
        ("nosuch://", "no backend for scheme 'nosuch'"),
        ("memory", "not a URL"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_backend(url)


def test_constructor_refuses_bad_options() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        MemoryBackend(0)
    with pytest.raises(ConfigurationError, match="max_value_size"):
        MemoryBackend(max_value_size=-1)
    with pytest.raises(ConfigurationError, match="clock must be a callable"):
        MemoryBackend(clock=5)  # type: ignore[arg-type]


def test_many_threads_keep_capacity_and_values_intact() -> None:
    cache = MemoryBackend(capacity=50)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        barrier.wait()
        try:
            for i in range(2_000):
                key = f"k{(n * 7 + i) % 120}"
                cache.set(key, key.encode(), ttl=None if i % 3 else 5.0)
                found = cache.get(key)
                assert found is NO_VALUE or found == key.encode()
                cache.get_many([key, "k1", "k2"])
                if i % 11 == 0:
                    cache.delete(key)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(cache._data) <= 50


def test_the_argument_checks_a_wrapper_needs_are_exported() -> None:
    """The README's table: what each check returns and raises, as a wrapper imports it."""

    class Tagged(bytes):
        pass

    assert check_key("k") == "k"
    assert type(check_value("k", Tagged(b"v"))) is bytes
    assert check_value("k", Tagged(b"v")) == b"v"
    assert check_ttl(None) is None
    assert check_ttl(2) == 2.0
    assert check_keys(iter(["a", "b"])) == ["a", "b"]
    assert check_items({"a": b"1"}) == [("a", b"1")]
    wrong: object = {"a": "1"}  # what a caller without type checks may pass
    cases: list[tuple[Callable[[], object], type[Exception]]] = [
        (lambda: check_key(b"k"), TypeError),
        (lambda: check_value("k", "v"), TypeError),
        (lambda: check_value("k", bytearray(b"v")), TypeError),
        (lambda: check_value("k", b"12345", limit=4), ValueTooLarge),
        (lambda: check_ttl(True), TypeError),
        (lambda: check_ttl(0), ValueError),
        (lambda: check_ttl(float("nan")), ValueError),
        (lambda: check_keys("ab"), TypeError),
        (lambda: check_items(wrong), TypeError),  # type: ignore[arg-type]
    ]
    for call, error in cases:
        with pytest.raises(error):
            call()
