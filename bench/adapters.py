"""The Redis, memcached and fakeredis adapters beside their raw clients, in one run.

    python bench/adapters.py [--quick]

The harness starts throwaway servers on loopback in real time (no libfaketime: it slows
memcached about six-fold and would measure the harness, not the adapter). Every figure is
the median over interleaved repeats of a timed loop, in microseconds of wall-clock time per
call (network round trips are wall-clock by nature). The raw clients are what a user would
call instead: redis-py's ``Redis.get/set/mget``, pymemcache's ``Client`` with replies on
(``default_noreply=False``, as our adapter always waits for replies), fakeredis's
``FakeRedis``. memcached is measured three ways: the default namespace (exact ``clear``
by a generation counter every call sees), ``namespace_refresh=1``, and ``clear=none`` (no
counter, no ``clear``). Goals, as ratios: each adapter call at most 1.05x its raw client's;
a batch of 100 in one round trip, far cheaper than 100 single calls. Measured, never
asserted.
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

import fakeredis
import pymemcache.client.base  # type: ignore[import-untyped]
import redis

from cachespec.backends import open_backend
from cachespec.conformance import servers

VALUE = b"v" * 32
KEYS = [f"k{i}" for i in range(100)]

Loop = Callable[[], None]


def per_call(loop: Loop, calls: int) -> float:
    started = time.perf_counter()
    loop()
    return (time.perf_counter() - started) / calls * 1e6


def median_of(loops: dict[str, tuple[Loop, int]], repeats: int) -> dict[str, float]:
    """Run the loops alternately ``repeats`` times; the median microseconds per call each."""
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(repeats):
        for name, (loop, calls) in loops.items():
            samples[name].append(per_call(loop, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def raw_pair(
    get: Callable[[str], object],
    set_: Callable[[str, bytes], object],
    many: Callable[[list[str]], object],
    ops: int,
) -> dict[str, tuple[Loop, int]]:
    hits = [KEYS[i % len(KEYS)] for i in range(ops)]
    misses = [f"absent{i}" for i in range(ops)]

    def get_hit() -> None:
        for key in hits:
            get(key)

    def get_miss() -> None:
        for key in misses:
            get(key)

    def put() -> None:
        for key in hits:
            set_(key, VALUE)

    # The batch and its 100 single gets are timed alike: each repeated ``rounds`` times in
    # a sample. Timing one get_many a sample measured a cold call (the first after the other
    # loops, its connection and caches cold) against 100 singles that warm up after the
    # first: the cluster's ratio read 9-10x where a warm loop measures about 18x.
    rounds = max(1, ops // len(KEYS))

    def batch() -> None:
        for _ in range(rounds):
            many(KEYS)

    def singles() -> None:
        for _ in range(rounds):
            for key in KEYS:
                get(key)

    return {
        "get hit": (get_hit, ops),
        "get miss": (get_miss, ops),
        "set": (put, ops),
        "get_many 100": (batch, rounds),
        "100 single gets": (singles, rounds),
    }


def compare(
    label: str, ours: dict[str, tuple[Loop, int]], raw: dict[str, tuple[Loop, int]], repeats: int
) -> list[str]:
    loops = {f"ours {k}": v for k, v in ours.items()} | {f"raw {k}": v for k, v in raw.items()}
    figures = median_of(loops, repeats)
    rows = []
    for op in ours:
        mine, theirs = figures[f"ours {op}"], figures[f"raw {op}"]
        ratio = mine / theirs
        goal = ""
        if op in ("get hit", "get miss", "set"):
            goal = "met" if ratio <= 1.05 else "NOT met"
        rows.append(f"| {label} | {op} | {mine:,.1f} | {theirs:,.1f} | {ratio:.2f} | {goal} |")
    single = figures["ours 100 single gets"] / figures["ours get_many 100"]
    rows.append(f"| {label} | 100 single gets / get_many 100 (ours) | | | {single:.0f}x | |")
    return rows


def redis_rows(
    client: redis.Redis, backend_url: str, label: str, *, ops: int, repeats: int
) -> list[str]:
    backend = open_backend(backend_url, namespace="bench")
    backend.set_many(dict.fromkeys(KEYS, VALUE))
    prefix = backend.key_prefix  # type: ignore[attr-defined]
    client.mset({prefix + k.encode(): VALUE for k in KEYS})
    raw = raw_pair(
        lambda k: client.get(prefix + k.encode()),
        lambda k, v: client.set(prefix + k.encode(), v),
        lambda ks: client.mget([prefix + k.encode() for k in ks]),
        ops,
    )
    ours = raw_pair(backend.get, backend.set, backend.get_many, ops)
    try:
        return compare(label, ours, raw, repeats)
    finally:
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    args = parser.parse_args()
    ops, repeats = (200, 5) if args.quick else (2000, 9)
    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"machine: {platform.platform()}, {platform.machine()}")
    print(
        f"redis-py {version('redis')}, pymemcache {version('pymemcache')}, "
        f"fakeredis {version('fakeredis')}; {repeats} repeats x {ops} calls, median us/call"
    )
    print()
    print("| backend | operation | ours (us) | raw client (us) | ours / raw | goal <= 1.05 |")
    print("|---|---|---:|---:|---:|---|")
    with servers.start_redis(fake_time=False) as server:
        client = redis.Redis(host=server.host, port=server.port)
        for row in redis_rows(client, server.url, "Redis", ops=ops, repeats=repeats):
            print(row)
        client.close()
    fake = fakeredis.FakeRedis()
    backend_url = "fakeredis://"
    for row in redis_rows(fake, backend_url, "fakeredis", ops=ops, repeats=repeats):
        print(row)
    with servers.start_memcached(fake_time=False) as server:
        raw_client = pymemcache.client.base.Client(
            (server.host, server.port), default_noreply=False
        )
        raw_client.set_many(dict.fromkeys(KEYS, VALUE), noreply=False)
        raw = raw_pair(raw_client.get, raw_client.set, raw_client.get_many, ops)
        # namespace_refresh=0 (the default) reads the namespace generation with every write,
        # in the same round trip: exact after another client's clear. clear=none has no
        # generation: each call touches only its own keys.
        for label, query in (
            ("memcached", ""),
            ("memcached, refresh 1 s", "?namespace_refresh=1"),
            ("memcached, clear=none", "?clear=none"),
        ):
            backend = open_backend(server.url + query, namespace="bench")
            backend.set_many(dict.fromkeys(KEYS, VALUE))
            ours = raw_pair(backend.get, backend.set, backend.get_many, ops)
            for row in compare(label, ours, raw, repeats):
                print(row)
            backend.close()
        raw_client.close()
    print()
    print(
        "fakeredis runs in process: 'raw' there is FakeRedis on the process-wide server, ours "
        "a FakeRedis on the same kind of server through the adapter."
    )


if __name__ == "__main__":
    main()
