"""The Redis Cluster adapter beside the single-server one, in one run.

    python bench/cluster.py [--quick]

The harness starts a throwaway redis-server and a throwaway cluster (3 masters, 3
replicas) on loopback, in real time. Every figure is the median over interleaved repeats of
a timed loop, in microseconds per call: of wall-clock time, and of this thread's CPU time
(what the client spends; on a loaded machine the wall clock mostly measures the others).
Goals (issue #16), as ratios: a single-key call on the cluster at most 1.10x the same call
on one server; a ``get_many`` of 100 keys spread over the 3 masters (one round trip per
master) at least 10x faster than 100 single gets. Measured, never asserted.

Two cluster backends run side by side: the adapter (its fast path, cluster_route.py) and the
same adapter with every command through redis-py's ``RedisCluster``, as before the fast path
("via redis-py"): a before/after in one run, interleaved.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import redis
from adapters import KEYS, VALUE, Loop, raw_pair

from cachespec.backends import open_backend
from cachespec.backends.redis import RedisClusterBackend
from cachespec.backends.redis.cluster_route import SlotRouter
from cachespec.conformance import servers
from cachespec.conformance.servers.cluster import start_redis_cluster


class _ViaRedisPy(SlotRouter):
    """Every command through redis-py's cluster client: the adapter before its fast path."""

    __slots__ = ()

    def execute(self, *args: Any) -> Any:
        return self._cluster.execute_command(*args)

    def per_slot(self, commands: Any, slots: Any) -> list[Any]:
        return self._batch_through_cluster(commands, slots)

    def on_masters(self, names: Any, head: Any) -> None:
        return None  # no per-node script: get_many slot by slot, as before the fast path


def _medians(loops: dict[str, tuple[Loop, int]], repeats: int) -> dict[str, tuple[float, float]]:
    """Run the loops alternately ``repeats`` times; per loop, the median wall-clock and
    thread-CPU microseconds per call."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in loops}
    for _ in range(repeats):
        for name, (loop, calls) in loops.items():
            wall, cpu = time.perf_counter(), time.thread_time()
            loop()
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            samples[name].append((wall / calls * 1e6, cpu / calls * 1e6))
    return {
        name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for name, got in samples.items()
    }


def _gets(client: Any, key: bytes, ops: int) -> Callable[[], None]:
    def loop() -> None:
        for _ in range(ops):
            client.get(key)

    return loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    args = parser.parse_args()
    ops, repeats = (200, 5) if args.quick else (2000, 9)
    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"machine: {platform.platform()}, {platform.machine()}")
    print(f"redis-py {version('redis')}; {repeats} repeats x {ops} calls, median us/call")
    print()
    with (
        servers.start_redis(fake_time=False) as single,
        start_redis_cluster(fake_time=False) as cluster,
    ):
        one = open_backend(single.url, namespace="bench")
        many = open_backend(cluster.url, namespace="bench")
        before = open_backend(cluster.url, namespace="bench")
        assert isinstance(before, RedisClusterBackend)
        before._router = _ViaRedisPy(before._client)  # type: ignore[arg-type]
        before._execute = before._router.execute
        try:
            for backend in (one, many):
                backend.set_many(dict.fromkeys(KEYS, VALUE))
            pairs = (("one", one), ("cluster", many), ("via redis-py", before))
            loops = {
                f"{label} {op}": loop
                for label, backend in pairs
                for op, loop in raw_pair(backend.get, backend.set, backend.get_many, ops).items()
            }
            # redis-py's own clients, for what the cluster client costs by itself.
            raw_one = redis.Redis(host=single.host, port=single.port)
            seed = cluster.masters[0]
            raw_many = redis.RedisCluster(host=seed.host, port=seed.port)
            prefix = many.key_prefix  # type: ignore[attr-defined]
            for label, client in (("raw one", raw_one), ("raw cluster", raw_many)):
                client.set(prefix + b"k0", VALUE)
                loops[f"{label} get hit"] = (_gets(client, prefix + b"k0", ops), ops)
            measured = _medians(loops, repeats)
            raw_one.close()
            raw_many.close()
        finally:
            one.close()
            many.close()
            before.close()
    for kind, index in (("wall-clock", 0), ("client CPU", 1)):
        figures = {name: pair[index] for name, pair in measured.items()}
        _table(kind, figures)


def _table(kind: str, figures: dict[str, float]) -> None:
    print(f"{kind} us per call:")
    print()
    print("| operation | one server | cluster | cluster / one | via redis-py / one | goal |")
    print("|---|---:|---:|---:|---:|---|")
    for op in ("get hit", "get miss", "set", "get_many 100", "100 single gets"):
        mine, base, old = (figures[f"{who} {op}"] for who in ("cluster", "one", "via redis-py"))
        goal = ""
        if op in ("get hit", "get miss", "set"):
            goal = "<= 1.10: " + ("met" if mine / base <= 1.10 else "NOT met")
        print(
            f"| {op} | {base:,.1f} | {mine:,.1f} | {mine / base:.2f} | {old / base:.2f} | {goal} |"
        )
    raw = figures["raw cluster get hit"] / figures["raw one get hit"]
    print(
        f"| get hit, redis-py's own clients | {figures['raw one get hit']:,.1f} | "
        f"{figures['raw cluster get hit']:,.1f} | {raw:.2f} | | |"
    )
    batch = figures["cluster 100 single gets"] / figures["cluster get_many 100"]
    old_batch = figures["via redis-py 100 single gets"] / figures["via redis-py get_many 100"]
    verdict = "met" if batch >= 10 else "NOT met"
    print(
        f"| cluster: 100 single gets / get_many 100 | | {batch:.1f}x | | {old_batch:.1f}x | "
        f">= 10x: {verdict} |"
    )
    print()


if __name__ == "__main__":
    main()
