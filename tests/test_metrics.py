"""Metrics: the counters a collector reads, and get_or_compute's latency only when asked."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from cachespec import Cache, MemoryBackend, cached
from cachespec.backends.metrics import DESCRIPTIONS, opentelemetry, time_calls
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
