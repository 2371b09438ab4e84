"""Load: 16 threads run a mixed workload through the strategies on each backend.

    python bench/load.py [--quick] [--seconds S]

Each thread loops over random keys (80% of the calls on the hottest 10% of them):

* 80% cache-aside reads, ``Cache.get_or_compute`` (the source's value on a miss);
* 10% write-through writes, ``WriteThrough.write`` (source first, then the versioned copy);
* 10% writes by invalidation (source write, then ``Cache.invalidate``).

Beside it, on the same backend, the textbook peer: ``get``, compute, ``set`` reads
(``naive_cache_aside``) and every write by invalidation. Each row reports calls per second
over all threads and the p50 and p99 latency of a call (microseconds of wall time).

It measures and reports, and fails (exit 1) only on what must hold on every call:

* 0 wrong-key reads: every value carries the key it was written under, and each read's
  value is checked against the key asked for;
* capacity held: on a bounded namespace (``capacity=N``), once the threads are done, no
  more than N of the keys written are live;
* 0 untyped errors: a call may raise a ``CacheError`` (counted, reported), nothing else.

The backends: ``memory://`` and ``fakeredis://`` as bounded namespaces, and a throwaway
redis-server (plain and bounded) and memcached, each started for the run in real time.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import platform
import random
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cachespec import Cache, WriteThrough
from cachespec.backends import Backend, CacheError, open_backend
from cachespec.backends.strategies import naive_cache_aside
from cachespec.conformance import servers

THREADS = 16
KEYS = 2048
HOT = KEYS // 10
CAPACITY = 512  # the bounded namespaces': a quarter of the keys, so they evict all along
TTL = 300.0
ROUNDS = 3  # each row's seconds, in rounds alternating with its peer's
STUCK_AFTER = 60.0  # a call still running this long after a round's end hangs


class Source:
    """The database: a version per key, every value carrying its key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}

    def read(self, key: str) -> dict[str, Any]:
        with self._lock:
            return {"key": key, "v": self._versions.get(key, 0)}

    def write(self, key: str, value: object) -> int:
        with self._lock:
            version = self._versions[key] = self._versions.get(key, 0) + 1
            return version

    def version(self, key: str) -> int:
        with self._lock:
            return self._versions.get(key, 0)


@dataclass
class Tally:
    """One thread's counts and latencies (merged after the run: no lock on the hot path)."""

    latencies: list[float] = field(default_factory=list)
    wrong_key: list[str] = field(default_factory=list)
    typed: int = 0
    untyped: list[str] = field(default_factory=list)


Write = Callable[[Cache, WriteThrough[str], Source, str], None]


@dataclass
class Contender:
    """How a thread reads, and makes its two kinds of writes (10% of the calls each)."""

    name: str
    read: Callable[[Cache, str, Callable[[], object]], object]
    write: Write
    other_write: Write


def _write_through(cache: Cache, through: WriteThrough[str], source: Source, key: str) -> None:
    through.write(key, {"key": key})


def _invalidating_write(cache: Cache, through: WriteThrough[str], source: Source, key: str) -> None:
    source.write(key, None)
    cache.invalidate(key)


OURS = Contender(
    "ours: get_or_compute, write-through, invalidate",
    lambda cache, key, compute: cache.get_or_compute(key, compute, TTL),
    _write_through,
    _invalidating_write,
)
NAIVE = Contender(
    "textbook: get, compute, set; invalidate",
    lambda cache, key, compute: naive_cache_aside(cache, key, compute, TTL),
    _invalidating_write,
    _invalidating_write,
)


def _key(rng: random.Random) -> str:
    index = rng.randrange(HOT) if rng.random() < 0.8 else rng.randrange(KEYS)
    return f"key:{index}"


def _worker(  # noqa: PLR0917 - a thread's target, called once with its arguments
    contender: Contender,
    cache: Cache,
    through: WriteThrough[str],
    source: Source,
    seed: int,
    start: threading.Barrier,
    deadline: list[float],
    tally: Tally,
) -> None:
    rng = random.Random(seed)
    clock = time.perf_counter
    start.wait()
    while clock() < deadline[0]:
        key = _key(rng)
        began = clock()
        draw = rng.random()
        try:
            if draw < 0.8:
                value = contender.read(cache, key, functools.partial(source.read, key))
                if not (isinstance(value, dict) and value.get("key") == key):
                    tally.wrong_key.append(f"read({key!r}) returned {value!r}")
            elif draw < 0.9:
                contender.write(cache, through, source, key)
            else:
                contender.other_write(cache, through, source, key)
        except CacheError:
            tally.typed += 1
        except Exception as exc:  # the check: nothing but a CacheError may escape
            tally.untyped.append(f"{type(exc).__name__}: {exc}")
        tally.latencies.append(clock() - began)


@dataclass
class Row:
    backend: str
    contender: str
    calls: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    typed: int = 0
    wrong_key: list[str] = field(default_factory=list)
    untyped: list[str] = field(default_factory=list)
    capacity: str = "-"  # "held (n live of N)", "EXCEEDED ...", or "-" where unbounded

    @property
    def ops_per_second(self) -> float:
        return self.calls / self.wall

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e6

    @property
    def failed(self) -> bool:
        return bool(self.wrong_key or self.untyped or self.capacity.startswith("EXCEEDED"))


