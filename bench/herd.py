"""The thundering herd: many callers miss one key at once; how many computes run, how long.

    python bench/herd.py [--quick]

* In one process: 64 threads, released together by a ``threading.Barrier``, miss one key;
  the compute sleeps 20 ms and counts its calls. Contenders: ours
  (``Cache(MemoryBackend()).get_or_compute``: single-flight, then the backend lease), ours
  with ``single_flight=False`` (the lease alone), the textbook cache-aside
  (``naive_cache_aside``), ``cachetools.cached(TTLCache, lock=Lock())``, and the same with
  ``condition=Condition()`` (cachetools 5.5 and later).
* Across processes: 4 processes ('spawn') x 16 threads, released together by a
  ``multiprocessing.Barrier``, miss one key on a throwaway redis-server and on a throwaway
  memcached, each process with its own ``Cache(open_backend(url))``. Goal: 1 compute per
  expiry. The naive cache-aside beside it, for contrast.
* The hit path with single-flight on and off: ``get_or_compute`` on a cached key with
  ``single_flight=True`` and ``False``, and the backend's raw ``get``. Goal: on / off at most
  1.10x (a hit should never touch the flight table).

Servers run in real time (no libfaketime): the herd's timing is the thing measured. A herd
figure is the most computes and the median wall time over interleaved repeats, the wall time
from the barrier's release to the last caller's return, also as a multiple of one compute's
own time. Hit figures are medians of interleaved repeats, microseconds per call.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import platform
import queue
import shlex
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

import cachetools

from cachespec import Cache, MemoryBackend
from cachespec.backends import Backend, open_backend
from cachespec.backends.strategies import naive_cache_aside
from cachespec.conformance import servers

VALUE = {"price": 59.0, "currency": "EUR", "stock": 12}
COMPUTE_SECONDS = 0.02
TTL = 300.0
THREADS = 64
PROCESSES, THREADS_PER_PROCESS = 4, 16
# Generous: spawned processes import the package before their first barrier, and on a busy
# machine that can take seconds. A timeout only turns a hang into an error.
BARRIER_TIMEOUT = 120.0
RESULT_TIMEOUT = 180.0

Call = Callable[[], object]
Compute = Callable[[], object]


class Counter:
    """The compute: sleeps a fixed time and counts how often it ran (from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0

    def compute(self) -> object:
        with self._lock:
            self.calls += 1
        time.sleep(COMPUTE_SECONDS)
        return VALUE


def release_together(call: Call, threads: int, barrier: threading.Barrier) -> tuple[float, float]:
    """Run ``call`` on ``threads`` new threads that each wait at ``barrier`` first.

    Returns the earliest moment a thread left the barrier and the latest moment a thread's
    call returned, on ``time.monotonic`` (system-wide on Linux, so comparable between
    processes). An exception in any thread is re-raised here, after all have been joined.
    """
    started: list[float] = []
    finished: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(BARRIER_TIMEOUT)
            begin = time.monotonic()
            call()
            end = time.monotonic()
        except BaseException as error:
            barrier.abort()  # the other parties must not wait for a caller that is gone
            with lock:
                errors.append(error)
            return
        with lock:
            started.append(begin)
            finished.append(end)

    workers = [threading.Thread(target=run, name=f"herd-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return min(started), max(finished)


def one_compute_seconds(samples: int = 5) -> float:
    """What one compute takes alone here: the denominator of every 'x one compute' figure
    (a 20 ms sleep oversleeps a little, more so on a busy machine)."""
    times = []
    for _ in range(samples):
        began = time.monotonic()
        Counter().compute()
        times.append(time.monotonic() - began)
    return statistics.median(times)


# ------------------------------------------------------------------------------ in process
def has_condition() -> bool:
    return "condition" in inspect.signature(cachetools.cached).parameters


def contenders() -> dict[str, Callable[[Compute], Call] | str]:
    """Each contender makes, from a compute, the call every thread of one herd makes, on
    fresh state (a new cache per herd, so every herd starts from a miss). A string is the
    reason a contender cannot run here."""

    def ours(compute: Compute) -> Call:
        cache = Cache(MemoryBackend(), default_ttl=TTL)
        return lambda: cache.get_or_compute("hot", compute)

    def ours_lease_only(compute: Compute) -> Call:
        # Without single-flight the threads meet at the backend's lease and poll for its value.
        cache = Cache(MemoryBackend(), default_ttl=TTL, single_flight=False)
        return lambda: cache.get_or_compute("hot", compute)

    def naive(compute: Compute) -> Call:
        cache = Cache(MemoryBackend(), default_ttl=TTL)
        return lambda: naive_cache_aside(cache, "hot", compute, TTL)

    def cachetools_lock(compute: Compute) -> Call:
        # The lock guards the cache's dict only: it is released while the function runs.
        cached = cachetools.cached(
            cachetools.TTLCache(maxsize=1024, ttl=TTL), lock=threading.Lock()
        )(lambda key: compute())
        return lambda: cached("hot")

    def cachetools_condition(compute: Compute) -> Call:
        # With a condition, callers of a key being computed wait for it (cachetools 5.5+).
        cached = cachetools.cached(
            cachetools.TTLCache(maxsize=1024, ttl=TTL), condition=threading.Condition()
        )(lambda key: compute())
        return lambda: cached("hot")

    condition: Callable[[Compute], Call] | str = cachetools_condition
    if not has_condition():
        condition = f"n/a (cachetools {version('cachetools')} has no condition)"
    return {
        "ours: `Cache(MemoryBackend()).get_or_compute`": ours,
        "ours, `single_flight=False` (lease only)": ours_lease_only,
        "naive cache-aside": naive,
        "cachetools `cached(TTLCache, lock=Lock())`": cachetools_lock,
        "cachetools `cached(TTLCache, condition=Condition())`": condition,
    }


def in_process_rows(repeats: int, one: float) -> list[str]:
    every = contenders()
    runnable = {name: make for name, make in every.items() if not isinstance(make, str)}
    computes: dict[str, list[int]] = {name: [] for name in runnable}
    walls: dict[str, list[float]] = {name: [] for name in runnable}
    # Round-robin over the contenders, so a burst of load elsewhere lands on all alike.
    for _ in range(repeats):
        for name, make in runnable.items():
            counter = Counter()
            call = make(counter.compute)
            begin, end = release_together(call, THREADS, threading.Barrier(THREADS))
            computes[name].append(counter.calls)
            walls[name].append(end - begin)
    rows = []
    for name, maker in every.items():
        if isinstance(maker, str):
            rows.append(f"| {name} | {maker} | | | |")
            continue
        most = max(computes[name])
        wall = statistics.median(walls[name])
        goal = ("met" if most == 1 else "NOT met") if name.startswith("ours") else ""
        rows.append(f"| {name} | {most} | {wall * 1e3:,.1f} | {wall / one:.2f} | {goal} |")
    return rows


# -------------------------------------------------------------------------- across processes
STRATEGIES = ("ours", "naive")

# What a process reports per herd, as plain builtins (a class defined in this script would
# pickle as ``__mp_main__.X`` in the child): (task, computes, shared, hits, lease takeovers,
# earliest start, latest finish, error text or "").
Outcome = tuple[int, int, int, int, int, float, float, str]


def herd_process(
    url: str,
    tasks: list[tuple[str, str]],
    barrier: multiprocessing.synchronize.Barrier,
    results: multiprocessing.queues.Queue[Outcome],
) -> None:
    """One process of the herd: its own backend and Cache, one herd of threads per task.

    The barrier has a party for every thread of every process, so the herds of all processes
    start together; it is cyclic, so task n+1 cannot start anywhere before every thread of
    task n everywhere has returned and been joined.
    """
    task = -1
    try:
        backend = open_backend(url, namespace="herd")
        try:
            cache = Cache(backend, default_ttl=TTL)
            for task, (strategy, key) in enumerate(tasks):
                counter = Counter()
                stats = cache.stats
                shared, hits, takeovers = stats.shared, stats.hits, stats.lease_takeovers
                call: Call
                if strategy == "ours":
                    call = ours_call(cache, key, counter.compute)
                else:
                    call = naive_call(cache, key, counter.compute)
                begin, end = release_together(call, THREADS_PER_PROCESS, barrier)
                results.put(
                    (
                        task,
                        counter.calls,
                        stats.shared - shared,
                        stats.hits - hits,
                        stats.lease_takeovers - takeovers,
                        begin,
                        end,
                        "",
                    )
                )
        finally:
            backend.close()
    except BaseException:
        barrier.abort()  # release the other processes' threads instead of leaving them waiting
        results.put((task, 0, 0, 0, 0, 0.0, 0.0, traceback.format_exc()))


def ours_call(cache: Cache, key: str, compute: Compute) -> Call:
    return lambda: cache.get_or_compute(key, compute)


def naive_call(cache: Cache, key: str, compute: Compute) -> Call:
    return lambda: naive_cache_aside(cache, key, compute, TTL)


@dataclass
class Herd:
    computes: int = 0
    shared: int = 0
    hits: int = 0
    takeovers: int = 0
    started: float = float("inf")
    finished: float = float("-inf")


def across_processes(url: str, repeats: int) -> dict[str, list[Herd]]:
    """Run ``repeats`` herds of each strategy, interleaved, in one set of processes."""
    # A fresh key per herd: each herd is one expiry (a miss nobody has filled yet).
    tasks = [
        (strategy, f"herd:{strategy}:{repeat}")
        for repeat in range(repeats)
        for strategy in STRATEGIES
    ]
    # 'spawn': a fresh interpreter per process, nothing inherited (no client sockets or
    # locks copied mid-use by fork), as separate services would be.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES * THREADS_PER_PROCESS)
    results: multiprocessing.queues.Queue[Outcome] = context.Queue()
    processes = [
        context.Process(
            target=herd_process, args=(url, tasks, barrier, results), name=f"herd-process-{i}"
        )
        for i in range(PROCESSES)
    ]
    herds = [Herd() for _ in tasks]
    try:
        for process in processes:
            process.start()
        for _ in range(len(tasks) * PROCESSES):
            try:
                task, computes, shared, hits, takeovers, begin, end, error = results.get(
                    timeout=RESULT_TIMEOUT
                )
            except queue.Empty:
                raise RuntimeError(
                    f"no result from the herd processes within {RESULT_TIMEOUT:g} s"
                ) from None
            if error:
                raise RuntimeError(f"a herd process failed (task {task}):\n{error}")
            herd = herds[task]
            herd.computes += computes
            herd.shared += shared
            herd.hits += hits
            herd.takeovers += takeovers
            herd.started = min(herd.started, begin)
            herd.finished = max(herd.finished, end)
    finally:
        # Never leave a process behind: a clean run has them exiting by now.
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()
        results.close()
    by_strategy: dict[str, list[Herd]] = {strategy: [] for strategy in STRATEGIES}
    for (strategy, _), herd in zip(tasks, herds, strict=True):
        by_strategy[strategy].append(herd)
    return by_strategy


def process_rows(label: str, url: str, repeats: int, one: float) -> list[str]:
    rows = []
    names = {
        "ours": "ours: `Cache(open_backend(url)).get_or_compute`",
        "naive": "naive cache-aside",
    }
    for strategy, herds in across_processes(url, repeats).items():
        most = max(herd.computes for herd in herds)
        wall = statistics.median(herd.finished - herd.started for herd in herds)
        # Per herd, in run order: summing or taking extremes would mix different herds.
        shared = ", ".join(str(herd.shared) for herd in herds)
        hits = ", ".join(str(herd.hits) for herd in herds)
        takeovers = max(herd.takeovers for herd in herds)
        ours = strategy == "ours"
        goal = ("met" if most == 1 else "NOT met") if ours else ""
        rows.append(
            f"| {label} | {names[strategy]} | {most} | {shared if ours else ''} "
            f"| {hits if ours else ''} "
            f"| {takeovers if ours else ''} | {wall * 1e3:,.1f} | {wall / one:.2f} | {goal} |"
        )
    return rows


# ---------------------------------------------------------------------------------- hit path
def per_call(call: Call, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls * 1e6


def medians(calls: dict[str, Call], n: int, repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            samples[name].append(per_call(call, n))
    return {name: statistics.median(values) for name, values in samples.items()}


def hit_row(label: str, backend: Backend, n: int, repeats: int) -> str:
    on = Cache(backend, default_ttl=3600, single_flight=True)
    off = Cache(backend, default_ttl=3600, single_flight=False)
    on.get_or_compute("hit", lambda: VALUE)  # both caches read the same entry
    figures = medians(
        {
            "on": lambda: on.get_or_compute("hit", lambda: VALUE),
            "off": lambda: off.get_or_compute("hit", lambda: VALUE),
            "raw": lambda: backend.get("hit"),
        },
        n,
        repeats,
    )
    if on.stats.computes + off.stats.computes != 1:
        raise RuntimeError("a hit-path call computed: the key was not cached")
    ratio = figures["on"] / figures["off"]
    goal = "met" if ratio <= 1.10 else "NOT met"
    return (
        f"| {label} | {figures['on']:,.2f} | {figures['off']:,.2f} | {figures['raw']:,.2f} "
        f"| {ratio:.2f} | {figures['on'] / figures['raw']:.2f} | {goal} |"
    )


# ------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer herds, calls and repeats")
    args = parser.parse_args()
    herds, process_herds = (3, 2) if args.quick else (9, 5)
    n, repeats = (200, 5) if args.quick else (2000, 9)
    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"machine: {platform.platform()}, {platform.machine()}")
    print(
        f"cachetools {version('cachetools')}, redis-py {version('redis')}, "
        f"pymemcache {version('pymemcache')}"
    )
    one = one_compute_seconds()
    print(
        f"compute: sleep {COMPUTE_SECONDS * 1e3:g} ms; one compute alone measured "
        f"{one * 1e3:.1f} ms (the 'x one compute' unit)"
    )
    print()
    print(f"### {THREADS} threads in one process miss one key (memory)")
    print()
    print(f"max computes and median wall time over {herds} herds each, interleaved")
    print()
    print("| contender | computes | herd wall (ms) | x one compute | goal: 1 compute |")
    print("|---|---:|---:|---:|---|")
    for row in in_process_rows(herds, one):
        print(row)
    print()
    with contextlib.ExitStack() as stack:
        # The with-blocks stop the servers however this ends (and servers stops any left at
        # interpreter exit).
        redis_server = stack.enter_context(servers.start_redis(fake_time=False))
        memcached_server = stack.enter_context(servers.start_memcached(fake_time=False))
        print(
            f"### {PROCESSES} processes x {THREADS_PER_PROCESS} threads miss one key "
            "(a throwaway server each, real time)"
        )
        print()
        print(
            f"max computes, most lease takeovers and median wall time over "
            f"{process_herds} herds each, interleaved; goal: 1 compute per expiry"
        )
        print()
        print(
            "| backend | strategy | computes | shared, per herd | hits, per herd | lease takeovers "
            "| herd wall (ms) "
            "| x one compute | goal: 1 compute |"
        )
        print("|---|---|---:|---|---|---:|---:|---:|---|")
        for label, server in (("Redis", redis_server), ("memcached", memcached_server)):
            for row in process_rows(label, server.url, process_herds, one):
                print(row)
        print()
        print("### hit path, single-flight on vs off")
        print()
        print(f"{repeats} repeats x {n} calls, median us/call")
        print()
        print(
            "| backend | single-flight on (us) | off (us) | raw get (us) | on / off | on / raw "
            "| goal on / off <= 1.10 |"
        )
        print("|---|---:|---:|---:|---:|---:|---|")
        print(hit_row("memory", MemoryBackend(), n, repeats))
        for label, server in (("Redis", redis_server), ("memcached", memcached_server)):
            backend = open_backend(server.url, namespace="bench")
            try:
                print(hit_row(label, backend, n, repeats))
            finally:
                backend.close()
    print()
    print(
        "shared: callers that waited for another's compute (in-process flight, or another "
        "process's lease) and got its value; hits: callers that arrived after the fill; the "
        "rest of the 64 missed, led a new flight after the first had ended and found the "
        "value at their first lease check (Cache counts them in neither). Lease takeovers: "
        "a caller that waited out a lease, then computed. A hit never reaches the flight "
        "table, so on / off measures noise."
    )


if __name__ == "__main__":
    main()
