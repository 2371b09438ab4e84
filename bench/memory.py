"""MemoryBackend beside the usual in-process LRU caches, measured in one run.

    python bench/memory.py [--quick]

Every figure is the median of several repeats of a timed loop over a prepared key list, in
ns of this thread's CPU time per operation, with the cost of the bare ``for`` loop
subtracted (printed in the header) and the garbage collector off while timing, as
``timeit`` does; the threaded row is wall-clock throughput. Peers that are not
thread-safe by themselves are wrapped in a ``threading.Lock`` on every call, because that is
what a program sharing them between threads has to pay; ours and ``functools.lru_cache``
are called bare. The script measures and reports; it never fails on a missed goal.
"""

from __future__ import annotations

import argparse
import gc
import operator
import os
import platform
import random
import shlex
import statistics
import sys
import threading
import time
import traceback
import tracemalloc
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version

import cachetools

from cachespec.backends import MemoryBackend

CAPACITY = 1000
TTL = 3600.0  # long enough that nothing expires during a run: a TTL hit stays a hit
VALUE = b"v" * 32
MISSING = object()  # the locked peers' miss marker (ours returns NO_VALUE)
THREADS = 8
MEMORY_ENTRIES = 10_000

Put = Callable[..., object]


@dataclass(frozen=True)
class Subject:
    """One cache, as the loops call it: ``get(key)``, and ``put(key, value[, ttl])``."""

    get: Callable[[str], object]
    put: Put | None  # None: the cache cannot be written to directly (lru_cache)
    ttl: float | None = None  # when set, put is called as put(key, value, ttl)


# ------------------------------------------------------------------------------- the peers
def ours(capacity: int) -> Subject:
    backend = MemoryBackend(capacity)
    return Subject(backend.get, backend.set)


def ours_ttl(capacity: int) -> Subject:
    backend = MemoryBackend(capacity)
    return Subject(backend.get, backend.set, TTL)


def _value_of(key: str) -> bytes:
    return VALUE


def functools_lru(capacity: int) -> Subject:
    # lru_cache can only be read through the function it wraps: a miss calls it and stores.
    return Subject(lru_cache(maxsize=capacity)(_value_of), None)