def run(row: Row, backend: Backend, contender: Contender, seconds: float, seed: int) -> None:
    """``THREADS`` threads of ``contender`` on ``backend`` for ``seconds``, added to ``row``."""
    backend.clear()
    source = Source()
    cache = Cache(backend, default_ttl=TTL)
    through = WriteThrough(cache, source.write, source_version=source.version, ttl=TTL)
    tallies = [Tally() for _ in range(THREADS)]
    start = threading.Barrier(THREADS + 1)
    deadline = [float("inf")]
    threads = [
        threading.Thread(
            target=_worker,
            args=(contender, cache, through, source, seed * 1000 + i, start, deadline, tally),
            daemon=True,
        )
        for i, tally in enumerate(tallies)
    ]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join(seconds + STUCK_AFTER)
        if thread.is_alive():  # reported as a failure; the daemon thread is left behind
            row.untyped.append(f"a thread was still in a call {STUCK_AFTER:g} s past the end")
    row.wall += time.perf_counter() - began
    for tally in tallies:
        row.calls += len(tally.latencies)
        row.latencies += tally.latencies
        row.typed += tally.typed
        row.wrong_key += tally.wrong_key
        row.untyped += tally.untyped
    bound = backend.guarantees.eviction.live_count_bound()
    if bound is not None and not row.capacity.startswith("EXCEEDED"):
        # Once the threads are done: a count taken while they write is no snapshot.
        live = len(backend.get_many([f"key:{i}" for i in range(KEYS)]))
        verdict = "held" if live <= bound else "EXCEEDED"
        row.capacity = f"{verdict} ({live} live of {bound})"


@contextlib.contextmanager
def backends(skip_servers: bool) -> Iterator[list[tuple[str, Callable[[], Backend]]]]:
    """(label, how to open it) per backend; the servers stop however the run ends."""
    with contextlib.ExitStack() as stack:
        chosen: list[tuple[str, Callable[[], Backend]]] = [
            (
                f"memory, capacity={CAPACITY}",
                lambda: open_backend(f"memory://?capacity={CAPACITY}"),
            ),
            (
                f"fakeredis, capacity={CAPACITY}",
                lambda: open_backend(f"fakeredis://?capacity={CAPACITY}"),
            ),
        ]
        if not skip_servers:
            redis_url = stack.enter_context(servers.start_redis(fake_time=False)).url
            memcached_url = stack.enter_context(servers.start_memcached(fake_time=False)).url
            chosen += [
                ("redis", lambda: open_backend(redis_url, namespace="load")),
                (
                    f"redis, capacity={CAPACITY}",
                    lambda: open_backend(f"{redis_url}?capacity={CAPACITY}", namespace="load-b"),
                ),
                ("memcached", lambda: open_backend(memcached_url, namespace="load")),
            ]
        yield chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1.5 s per row instead of 6")
    parser.add_argument("--seconds", type=float, help="seconds per row (overrides --quick)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-servers", action="store_true", help="memory and fakeredis only (no redis-server)"
    )
    args = parser.parse_args()
    seconds = args.seconds or (1.5 if args.quick else 6.0)
    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(
        f"machine: {platform.platform()}; {THREADS} threads, {seconds:g} s per row, "
        f"{KEYS} keys (80% of calls on {HOT}), 80% reads, 20% writes"
    )
    print()
    print(
        "| backend | contender | calls/s | p50 (us) | p99 (us) | ours / textbook calls/s "
        "| typed errors | wrong-key reads | untyped errors | capacity |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    rows: list[Row] = []
    with backends(args.no_servers) as chosen:
        for label, opener in chosen:
            backend = opener()
            ours, naive = Row(label, OURS.name), Row(label, NAIVE.name)
            try:
                # Interleaved rounds, so that whatever else the machine does meanwhile falls
                # on both contenders alike (the ratio is what carries between machines).
                for round_ in range(ROUNDS):
                    run(ours, backend, OURS, seconds / ROUNDS, args.seed + round_)
                    run(naive, backend, NAIVE, seconds / ROUNDS, args.seed + round_)
            finally:
                backend.close()
            for row in (ours, naive):
                ratio = f"{ours.ops_per_second / naive.ops_per_second:.2f}" if row is ours else ""
                print(
                    f"| {row.backend} | {row.contender} | {row.ops_per_second:,.0f} "
                    f"| {row.percentile(0.5):,.0f} | {row.percentile(0.99):,.0f} | {ratio} "
                    f"| {row.typed} | {len(row.wrong_key)} | {len(row.untyped)} "
                    f"| {row.capacity} |"
                )
                rows.append(row)
    failed = [row for row in rows if row.failed]
    print()
    for row in failed:
        print(f"FAILED: {row.backend}, {row.contender}:")
        for line in (row.wrong_key + row.untyped)[:5]:
            print(f"  {line}")
        if row.capacity.startswith("EXCEEDED"):
            print(f"  capacity {row.capacity}")
    if failed:
        sys.exit(1)
    print("every call checked: 0 wrong-key reads, 0 untyped errors, capacity held")


if __name__ == "__main__":
    main()
