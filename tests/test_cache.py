"""The cache layer by example: serializers, guarded fills, write-through, events.

The staleness properties check these strategies under every interleaving; these tests pin
the single-caller behaviour and the error handling a user meets first.
"""

from __future__ import annotations

import copy
import math
import pickle
import threading

import pytest

from cachespec.backends import (
    NO_VALUE,
    BackendUnavailable,
    ConfigurationError,
    MemoryBackend,
)
from cachespec.backends.cache import DEFAULT_TTL, Cache, entry_version, is_lease
from cachespec.backends.serializers import (
    DecodeError,
    JSONSerializer,
    SignedPickleSerializer,
)
from cachespec.backends.singleflight import FlightTimeout, Group
from cachespec.backends.strategies import EventInvalidator, WriteThrough, naive_cache_aside
from cachespec.conformance import ManualClock
from cachespec.conformance.interleave import Scheduled, Scheduler
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
    with pytest.raises(TypeError, match="cannot store this object exactly"):
        cache.set("k", object())
    assert cache.get("k") is NO_VALUE
    with pytest.raises(DecodeError):
        JSONSerializer().loads(b"x???")


@pytest.mark.parametrize(
    "payload", [b"j", b"j{", b"j1 2", b"j[1]x", b"j\xff", b"j ", b"j" + b"[" * 100_000]
)
def test_json_refuses_malformed_payloads_with_decode_error(payload: bytes) -> None:
    # Trailing data and nesting too deep included: each is a DecodeError (a counted
    # miss in the cache), never a RecursionError in the caller's face.
    with pytest.raises(DecodeError, match="not a JSON payload"):
        JSONSerializer().loads(payload)


def test_json_reads_a_document_with_surrounding_whitespace() -> None:
    # Not what dumps writes, but valid JSON another writer may have produced.
    assert JSONSerializer().loads(b'j  {"a": [1, 2]} ') == {"a": [1, 2]}


def test_a_corrupt_fill_on_the_hit_path_is_a_counted_miss(cache: Cache) -> None:
    cache.get_or_compute("k", lambda: "first")
    raw = cache.backend.get("k")
    assert isinstance(raw, bytes)
    cache.backend.set("k", raw[:-3] + b"%%%")  # the frame intact, its payload not
    assert cache.get_or_compute("k", lambda: "second") == "second"
    assert cache.stats.decode_failures == 1
    assert cache.get_or_compute("k", lambda: "third") == "second"


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


def test_a_value_that_cannot_be_serialized_is_returned_and_releases_the_lease(
    cache: Cache,
) -> None:
    unstorable = object()  # a set is stored now (tagged JSON); an object() is not
    assert cache.get_or_compute("k", lambda: unstorable) is unstorable  # not lost
    assert cache.stats.fills_failed == 1
    assert cache.backend.get("k") is NO_VALUE
    with pytest.raises(TypeError):
        cache.set("k", unstorable)  # asked directly, the cache says it cannot


def test_a_caller_meeting_a_live_lease_waits_then_takes_over(clock: ManualClock) -> None:
    # Another process's fill holds the lease and dies: we wait (on the injected clock)
    # until the lease runs out, then compute and fill ourselves.
    cache = Cache(MemoryBackend(clock=clock), lease_ttl=30, clock=clock, sleep=clock.advance)
    cache.backend.add("k", b"L" + b"\x01" * 16, 30)
    assert cache.get_or_compute("k", lambda: "mine") == "mine"
    assert cache.get("k") == "mine"
    assert (cache.stats.lease_waits, cache.stats.lease_takeovers, cache.stats.computes) == (1, 1, 1)


