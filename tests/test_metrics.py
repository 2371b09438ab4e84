"""Metrics: the counters a collector reads, and get_or_compute's latency only when asked."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from cachespec import Cache, ConfigurationError, MemoryBackend, cached
from cachespec.backends.metrics import DESCRIPTIONS, opentelemetry, time_calls
from cachespec.backends.sampling import Ticker
from cachespec.conformance import ManualClock


def _cache() -> Cache[Any]:
    clock = ManualClock()
    return Cache(MemoryBackend(clock=clock), clock=clock)


def test_time_calls_times_every_call_its_way_and_stops() -> None:
    cache = _cache()
    seen: list[float] = []
    stop = time_calls(cache, seen.append)
    assert cache.get_or_compute("k", lambda: 1) == 1
    assert cache.get_or_compute("k", lambda: 2, ttl=None) == 1  # keyword ttl passes through
    with pytest.raises(ZeroDivisionError):
        cache.get_or_compute("boom", lambda: 1 // 0)  # a failing call is timed too
    assert len(seen) == 3
    assert all(seconds >= 0 for seconds in seen)
    with pytest.raises(ValueError, match="timed already"):
        time_calls(cache, seen.append)
    stop()
    assert "get_or_compute" not in vars(cache)  # the method itself again: nothing on its path
    cache.get_or_compute("k", lambda: 3)
    assert len(seen) == 3


def test_time_calls_samples_every_nth_call_and_refuses_bad_rates() -> None:
    cache = _cache()
    seen: list[float] = []
    time_calls(cache, seen.append, every=4)
    for _ in range(10):
        cache.get_or_compute("k", lambda: 1)
    assert len(seen) == 2
    for every in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="every"):
            time_calls(_cache(), seen.append, every=every)  # type: ignore[arg-type]


def test_a_cached_function_is_timed_through_its_cache() -> None:
    cache = _cache()
    seen: list[float] = []
    time_calls(cache, seen.append)

    @cached(cache, namespace="timed")
    def f(x: int) -> int:
        return x

    assert (f(1), f(1)) == (1, 1)
    assert len(seen) == 2


def test_opentelemetry_reads_the_counters_and_the_latency_a_meter_collects() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    cache = _cache()
    opentelemetry(cache, meter, name="prices", every=1)
    cache.get_or_compute("k", lambda: 1)
    cache.get_or_compute("k", lambda: 1)
    cache.invalidate("k")
    data = reader.get_metrics_data()
    assert data is not None
    collected: dict[str, Any] = {
        metric.name: metric.data
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert set(collected) == {f"cachespec.prices.{name}" for name in DESCRIPTIONS} | {
        "cachespec.prices.latency"
    }

    def value(counter: str) -> int:
        (point,) = collected[f"cachespec.prices.{counter}"].data_points
        return int(point.value)

    assert (value("hits"), value("misses"), value("computes")) == (1, 1, 1)
    assert value("invalidations") == 1
    (latency,) = collected["cachespec.prices.latency"].data_points
    assert latency.count == 2


def test_a_collector_that_fails_never_fails_the_read_it_timed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = _cache()

    def broken(seconds: float) -> None:
        raise ConnectionError("the exporter is down")

    stop = time_calls(cache, broken)
    assert cache.get_or_compute("k", lambda: 1) == 1
    assert "record failed" in caplog.text
    stop()
    later = time_calls(cache, lambda seconds: None)
    stop()  # the first timing's stop: it must not remove the second
    assert "get_or_compute" in vars(cache)
    later()
    assert "get_or_compute" not in vars(cache)


def test_per_second_times_only_the_armed_calls_and_leaves_the_others_unwrapped() -> None:
    cache = _cache()
    seen: list[float] = []
    # A rate so low that the ticker never arms again within the test: it arms once as the
    # timing starts, and the test arms by hand after that.
    timing = time_calls(cache, seen.append, per_second=1e-9)
    assert "get_or_compute" in vars(cache)  # armed as it starts
    assert cache.get_or_compute("k", lambda: 1) == 1
    assert "get_or_compute" not in vars(cache)  # the armed call took the wrapper off
    for _ in range(5):
        cache.get_or_compute("k", lambda: 2)
    assert len(seen) == 1
    timing.arm()
    with pytest.raises(ZeroDivisionError):
        cache.get_or_compute("boom", lambda: 1 // 0)  # a failing call is timed too
    assert len(seen) == 2
    with pytest.raises(ValueError, match="timed already"):
        time_calls(cache, seen.append)  # unwrapped between armings, but timed all the same
    timing.arm()
    timing()
    assert "get_or_compute" not in vars(cache)
    timing.arm()  # a stopped timing never arms again
    cache.get_or_compute("k", lambda: 3)
    assert len(seen) == 2
    time_calls(cache, seen.append)()  # and the cache can be timed anew


def test_bad_sampling_options_are_refused_before_anything_is_set_up() -> None:
    cache = _cache()
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    bad: list[dict[str, Any]] = [
        {"every": 2, "per_second": 10.0},
        {"per_second": 0},
        {"per_second": float("nan")},
        {"per_second": True},
        {"per_second": "100"},
        {"every": 0},
    ]
    for options in bad:
        with pytest.raises(ConfigurationError):
            time_calls(cache, lambda seconds: None, **options)
        with pytest.raises(ConfigurationError):
            opentelemetry(cache, meter, **options)
    assert vars(cache).keys().isdisjoint({"get_or_compute", "_cachespec_timing"})
    assert reader.get_metrics_data() is None  # no instrument was created on the meter


def test_a_dropped_cache_is_not_kept_alive_by_its_rate_sampled_timing() -> None:
    cache = _cache()
    timing = time_calls(cache, lambda seconds: None, per_second=1e-9)
    alive = weakref.ref(cache)
    del cache
    gc.collect()
    assert alive() is None
    timing.arm()  # finds the cache gone: stops, and leaves the ticker
    timing()


def test_the_ticker_arms_on_its_schedule_and_its_thread_ends_with_the_last_timing() -> None:
    ticker = Ticker()

    class Counted:
        interval = 0.001

        def __init__(self) -> None:
            self.arms = 0
            self.thrice = threading.Event()

        def arm(self) -> None:
            self.arms += 1
            if self.arms >= 3:
                self.thrice.set()

    timing = Counted()
    ticker.add(timing)
    assert timing.arms >= 1  # armed as it is added, not only when the thread comes round
    # A bounded wait for an event, not a sleep: it returns as soon as the thread has armed.
    assert timing.thrice.wait(timeout=30)
    (thread,) = [t for t in threading.enumerate() if t.name == "cachespec-metrics-sampler"]
    ticker.remove(timing)
    thread.join(timeout=30)
    assert not thread.is_alive()
