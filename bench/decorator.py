"""``@cached`` beside the decorators a user would pick instead, in one run.

    python bench/decorator.py [--quick]

A hit of ``price_of("A1")`` (one positional argument, one default) through ``@cached`` on
``memory://`` and on a throwaway redis-server (real time: a round trip is wall-clock), beside
``cachetools.cached`` over a ``TTLCache`` and ``functools.lru_cache`` (in-process memos,
with no TTL per call, no single-flight and nothing shared between processes). Figures are
the median over interleaved repeats of a timed loop, in microseconds per call; the ratio is
against ``cachetools.cached``. Measured, never asserted.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

import cachetools
from runinfo import print_header, quick_option

from cachespec import Cache, MemoryBackend, cached, open_backend
from cachespec.conformance import servers

Call = Callable[[], object]


def _ours(cache: Cache[float]) -> Call:
    @cached(cache, ttl=600, namespace="bench.price_of")
    def price_of(sku: str, currency: str = "EUR") -> float:
        return 9.5

    price_of("A1")
    return lambda: price_of("A1")


def _cachetools() -> Call:
    @cachetools.cached(cachetools.TTLCache(maxsize=1000, ttl=600))
    def price_of(sku: str, currency: str = "EUR") -> float:
        return 9.5

    price_of("A1")
    return lambda: price_of("A1")


def _lru_cache() -> Call:
    @functools.lru_cache(maxsize=1000)
    def price_of(sku: str, currency: str = "EUR") -> float:
        return 9.5

    price_of("A1")
    return lambda: price_of("A1")


def measure(calls: dict[str, Call], loops: dict[str, int], repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            count = loops[name]
            started = time.perf_counter()
            for _ in range(count):
                call()
            samples[name].append((time.perf_counter() - started) / count * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    loops, repeats = (2_000, 5) if quick_option(__doc__.splitlines()[0]) else (20_000, 9)
    print_header(f"cachetools {version('cachetools')}; {repeats} repeats, median us per hit")
    print("| decorator | us per hit | / cachetools.cached |")
    print("|---|---:|---:|")
    with servers.start_redis(fake_time=False) as server:
        redis_cache: Cache[float] = Cache(open_backend(server.url))
        calls = {
            "`@cached`, memory://": _ours(Cache(MemoryBackend())),
            "`@cached`, redis": _ours(redis_cache),
            "`cachetools.cached(TTLCache)`": _cachetools(),
            "`functools.lru_cache`": _lru_cache(),
        }
        counts = dict.fromkeys(calls, loops)
        counts["`@cached`, redis"] = max(loops // 20, 100)  # a round trip a call
        medians = measure(calls, counts, repeats)
        redis_cache.backend.close()
    base = medians["`cachetools.cached(TTLCache)`"]
    for name, us in medians.items():
        print(f"| {name} | {us:.2f} | {us / base:.1f} |")


if __name__ == "__main__":
    main()
