"""What metrics cost on the hit path: ``get_or_compute`` untimed, timed, and on OpenTelemetry.

    python bench/metrics.py [--quick]

The counters cost nothing here: they are ``Cache.stats``, kept anyway and read when a
collector asks. What is measured is timing ``get_or_compute`` (``time_calls``, every call,
one in 16, or at most 100 calls a second) and OpenTelemetry's histogram on top, against the
same cache untimed, on ``memory://`` and on a throwaway redis-server (real time: a round
trip is wall-clock).
Every figure is the median over interleaved repeats of a timed loop of hits, in
microseconds per call; the ratio is against the untimed cache in the same run. The goal
(issue #17): 3% or less when enabled. Measured, never asserted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from runinfo import print_header, quick_option

from cachespec.backends import Backend, Cache, MemoryBackend, open_backend
from cachespec.backends.metrics import opentelemetry, time_calls
from cachespec.conformance import servers

Setup = Callable[[Cache[Any]], object]


def _untimed(cache: Cache[Any]) -> object:
    return None


def _timed(**sampling: float) -> Setup:
    return lambda cache: time_calls(cache, lambda seconds: None, **sampling)  # type: ignore[arg-type]


def _otel(**sampling: float) -> Setup:
    def setup(cache: Cache[Any]) -> object:
        meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
        return opentelemetry(cache, meter, name="bench", **sampling)  # type: ignore[arg-type]

    return setup


SETUPS: dict[str, Setup] = {
    "untimed": _untimed,
    "time_calls, every call": _timed(every=1),
    "time_calls, 1 in 16": _timed(every=16),
    "time_calls, 100 a second": _timed(per_second=100),
    "opentelemetry, every call": _otel(every=1),
    "opentelemetry, 1 in 16": _otel(every=16),
    "opentelemetry, 100 a second (the default)": _otel(),
}


def rows(label: str, open_: Callable[[], Backend], calls: int, repeats: int) -> list[str]:
    caches = {}
    for name, setup in SETUPS.items():
        cache: Cache[Any] = Cache(open_())
        cache.get_or_compute("hot", lambda: "value")
        setup(cache)
        caches[name] = cache
    samples: dict[str, list[float]] = {name: [] for name in caches}
    for _ in range(repeats):
        for name, cache in caches.items():
            # The method is looked up at each call, as an application's code does: a timing
            # armed by rate is an attribute that comes and goes between calls.
            started = time.perf_counter()
            for _ in range(calls):
                cache.get_or_compute("hot", str)
            samples[name].append((time.perf_counter() - started) / calls * 1e6)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["untimed"]
    return [f"| {label} | {name} | {us:.2f} | {us / base:.3f} |" for name, us in medians.items()]


def main() -> None:
    calls, repeats = (2_000, 5) if quick_option(__doc__.splitlines()[0]) else (20_000, 9)
    print_header(f"{repeats} repeats x {calls} hits, median us/call")
    print("| backend | metrics | us per hit | / untimed |")
    print("|---|---|---:|---:|")
    for row in rows("memory://", MemoryBackend, calls, repeats):
        print(row)
    with servers.start_redis(fake_time=False) as server:
        for row in rows("redis", lambda: open_backend(server.url), calls // 10, repeats):
            print(row)


if __name__ == "__main__":
    main()