class OrderedDictLRU:
    """The textbook LRU: an OrderedDict in recency order, one lock around every call."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> object:
        with self._lock:
            value = self._data.get(key, MISSING)
            if value is not MISSING:
                self._data.move_to_end(key)
            return value

    def set(self, key: str, value: bytes) -> None:
        with self._lock:
            data = self._data
            if key in data:
                data.move_to_end(key)
            elif len(data) >= self._capacity:
                data.popitem(last=False)
            data[key] = value


def ordered_dict_lru(capacity: int) -> Subject:
    cache = OrderedDictLRU(capacity)
    return Subject(cache.get, cache.set)


def locked(cache: cachetools.Cache[str, bytes]) -> Subject:
    """A cachetools cache shared between threads: it is not thread-safe, so every call locks."""
    lock = threading.Lock()

    def get(key: str) -> object:
        with lock:
            return cache.get(key, MISSING)

    def put(key: str, value: bytes) -> None:
        with lock:
            cache[key] = value

    return Subject(get, put)


def lru_cachetools(capacity: int) -> Subject:
    return locked(cachetools.LRUCache(maxsize=capacity))


def ttl_cachetools(capacity: int) -> Subject:
    return locked(cachetools.TTLCache(maxsize=capacity, ttl=TTL, timer=time.monotonic))


PEERS: dict[str, Callable[[int], Subject]] = {
    "ours": ours,
    "ours (TTL)": ours_ttl,
    "lru_cache": functools_lru,
    "OrderedDict+Lock": ordered_dict_lru,
    "LRUCache+Lock": lru_cachetools,
    "TTLCache+Lock": ttl_cachetools,
}


# ---------------------------------------------------------------------------- the loops
# The single-threaded loops are timed in CPU time of this thread, not wall time: on a shared
# machine, time the scheduler gives to other processes then does not count as ours.
cpu_ns = time.thread_time_ns


def fill(subject: Subject, keys: list[str], values: list[bytes] | None = None) -> None:
    if subject.put is None:
        for key in keys:  # lru_cache: a call on an absent key stores it
            subject.get(key)
        return
    for i, key in enumerate(keys):
        value = VALUE if values is None else values[i]
        if subject.ttl is None:
            subject.put(key, value)
        else:
            subject.put(key, value, subject.ttl)


def empty_loop(keys: list[str]) -> int:
    start = cpu_ns()
    for _key in keys:
        pass
    return cpu_ns() - start


def get_loop(subject: Subject, keys: list[str]) -> int:
    get = subject.get
    start = cpu_ns()
    for key in keys:
        get(key)
    return cpu_ns() - start


def put_loop(subject: Subject, keys: list[str]) -> int:
    put, value, ttl = subject.put, VALUE, subject.ttl
    assert put is not None
    # Two loops rather than put(key, *args): a star call would tax every peer's writes.
    start = cpu_ns()
    if ttl is None:
        for key in keys:
            put(key, value)
    else:
        for key in keys:
            put(key, value, ttl)
    return cpu_ns() - start


@dataclass(frozen=True)
class Figure:
    median: float
    spread: float  # (max - min) / median of the repeats: how far to trust the median

    @classmethod
    def of(cls, samples: list[float]) -> Figure:
        median = statistics.median(samples)
        return cls(median, (max(samples) - min(samples)) / median)


Run = Callable[[], float]  # one timed run of one cell: ns per op, or ops per second


def interleaved(runs: dict[str, Run | None], repeats: int) -> dict[str, Figure | None]:
    """Run every cell of a row ``repeats`` times, round-robin, after one warm-up run each.

    Round-robin rather than one cell after the other: a burst of load from elsewhere on the
    machine then lands on every peer alike instead of on whichever was running, and the
    ratios hold. The garbage collector is off while timing, as in ``timeit``.
    """
    live = {peer: run for peer, run in runs.items() if run is not None}
    samples: dict[str, list[float]] = {peer: [] for peer in live}
    for run in live.values():
        run()
    gc.disable()
    try:
        for _ in range(repeats):
            for peer, run in live.items():
                samples[peer].append(run())
    finally:
        gc.enable()
    return {peer: Figure.of(samples[peer]) if peer in live else None for peer in runs}


# ---------------------------------------------------------------------------- the cells
@dataclass(frozen=True)
class Plan:
    ops: int  # operations per timed run
    repeats: int
    thread_ops: int  # operations per thread per run (a multiple of 4)


def keys(prefix: str, count: int) -> list[str]:
    return [f"{prefix}:{i}" for i in range(count)]


def cycle(pool: list[str], ops: int) -> list[str]:
    return [pool[i % len(pool)] for i in range(ops)]


class Bench:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.cached = keys("k", CAPACITY)
        rng = random.Random(0)
        # Hits in a shuffled order, so recency updates move entries from anywhere in the list.
        self.hits = cycle(self.cached, plan.ops)
        rng.shuffle(self.hits)
        # Misses and inserts cycle, in order, through twice the capacity of keys never stored:
        # under LRU a cyclic sweep larger than the cache misses on every single key, which is
        # what makes lru_cache miss every time and every insert evict.
        self.absent = cycle(keys("m", 2 * CAPACITY), plan.ops)
        self.fresh = cycle(keys("n", 2 * CAPACITY), plan.ops)
        # Exceptions raised inside the threaded runs, by cache: reported, never swallowed.
        self.errors: dict[Callable[[int], Subject], list[BaseException]] = {}
        bare = interleaved({"loop": lambda: empty_loop(self.hits) / plan.ops}, plan.repeats)
        self.loop_ns = bare["loop"].median if bare["loop"] else 0.0

    def full(self, make: Callable[[int], Subject]) -> Subject:
        subject = make(CAPACITY)
        fill(subject, self.cached)
        return subject

    def get(self, make: Callable[[int], Subject], hit: bool) -> Run:
        subject, ops = self.full(make), self.hits if hit else self.absent
        return lambda: get_loop(subject, ops) / len(ops) - self.loop_ns

    def put(self, make: Callable[[int], Subject], evict: bool) -> Run | None:
        subject, ops = self.full(make), self.fresh if evict else self.hits
        if subject.put is None:
            return None
        return lambda: put_loop(subject, ops) / len(ops) - self.loop_ns

    def threads(self, make: Callable[[int], Subject]) -> Run | None:
        """Total ops/s of 8 threads, each doing rounds of three gets and one set."""
        if make(1).put is None:
            return None
        # A key space a quarter larger than the cache: most gets hit, some sets evict.
        space = keys("k", CAPACITY + CAPACITY // 4)
        rng = random.Random(0)

        def trial() -> float:
            subject = self.full(make)
            work = [
                [rng.choice(space) for _ in range(self.plan.thread_ops)] for _ in range(THREADS)
            ]
            barrier = threading.Barrier(THREADS + 1)
            done: list[int] = []
            errors = self.errors.setdefault(make, [])
            pool = [
                threading.Thread(target=worker, args=(subject, ops, barrier, done, errors))
                for ops in work
            ]
            for thread in pool:
                thread.start()
            barrier.wait()
            start = time.perf_counter()
            for thread in pool:
                thread.join()
            return sum(done) / (time.perf_counter() - start)

        return trial


def worker(
    subject: Subject,
    ops: list[str],
    barrier: threading.Barrier,
    done: list[int],
    errors: list[BaseException],
) -> None:
    get, put, value, ttl = subject.get, subject.put, VALUE, subject.ttl
    assert put is not None
    rounds = iter(ops)
    barrier.wait()
    try:
        for a, b, c, d in zip(rounds, rounds, rounds, rounds, strict=True):  # 3 gets, 1 set
            get(a)
            get(b)
            get(c)
            if ttl is None:
                put(d, value)
            else:
                put(d, value, ttl)
    except Exception as exc:  # a cache that fails under threads: count what was done, report
        errors.append(exc)
    # The list iterator knows how many keys are left: no counter in the timed loop.
    done.append(len(ops) - operator.length_hint(rounds))


def bytes_per_entry(make: Callable[[int], Subject], writes: int) -> Run | None:
    """Memory the container itself allocates to hold MEMORY_ENTRIES entries, per entry.

    Keys and values exist before tracing starts, so only what the cache allocates counts:
    its tables, links, per-entry tuples and timestamps, from construction on. With
    ``writes=2`` every key is written again, with a new value, before measuring: what a
    cache keeps for overwritten entries shows up.
    """
    if make(1).put is None:
        return None
    names = keys("key", MEMORY_ENTRIES)
    rounds = [[f"value:{w}:{i}".encode() for i in range(MEMORY_ENTRIES)] for w in range(writes)]

    def run() -> float:
        gc.collect()
        tracemalloc.start()
        try:
            subject = make(MEMORY_ENTRIES)
            for values in rounds:
                fill(subject, names, values)
            return tracemalloc.get_traced_memory()[0] / MEMORY_ENTRIES
        finally:
            tracemalloc.stop()

    return run


# ---------------------------------------------------------------------------- reporting
Measure = Callable[[Callable[[int], Subject]], Run | None]


def cell(figure: Figure | None, unit: str) -> str:
    if figure is None:
        return "—"
    if unit == "ops/s":
        return f"{figure.median / 1000:,.0f}k"
    return f"{figure.median:,.0f}" if unit == "B" else f"{figure.median:,.1f}"


def describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def goal(label: str, ratio: float, target: float, at_most: bool) -> str:
    met = ratio <= target if at_most else ratio >= target
    sign = "≤" if at_most else "≥"
    return f"| {label} | {ratio:.2f} | {sign} {target:g} | {'met' if met else 'NOT met'} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer ops and repeats (~15 s)")
    args = parser.parse_args()
    plan = Plan(20_000, 5, 8_000) if args.quick else Plan(50_000, 15, 20_000)

    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"cachetools {version('cachetools')}, cachespec {version('cachespec')}")
    bench = Bench(plan)
    print(
        f"{plan.repeats} repeats x {plan.ops:,} ops, peers interleaved, median; capacity "
        f"{CAPACITY}; bare loop {bench.loop_ns:.1f} ns/op subtracted from every ns figure"
    )
    print()

    # key: (label, unit, measure)
    rows: dict[str, tuple[str, str, Measure]] = {
        "hit": ("get, hit (ns)", "ns", lambda m: bench.get(m, hit=True)),
        "miss": ("get, miss (ns)", "ns", lambda m: bench.get(m, hit=False)),
        "overwrite": ("set, overwrite (ns)", "ns", lambda m: bench.put(m, evict=False)),
        "evict": ("set, new key evicts (ns)", "ns", lambda m: bench.put(m, evict=True)),
        "bytes": (f"bytes/entry at {MEMORY_ENTRIES:,}", "B", lambda m: bytes_per_entry(m, 1)),
        "bytes2": ("bytes/entry, each key written twice", "B", lambda m: bytes_per_entry(m, 2)),
        "threads": (f"{THREADS} threads, 3 gets : 1 set (ops/s)", "ops/s", bench.threads),
    }
    results: dict[tuple[str, str], Figure] = {}
    print("| operation | " + " | ".join(PEERS) + " |")
    print("|---|" + "---:|" * len(PEERS))
    for key, (label, unit, measure) in rows.items():
        figures = interleaved({peer: measure(make) for peer, make in PEERS.items()}, plan.repeats)
        results.update({(key, p): f for p, f in figures.items() if f is not None})
        print(f"| {label} | " + " | ".join(cell(f, unit) for f in figures.values()) + " |")

    def ratio(key: str, peer: str, other: str) -> float:
        return results[(key, peer)].median / results[(key, other)].median

    print()
    print("| ratio | measured | goal | |")
    print("|---|---:|---:|---|")
    print(goal("get hit: ours / lru_cache", ratio("hit", "ours", "lru_cache"), 2.5, True))
    print(
        goal(
            "get hit with TTL: TTLCache+Lock / ours (TTL), x faster",
            ratio("hit", "TTLCache+Lock", "ours (TTL)"),
            4,
            False,
        )
    )
    print(
        goal(
            "set evicting: ours / LRUCache+Lock",
            ratio("evict", "ours", "LRUCache+Lock"),
            1,
            True,
        )
    )
    for key, when in (("bytes", ""), ("bytes2", ", each key written twice")):
        for peer in ("ours (TTL)", "ours"):
            measured = ratio(key, peer, "TTLCache+Lock")
            print(goal(f"bytes/entry{when}: {peer} / TTLCache+Lock", measured, 1, True))

    for peer, make in PEERS.items():
        raised = bench.errors.get(make)
        if raised:
            print(f"\n**{peer} raised under {THREADS} threads**, in {len(raised)} worker(s):")
            for text in sorted({describe(exc) for exc in raised}):
                print(f"    {text}")
            print("    (those runs count only the operations done before the error)")

    print()
    noisiest = sorted(results.items(), key=lambda item: -item[1].spread)[:4]
    shown = ", ".join(f"{rows[k][0]} / {p} {f.spread:.0%}" for (k, p), f in noisiest)
    print(f"noisiest cells, (max - min) / median over the repeats: {shown}")
    print(
        "lru_cache 'miss' = a call on a key not cached: lookup, call of the wrapped function,"
        " insert, and eviction of the oldest entry (it has no lookup that does not store)."
    )


if __name__ == "__main__":
    main()
