"""The cache layer by example: serializers, guarded fills, write-through, events.

The staleness properties check these strategies under every interleaving; these tests pin
the single-caller behaviour and the error handling a user meets first.
"""

from __future__ import annotations

import pickle

import pytest

from cachespec.backends import (
    NO_VALUE,
    BackendUnavailable,
    ConfigurationError,
    MemoryBackend,
)
from cachespec.backends.cache import Cache, entry_version, is_lease
from cachespec.backends.serializers import (
    DecodeError,
    JSONSerializer,
    SignedPickleSerializer,
)
from cachespec.backends.strategies import EventInvalidator, WriteThrough, naive_cache_aside
from cachespec.conformance import ManualClock
from cachespec.spec import Guarantees


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cache(clock: ManualClock) -> Cache:
    return Cache(MemoryBackend(clock=clock), default_ttl=60)


@pytest.mark.parametrize("value", [None, False, 0, 0.0, "", [], {}, b"", b"\x00", "é", [1, "x"]])
def test_json_round_trips_falsy_and_plain_values(value: object) -> None:
    serializer = JSONSerializer()
    assert serializer.loads(serializer.dumps(value)) == value


def test_json_refuses_what_it_cannot_store_before_writing(cache: Cache) -> None:
    with pytest.raises(TypeError, match="cannot serialize set as JSON"):
        cache.set("k", {1, 2})
    assert cache.get("k") is NO_VALUE
    with pytest.raises(DecodeError):
        JSONSerializer().loads(b"x???")


def test_signed_pickle_round_trips_and_refuses_forgeries() -> None:
    signed = SignedPickleSerializer(b"s" * 32)
    assert signed.loads(signed.dumps({"a": (1, 2)})) == {"a": (1, 2)}
    forged = b"\x00" * 32 + pickle.dumps("anything")
    with pytest.raises(DecodeError, match="does not verify"):
        signed.loads(forged)
    other = SignedPickleSerializer(b"t" * 32)
    with pytest.raises(DecodeError):
        other.loads(signed.dumps("x"))
    with pytest.raises(ValueError, match="at least 16 bytes"):
        SignedPickleSerializer(b"short")


def test_a_cached_falsy_value_is_a_hit(cache: Cache) -> None:
    cache.set("empty", "")
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        return "x"

    assert cache.get_or_compute("empty", compute) == ""
    assert calls == []
    assert cache.stats.hits == 1


def test_get_or_compute_fills_once_and_then_hits(cache: Cache) -> None:
    assert cache.get_or_compute("k", lambda: {"price": 10}) == {"price": 10}
    assert cache.get_or_compute("k", lambda: {"price": 99}) == {"price": 10}
    assert (cache.stats.misses, cache.stats.fills, cache.stats.hits) == (1, 1, 1)


def test_an_invalidation_during_the_compute_drops_the_fill(cache: Cache) -> None:
    def compute() -> str:
        cache.invalidate("k")  # a writer invalidates while the source is being read
        return "old"

    assert cache.get_or_compute("k", compute) == "old"
    assert cache.get("k") is NO_VALUE
    assert cache.stats.fills_dropped == 1


def test_the_naive_fill_lets_the_stale_value_in(cache: Cache) -> None:
    def compute() -> str:
        cache.invalidate("k")
        return "old"

    naive_cache_aside(cache, "k", compute, 60)
    assert cache.get("k") == "old"  # the stale-set race, by hand


def test_a_failed_compute_releases_the_lease(cache: Cache) -> None:
    def broken() -> str:
        raise RuntimeError("source down")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("k", broken)
    assert cache.backend.get("k") is NO_VALUE  # no lease left behind
    assert cache.get_or_compute("k", lambda: "fresh") == "fresh"
    assert cache.get("k") == "fresh"


def test_a_value_that_cannot_be_serialized_releases_the_lease(cache: Cache) -> None:
    with pytest.raises(TypeError):
        cache.get_or_compute("k", lambda: {1, 2})
    assert cache.backend.get("k") is NO_VALUE


def test_a_caller_meeting_a_lease_computes_without_filling(cache: Cache) -> None:
    cache.backend.add("k", b"L" + b"\x01" * 16, 30)
    assert cache.get_or_compute("k", lambda: "mine") == "mine"
    held = cache.backend.get("k")
    assert held is not NO_VALUE
    assert is_lease(held)


def test_a_failing_cache_falls_through_to_the_source(clock: ManualClock) -> None:
    class Down(MemoryBackend):
        def get(self, key: str) -> bytes:
            raise BackendUnavailable("down")

    cache = Cache(Down(clock=clock))
    assert cache.get_or_compute("k", lambda: "from source") == "from source"
    assert cache.stats.errors == 1


def test_an_undecodable_entry_is_a_counted_miss_and_is_dropped(cache: Cache) -> None:
    cache.backend.set("k", b"v" + b"not json")
    assert cache.get("k") is NO_VALUE
    assert cache.stats.decode_failures == 1
    assert cache.backend.get("k") is NO_VALUE


def test_guarded_fills_need_compare_and_set(clock: ManualClock) -> None:
    class Plain(MemoryBackend):
        pass

    backend = Plain(clock=clock)
    backend.guarantees = Guarantees(thread_safe=True)
    with pytest.raises(ConfigurationError, match="compare_and_set"):
        Cache(backend)
    assert Cache(backend, guarded=False).get("k") is NO_VALUE


def test_write_through_writes_the_source_first_and_only_moves_forward(cache: Cache) -> None:
    source: dict[str, tuple[int, object]] = {}

    def write(key: str, value: object) -> int:
        version = source.get(key, (0, None))[0] + 1
        source[key] = (version, value)
        return version

    through = WriteThrough(cache, write, safety_ttl=60)
    cache.get_or_compute("k", lambda: "v0")  # an unversioned fill
    through.write("k", "v1")
    assert cache.get("k") is NO_VALUE  # unknown versions are removed, not overwritten
    cache.backend.set("k", b"V" + (1).to_bytes(8, "big") + cache.serializer.dumps("v1"))
    through.write("k", "v2")
    assert cache.get("k") == "v2"
    assert entry_version(cache.backend.get("k")) == 2  # type: ignore[arg-type]


def test_a_failed_source_write_leaves_the_cache_alone(cache: Cache) -> None:
    cache.set("k", "old")

    def down(key: str, value: object) -> int:
        raise ConnectionError("source down")

    with pytest.raises(ConnectionError):
        WriteThrough(cache, down, safety_ttl=60).write("k", "new")
    assert cache.get("k") == "old"


def test_event_invalidation_needs_a_safety_net_ttl(clock: ManualClock) -> None:
    with pytest.raises(ConfigurationError, match="safety-net TTL"):
        EventInvalidator(Cache(MemoryBackend(clock=clock)))
    cache = Cache(MemoryBackend(clock=clock), default_ttl=60)
    invalidator = EventInvalidator(cache)
    cache.set("a", 1)
    cache.set("b", 2)
    invalidator.consume(["a", ["b", "a"], "b"])  # duplicates and any order are harmless
    assert cache.get_many(["a", "b"]) == {}
    assert invalidator.handled == 3


def test_stats_are_readable(cache: Cache) -> None:
    cache.get("nothing")
    assert cache.stats.as_dict()["misses"] == 1