def test_a_caller_meeting_a_lease_gets_the_holders_value_when_it_lands(
    clock: ManualClock,
) -> None:
    cache = Cache(MemoryBackend(clock=clock), clock=clock)
    lease = b"L" + b"\x02" * 16
    cache.backend.add("k", lease, 30)

    def holder_fills(seconds: float) -> None:  # while we wait, the holder finishes
        clock.advance(seconds)
        cache.backend.compare_and_set("k", lease, b"v" + cache.serializer.dumps("theirs"))

    cache._sleep = holder_fills
    assert cache.get_or_compute("k", lambda: "mine") == "theirs"
    assert (cache.stats.computes, cache.stats.shared, cache.stats.lease_waits) == (0, 1, 1)


def test_not_waiting_for_leases_computes_without_filling(cache: Cache) -> None:
    cache.wait_for_lease = False
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


class VersionedSource:
    """A source of truth with a version per key, as write-through needs."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, object]] = {}

    def write(self, key: str, value: object) -> int:
        version = self.rows.get(key, (0, None))[0] + 1
        self.rows[key] = (version, value)
        return version

    def version(self, key: str) -> int | None:
        return self.rows[key][0] if key in self.rows else None


def test_write_through_caches_what_it_wrote_and_only_moves_forward(cache: Cache) -> None:
    source = VersionedSource()
    through = WriteThrough(cache, source.write, source_version=source.version)
    through.write("absent", "a1")
    assert cache.get("absent") == "a1"  # the read after a write hits, the key absent before
    assert entry_version(cache.backend.get("absent")) == 1  # type: ignore[arg-type]
    cache.get_or_compute("k", lambda: "v0")  # an unversioned fill
    through.write("k", "v1")
    assert cache.get("k") == "v1"  # the fill of unknown version is replaced
    through.write("k", "v2")
    assert cache.get("k") == "v2"
    assert entry_version(cache.backend.get("k")) == 2  # type: ignore[arg-type]
    through._install("k", 1, cache.serializer.dumps("v1"))  # a slow writer of v1, late
    assert cache.get("k") == "v2"


def test_a_slow_writer_installs_nothing_once_the_source_moved_on(cache: Cache) -> None:
    """v2's copy expired (or was evicted): the key is absent, and v1's writer, late, asks
    the source before it installs, and finds v2 there."""
    source = VersionedSource()
    through = WriteThrough(cache, source.write, source_version=source.version)
    source.write("k", "v1")
    through.write("k", "v2")
    cache.invalidate("k")  # as if v2's copy had expired
    through._install("k", 1, cache.serializer.dumps("v1"))
    assert cache.backend.get("k") is NO_VALUE  # nor a lease left behind


def test_write_through_hands_the_source_its_own_key_and_caches_under_the_derived_one(
    cache: Cache,
) -> None:
    rows: dict[int, tuple[int, object]] = {}  # a source keyed by product id

    def write(product: int, price: object) -> int:
        version = rows.get(product, (0, None))[0] + 1
        rows[product] = (version, price)
        return version

    def version(product: int) -> int | None:
        return rows[product][0] if product in rows else None

    through = WriteThrough(cache, write, source_version=version, key=lambda p: f"price:{p}")
    through.write(7, 9.5)
    through.write(7, 10.0)
    assert rows == {7: (2, 10.0)}  # the source saw its own key, never the cache's
    assert cache.get("price:7") == 10.0
    assert through.cache_key(7) == "price:7"


def test_a_key_function_that_gives_no_str_fails_before_the_source_is_written(
    cache: Cache,
) -> None:
    written: list[object] = []

    def write(item: object, value: object) -> int:
        written.append(item)
        return 1

    for through in (
        WriteThrough(cache, write, source_version=lambda item: 1, key=lambda item: 7),  # type: ignore[arg-type, return-value]
        WriteThrough(cache, write, source_version=lambda item: 1),  # the item is the key
    ):
        with pytest.raises(TypeError, match="cache keys must be str"):
            through.write(7, "v")
    assert written == []
    with pytest.raises(ConfigurationError, match="key must be a function"):
        WriteThrough(cache, write, source_version=lambda item: 1, key="price:")  # type: ignore[arg-type]


def test_write_through_copies_live_its_ttl(clock: ManualClock) -> None:
    cache = Cache(MemoryBackend(clock=clock), default_ttl=60)
    source = VersionedSource()
    WriteThrough(cache, source.write, source_version=source.version, ttl=5).write("k", 1)
    clock.advance(4.9)
    assert cache.get("k") == 1
    clock.advance(0.1)
    assert cache.get("k") is NO_VALUE


def test_a_failed_source_write_leaves_the_cache_alone(cache: Cache) -> None:
    cache.set("k", "old")

    def down(key: str, value: object) -> int:
        raise ConnectionError("source down")

    with pytest.raises(ConnectionError):
        WriteThrough(cache, down, source_version=lambda key: None).write("k", "new")
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


@pytest.mark.parametrize("keys", ["ab", b"ab"])
def test_a_lone_str_is_not_a_batch_of_keys(cache: Cache, keys: str | bytes) -> None:
    # "ab" iterates as "a", "b": refused as the backends refuse it, before anything is read,
    # written or deleted.
    cache.set("a", 1)
    cache.set("b", 2)
    with pytest.raises(TypeError, match="expected an iterable of keys, got a single"):
        cache.get_many(keys)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected an iterable of keys, got a single"):
        cache.invalidate_many(keys)  # type: ignore[arg-type]
    assert cache.get_many(["a", "b"]) == {"a": 1, "b": 2}
    assert (cache.stats.misses, cache.stats.invalidations) == (0, 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lease_poll": 0}, "lease_poll must be a finite number > 0, got 0"),
        ({"lease_poll": -0.5}, "lease_poll must be a finite number > 0, got -0.5"),
        ({"lease_poll": math.nan}, "lease_poll must be a finite number > 0, got nan"),
        ({"lease_poll": "0.1"}, "lease_poll must be a number, got str: '0.1'"),
        ({"flight_timeout": -1}, "flight_timeout must be a finite number >= 0, got -1"),
        ({"flight_timeout": math.nan}, "flight_timeout must be a finite number >= 0, got nan"),
        ({"flight_timeout": math.inf}, "flight_timeout must be a finite number >= 0, got inf"),
        ({"beta": 0}, "beta must be a finite number > 0, got 0"),
        ({"beta": -1.0}, "beta must be a finite number > 0, got -1.0"),
        ({"beta": math.nan}, "beta must be a finite number > 0, got nan"),
        ({"beta": math.inf}, "beta must be a finite number > 0, got inf"),
        ({"beta": True}, "beta must be a number, got bool: True"),
        (
            {"early_refresh": True, "refresh_before": 10},
            "early_refresh=True .* and refresh_before=10 .* pass one of them, not both",
        ),
    ],
)
def test_bad_cache_options_are_configuration_errors_naming_them(
    clock: ManualClock, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Cache(MemoryBackend(clock=clock), **options)  # type: ignore[arg-type]


def test_the_limits_of_the_cache_options_are_accepted(clock: ManualClock) -> None:
    cache = Cache(MemoryBackend(clock=clock), flight_timeout=0, lease_poll=1e-6, beta=1e-6)
    assert (cache.lease_poll, cache.beta) == (1e-6, 1e-6)
    assert (
        Cache(MemoryBackend(clock=clock), early_refresh=False, refresh_before=5).refresh_before == 5
    )


@pytest.mark.parametrize(
    ("ttl", "error", "message"),
    [
        ("10", TypeError, "ttl must be a number of seconds .* got str: '10'"),
        (-1, ValueError, "ttl must be finite and greater than 0 seconds .* got -1"),
        (0, ValueError, "ttl must be finite and greater than 0 seconds .* got 0"),
        (math.nan, ValueError, "ttl must be finite and greater than 0 seconds .* got nan"),
    ],
)
def test_write_through_refuses_a_bad_ttl_when_built(
    cache: Cache, ttl: object, error: type[Exception], message: str
) -> None:
    source = VersionedSource()
    with pytest.raises(error, match=message):
        WriteThrough(cache, source.write, source_version=source.version, ttl=ttl)  # type: ignore[arg-type]
    assert source.rows == {}


def test_stats_are_readable(cache: Cache) -> None:
    cache.get("nothing")
    assert cache.stats.as_dict()["misses"] == 1


def test_concurrent_misses_compute_once_and_share_the_result() -> None:
    arrived = threading.Semaphore(0)

    def wait(done: threading.Event, timeout: float | None) -> bool:
        arrived.release()  # this caller is now waiting on the flight
        return done.wait(timeout)

    cache = Cache(MemoryBackend(), flight_timeout=30, flight_wait=wait)
    started, release = threading.Event(), threading.Event()
    results: list[object] = []

    def compute() -> str:
        started.set()
        release.wait(30)
        return "once"

    def call() -> None:
        results.append(cache.get_or_compute("k", compute))

    threads = [threading.Thread(target=call) for _ in range(8)]
    threads[0].start()
    assert started.wait(30)
    for thread in threads[1:]:
        thread.start()
    for _ in threads[1:]:
        assert arrived.acquire(timeout=30)  # all seven followers wait on the leader
    release.set()
    for thread in threads:
        thread.join(30)
    assert results == ["once"] * 8
    assert (cache.stats.computes, cache.stats.shared) == (1, 7)


class Source:
    """A source of truth whose reads the scheduler can stop at."""

    def __init__(self) -> None:
        self.value = "old"

    def read(self) -> str:
        if self.value == "down":
            raise ConnectionError("the source is down")
        return self.value


def scheduled_cache(clock: ManualClock) -> tuple[Scheduler, Cache, Source, Source]:
    """A cache whose backend calls, source reads and waits are the scheduler's points; the
    source as the tasks see it (each read a point), and the source itself."""
    scheduler = Scheduler(patience=10, on_stuck=lambda: clock.advance(1.0))
    backend = Scheduled(MemoryBackend(clock=clock), scheduler, "cache")
    cache = Cache(
        backend,  # type: ignore[arg-type]
        clock=clock,
        lease_ttl=5,
        sleep=scheduler.sleeper(),
        flight_wait=scheduler.waiter(clock),
    )
    truth = Source()
    seen: Source = Scheduled(truth, scheduler, "source")  # type: ignore[assignment]
    return scheduler, cache, seen, truth


def test_a_failed_flight_reaches_every_waiter_and_frees_the_key(clock: ManualClock) -> None:
    scheduler, cache, source, truth = scheduled_cache(clock)
    leader = scheduler.spawn("L", lambda: cache.get_or_compute("k", source.read))
    while leader.waiting_at != "source.read()":
        scheduler.step(leader)
    waiter = scheduler.spawn("W", lambda: cache.get_or_compute("k", source.read))
    scheduler.step(waiter)  # W misses and joins L's flight
    assert waiter.blocked
    truth.value = "down"
    scheduler.finish()
    assert isinstance(leader.error, ConnectionError)
    assert waiter.error is leader.error  # the leader's very exception
    assert cache.stats.computes == 1
    assert cache._flights is not None
    assert cache._flights.in_flight() == []
    assert cache.backend.get("k") is NO_VALUE  # the lease was released
    truth.value = "new"
    assert cache.get_or_compute("k", lambda: "next") == "next"  # a new flight


def test_a_read_after_an_invalidation_never_joins_an_older_flight(clock: ManualClock) -> None:
    scheduler, cache, source, truth = scheduled_cache(clock)
    leader = scheduler.spawn("L", lambda: cache.get_or_compute("k", source.read))
    scheduler.step(leader)  # L misses
    scheduler.step(leader)  # L takes the lease
    scheduler.step(leader)  # L reads the source: "old"
    truth.value = "new"
    cache.invalidate("k")  # a writer changed the source, then invalidated
    reader = scheduler.spawn("R", lambda: cache.get_or_compute("k", source.read))
    scheduler.run_to_end(reader)
    scheduler.finish()
    assert (leader.result, reader.result) == ("old", "new")
    assert cache.get("k") == "new"
    assert (cache.stats.computes, cache.stats.shared, cache.stats.fills_dropped) == (2, 0, 1)


def test_a_lease_left_behind_is_waited_out_on_the_clock(clock: ManualClock) -> None:
    scheduler, cache, source, _ = scheduled_cache(clock)
    cache.backend.add("k", b"L" + b"\x03" * 16, 5)  # a caller that died holding the lease
    start = clock()
    reader = scheduler.spawn("R", lambda: cache.get_or_compute("k", source.read))
    scheduler.run_to_end(reader)
    assert reader.result == "old"
    assert clock() - start >= 5  # it waited the lease out: time passed only on the clock
    assert (cache.stats.lease_waits, cache.stats.lease_takeovers) == (1, 1)  # one wait, polled


def test_a_waiter_gives_up_after_the_timeout() -> None:
    group: Group[str] = Group(timeout=0.05)
    release = threading.Event()
    running = threading.Event()

    def slow() -> str:
        running.set()
        release.wait(30)
        return "v"

    leader = threading.Thread(target=lambda: group.do("k", slow))
    leader.start()
    assert running.wait(30)
    with pytest.raises(FlightTimeout, match=r"waited 0\.05 s"):
        group.do("k", lambda: "mine")
    release.set()
    leader.join(30)


def test_xfetch_refreshes_when_its_formula_says(clock: ManualClock) -> None:
    draws = [1.0]
    cache = Cache(
        MemoryBackend(clock=clock),
        clock=clock,
        early_refresh=True,
        beta=1.0,
        random=lambda: draws[0],
    )
    ticks = iter([2.0])  # the first compute takes 2 s on the cache's clock
    versions = iter(["v1", "v2"])

    def compute() -> str:
        clock.advance(next(ticks, 0.0))
        return next(versions)

    cache.get_or_compute("k", compute, ttl=100)  # expiry = 1000 + 2 + 100, delta = 2
    expiry = clock() + 100
    draws[0] = math.exp(-10)  # -delta * beta * ln(rand) = 2 * 10 = 20 seconds early
    clock.advance_to(expiry - 20.001)
    assert cache.get_or_compute("k", compute, ttl=100) == "v1"
    assert (cache.stats.early_refreshes, cache.stats.computes) == (0, 1)
    clock.advance_to(expiry - 19.999)
    assert cache.get_or_compute("k", compute, ttl=100) == "v2"
    assert (cache.stats.early_refreshes, cache.stats.computes) == (1, 2)
    # the refreshed value replaced the old one, with a fresh TTL
    clock.advance_to(expiry + 50)
    draws[0] = 1.0
    assert cache.get("k") == "v2"


def test_an_early_refresh_never_overwrites_an_invalidation(clock: ManualClock) -> None:
    cache = Cache(MemoryBackend(clock=clock), clock=clock, early_refresh=True, random=lambda: 1e-9)

    def slow_compute() -> str:
        clock.advance(1.0)  # XFetch refreshes early in proportion to the compute time
        return "old"

    cache.get_or_compute("k", slow_compute, ttl=10)

    def compute_while_invalidated() -> str:
        cache.invalidate("k")  # a writer changes the source and invalidates meanwhile
        return "computed before the invalidation"

    clock.advance(9.0)
    assert cache.get_or_compute("k", compute_while_invalidated, ttl=10) == (
        "computed before the invalidation"
    )
    assert (cache.stats.early_refreshes, cache.stats.fills_dropped) == (1, 1)
    assert cache.get("k") is NO_VALUE


def test_a_lease_without_expiry_is_refused(clock: ManualClock) -> None:
    with pytest.raises(ConfigurationError, match="lease_ttl"):
        Cache(MemoryBackend(clock=clock), lease_ttl=None)  # type: ignore[arg-type]


def test_each_new_lease_holder_gets_its_own_lease_time(clock: ManualClock) -> None:
    # Holder A's lease expires while we wait and B takes the key: we wait for B's value,
    # not compute beside B because A's lease time is up.
    backend = MemoryBackend(clock=clock)
    lease_a, lease_b = b"L" + b"\x0a" * 16, b"L" + b"\x0b" * 16
    backend.add("k", lease_a, 10)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)
        if clock() >= 1010:
            backend.add("k", lease_b, 10)  # B takes over once A's lease has run out
        if clock() >= 1015:
            backend.compare_and_set("k", lease_b, b"v" + JSONSerializer().dumps("B's"))

    waiting = Cache(backend, clock=clock, lease_ttl=10, lease_poll=0.5, sleep=sleep)
    assert waiting.get_or_compute("k", lambda: "mine") == "B's"
    assert waiting.stats.computes == 0
    assert sum(slept) >= 15


def test_soft_ttl_refreshes_a_hit_once_it_is_due(clock: ManualClock) -> None:
    cache = Cache(MemoryBackend(clock=clock), clock=clock, refresh_before=10)
    values = iter(["v1", "v2"])
    cache.get_or_compute("k", lambda: next(values), ttl=60)
    clock.advance(49.999)
    assert cache.get_or_compute("k", lambda: next(values), ttl=60) == "v1"
    clock.advance(0.001)  # 10 s before expiry: due
    assert cache.get_or_compute("k", lambda: next(values), ttl=60) == "v2"
    assert (cache.stats.early_refreshes, cache.stats.computes) == (1, 2)


def test_while_one_caller_refreshes_the_others_get_the_cached_value(clock: ManualClock) -> None:
    cache = Cache(MemoryBackend(clock=clock), clock=clock, refresh_before=10)
    cache.get_or_compute("k", lambda: "old", ttl=60)
    clock.advance(55)
    refreshing, release = threading.Event(), threading.Event()

    def slow_refresh() -> str:
        refreshing.set()
        release.wait(30)
        return "new"

    refresher = threading.Thread(target=lambda: cache.get_or_compute("k", slow_refresh, ttl=60))
    refresher.start()
    assert refreshing.wait(30)
    assert cache.get_or_compute("k", lambda: "never", ttl=60) == "old"  # no wait, no compute
    release.set()
    refresher.join(30)
    assert cache.get("k") == "new"
    assert (cache.stats.stale_served, cache.stats.computes) == (1, 2)


def test_one_process_refreshes_and_the_others_serve_the_old_value(clock: ManualClock) -> None:
    backend = MemoryBackend(clock=clock)
    first, second = (
        Cache(backend, clock=clock, refresh_before=10, single_flight=False) for _ in range(2)
    )
    first.get_or_compute("k", lambda: "old", ttl=60)
    clock.advance(55)  # due for refresh in both processes

    def refresh_while_the_other_reads() -> str:
        # While this process refreshes, the other one reads: the old value, no compute.
        assert second.get_or_compute("k", lambda: "second's", ttl=60) == "old"
        return "new"

    assert first.get_or_compute("k", refresh_while_the_other_reads, ttl=60) == "new"
    assert second.get_or_compute("k", lambda: "second's", ttl=60) == "new"
    assert (first.stats.early_refreshes, second.stats.computes) == (1, 0)


def test_a_failed_refresh_leaves_the_old_value_for_the_next_caller(clock: ManualClock) -> None:
    cache = Cache(MemoryBackend(clock=clock), clock=clock, refresh_before=10)
    cache.get_or_compute("k", lambda: "old", ttl=60)
    clock.advance(55)

    def fails() -> str:
        raise ConnectionError("the source is down")

    with pytest.raises(ConnectionError):
        cache.get_or_compute("k", fails, ttl=60)
    assert cache.get_or_compute("k", lambda: "new", ttl=60) == "new"  # refreshed this time
    clock.advance(59)
    assert cache.get("k") == "new"


def test_an_invalidation_during_a_refresh_wins(clock: ManualClock) -> None:
    cache = Cache(MemoryBackend(clock=clock), clock=clock, refresh_before=10)
    cache.get_or_compute("k", lambda: "old", ttl=60)
    clock.advance(55)

    def invalidated_meanwhile() -> str:
        cache.invalidate("k")
        return "computed before the invalidation"

    assert cache.get_or_compute("k", invalidated_meanwhile, ttl=60) == (
        "computed before the invalidation"
    )
    assert cache.get("k") is NO_VALUE


def test_a_flight_older_than_the_lease_time_is_not_joined(clock: ManualClock) -> None:
    # A compute that has run longer than a lease would hold may return a value that is far
    # out of date by now: a later caller computes anew instead of sharing it.
    scheduler, cache, source, truth = scheduled_cache(clock)  # lease_ttl=5
    leader = scheduler.spawn("L", lambda: cache.get_or_compute("k", source.read))
    while leader.waiting_at != "source.read()":
        scheduler.step(leader)
    clock.advance(5)
    truth.value = "new"
    late = scheduler.spawn("R", lambda: cache.get_or_compute("k", source.read))
    scheduler.run_to_end(late)
    assert late.result == "new"
    scheduler.finish()
    assert (cache.stats.computes, cache.stats.shared) == (2, 0)


def test_a_caller_joins_no_flight_older_than_its_own_ttl(clock: ManualClock) -> None:
    # The group shares flights for 5 s (the lease time); a caller whose TTL is 2 s does not
    # join one 3 s old: its compute read the source before anything a 2 s entry could hold.
    group: Group[str] = Group(max_age=5, clock=clock)
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(30)
        return "old"

    leader = threading.Thread(target=lambda: group.do("k", slow))
    leader.start()
    assert started.wait(30)
    clock.advance(3)
    assert group.do("k", lambda: "new", max_age=2) == ("new", False)  # a flight of its own
    release.set()
    leader.join(30)


def test_default_ttl_survives_copy_and_pickle(cache: Cache, clock: ManualClock) -> None:
    # Strategies travel to other processes pickled: the marker must stay the marker.
    assert copy.deepcopy(DEFAULT_TTL) is DEFAULT_TTL
    assert pickle.loads(pickle.dumps(DEFAULT_TTL)) is DEFAULT_TTL
    cache.get_or_compute("k", lambda: "v", copy.copy(DEFAULT_TTL))
    clock.advance(60)  # the cache's default_ttl applied
    assert cache.get("k") is NO_VALUE


class _RawBytes:
    """A serializer whose payload for b"" is empty: the frame is then its header alone."""

    def dumps(self, value: object) -> bytes:
        assert isinstance(value, bytes)
        return value

    def loads(self, data: bytes) -> object:
        return data


def test_an_empty_payload_of_a_custom_serializer_is_a_hit(clock: ManualClock) -> None:
    cache = Cache(MemoryBackend(clock=clock), serializer=_RawBytes(), default_ttl=60)
    assert cache.get_or_compute("k", lambda: b"") == b""
    assert cache.get_or_compute("k", lambda: b"other") == b""  # the hot path
    assert cache.get("k") == b""  # the general decoder
    assert (cache.stats.hits, cache.stats.decode_failures) == (2, 0)


def test_a_corrupt_entry_on_a_cache_that_dies_still_falls_through(clock: ManualClock) -> None:
    """get found an entry that does not decode, then the cache died before the entry could
    be dropped: get_or_compute still returns the source's value (it used to raise)."""

    class DiesAfterGet(MemoryBackend):
        def compare_and_delete(self, key: str, expected: bytes) -> bool:
            raise BackendUnavailable("the cache went down (injected)")

        def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
            raise BackendUnavailable("the cache went down (injected)")

    backend = DiesAfterGet(clock=clock)
    backend.set("k", b"?not an entry this cache wrote")
    cache = Cache(backend)
    assert cache.get_or_compute("k", lambda: "from the source") == "from the source"
    assert cache.stats.decode_failures == 1
    assert cache.stats.errors >= 1
