"""What the conformance suite itself costs per step, against bare Hypothesis; and what a
whole ``cachespec check`` costs, as a user waits for it.

    python bench/suite_cost.py [--quick]
    python bench/suite_cost.py --check memory:// [redis memcached] [--sizes quick default]

``--check`` times whole ``cachespec check TARGET --size SIZE`` runs, as a user runs them
(a fresh interpreter, the default ``--jobs``), three times each with three seeds, and prints
the median wall time beside the goal of issue #11 (quick on memory:// 10 s; default on
memory:// 60 s, on a server the harness starts 120 s).

State machines with the same rules and the same strategies (``new_key`` filling a bundle of
keys, ``set(key, value, ttl)``, ``get(key)``) run under the same settings. In process:

* ours: the suite's ``ops.get_set`` machine on ``memory://`` (backend, model, checks);
* no-op: rules whose bodies do nothing, i.e. Hypothesis's own cost for those steps;
* dict: the same rules writing and reading a plain ``dict``, with no model and no checks.

On each real server (Redis, memcached):

* ours: the same ``ops.get_set`` machine on the ``redis`` / ``memcached`` target, as
  ``cachespec check redis`` / ``memcached`` runs it: a server the harness starts, under
  libfaketime where it can (the output says which clock each server ran on);
* bare: the same rules calling the raw client (redis-py ``Redis.set/get``, pymemcache
  ``Client.set/get`` with ``noreply=False``) on a throwaway server of the same kind in real
  time, with no model and no checks; each example starts by emptying the server.

Steps are counted the same way in all of them: a subclass adds an invariant and counts
``__init__`` calls. Hypothesis checks invariants once before the first step and once after
every step, so steps = invariant calls - examples. Timing covers the whole test call:
example generation, machine set-up and teardown, and the steps; in process, in CPU time of
the thread that runs them; on servers, in wall time, since the server's share of every step
is spent in another process.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, ClassVar

import pymemcache.client.base  # type: ignore[import-untyped]
import redis
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    get_state_machine_test,
    invariant,
    rule,
)

from cachespec.conformance import servers
from cachespec.conformance.checks import MachineCheck
from cachespec.conformance.pools import PLAIN_KEYS, PLAIN_VALUES, Blob, as_bytes
from cachespec.conformance.properties import BY_ID
from cachespec.conformance.swarm import FocusedMachine
from cachespec.conformance.target import Target, TargetError, resolve_target

STEPS = 50
KEYS: Bundle[str] = Bundle("keys")


# ------------------------------------------------------------------ the two baselines
# Same rule names, arguments and strategies as ops.get_set (see conformance/machines.py),
# and like every machine of the suite, every rule in every example (conformance/swarm.py).
class NoOpMachine(FocusedMachine):
    @rule(target=KEYS, key=st.sampled_from(PLAIN_KEYS))
    def new_key(self, key: str) -> str:
        return key

    @rule(key=KEYS, value=PLAIN_VALUES, ttl=st.just(None))
    def set(self, key: str, value: bytes | Blob, ttl: float | None) -> None:
        pass

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        pass


class DictMachine(FocusedMachine):
    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, bytes | Blob] = {}

    @rule(target=KEYS, key=st.sampled_from(PLAIN_KEYS))
    def new_key(self, key: str) -> str:
        return key

    @rule(key=KEYS, value=PLAIN_VALUES, ttl=st.just(None))
    def set(self, key: str, value: bytes | Blob, ttl: float | None) -> None:
        self.data[key] = value

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        self.data.get(key)


# ------------------------------------------------------------- bare Hypothesis on a server
# The same rules again, each one raw client call. The suite's sessions start from an empty
# server; a bare test must too, or its examples would not be independent programs, so each
# example empties the server once (a set-up cost on both sides, outside any rule).
class BareRedisMachine(FocusedMachine):
    client: ClassVar[redis.Redis]

    def __init__(self) -> None:
        super().__init__()
        self.client.flushdb()

    @rule(target=KEYS, key=st.sampled_from(PLAIN_KEYS))
    def new_key(self, key: str) -> str:
        return key

    @rule(key=KEYS, value=PLAIN_VALUES, ttl=st.just(None))
    def set(self, key: str, value: bytes | Blob, ttl: float | None) -> None:
        self.client.set(key, as_bytes(value), px=None if ttl is None else round(ttl * 1000))

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        self.client.get(key)


class BareMemcachedMachine(FocusedMachine):
    client: ClassVar[pymemcache.client.base.Client]

    def __init__(self) -> None:
        super().__init__()
        self.client.flush_all(noreply=False)

    @rule(target=KEYS, key=st.sampled_from(PLAIN_KEYS))
    def new_key(self, key: str) -> str:
        return key

    @rule(key=KEYS, value=PLAIN_VALUES, ttl=st.just(None))
    def set(self, key: str, value: bytes | Blob, ttl: float | None) -> None:
        # noreply=False: wait for STORED, as the adapter does; with noreply a step would
        # only queue bytes and the bare side would skip the round trip ours pays.
        expire = 0 if ttl is None else math.ceil(ttl)
        self.client.set(key, as_bytes(value), expire=expire, noreply=False)

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        self.client.get(key)


def on_client(machine: type[RuleBasedStateMachine], client: object) -> type[RuleBasedStateMachine]:
    """``machine`` bound to ``client``: Hypothesis builds machines with no arguments, so the
    client is a class attribute (as the suite's machines hold their target)."""
    return type(machine.__name__, (machine,), {"client": client})


# ------------------------------------------------------------------------------- ours
def suite_machine(target: Target) -> type[RuleBasedStateMachine]:
    """The ``ops.get_set`` machine on ``target``, built as ``cachespec check`` builds it."""
    check = BY_ID["ops.get_set"].build(target, target.guarantees())
    assert isinstance(check, MachineCheck)
    return check.machine


def ours() -> type[RuleBasedStateMachine]:
    return suite_machine(resolve_target("memory://"))


@dataclass
class ServerPair:
    """One server kind's two machines, and the clock of the suite's server (bare's: real time)."""

    ours: type[RuleBasedStateMachine]
    bare: type[RuleBasedStateMachine]
    ours_clock: str


def server_pair(kind: str, stack: contextlib.ExitStack) -> ServerPair:
    """Start both servers of ``kind`` (stopped when ``stack`` closes) and build the machines.

    Raises TargetError or HarnessUnavailable when a server cannot be started here.
    """
    target = resolve_target(kind)  # what `cachespec check redis` / `memcached` resolves
    stack.callback(target.close)
    machine = suite_machine(target)  # asks the backend its guarantees: starts the server
    # ServerTarget falls back to real time without libfaketime (or a C compiler for Redis)
    # and then says why in clock_note; with it, the note is just "the harness's clock".
    clock = f"libfaketime, {target.clock_note}" if target.controls_time else target.clock_note
    # A real-time server, as the other benches start theirs: a bare test has no use for a
    # clock it does not move, so it would not pay for libfaketime either.
    if kind == "redis":
        server = stack.enter_context(servers.start_redis(fake_time=False))
        redis_client = redis.Redis(host=server.host, port=server.port)
        stack.callback(redis_client.close)
        bare = on_client(BareRedisMachine, redis_client)
    else:
        server = stack.enter_context(servers.start_memcached(fake_time=False))
        address = (server.host, server.port)
        memcached_client = pymemcache.client.base.Client(address, default_noreply=False)
        stack.callback(memcached_client.close)
        bare = on_client(BareMemcachedMachine, memcached_client)
    return ServerPair(machine, bare, clock)


# --------------------------------------------------------------------------- counting
@dataclass
class Tally:
    examples: int = 0
    checks: int = 0

    @property
    def steps(self) -> int:
        return self.checks - self.examples


def counted(machine: type[RuleBasedStateMachine], tally: Tally) -> type[RuleBasedStateMachine]:
    """``machine`` with a step counter: the same one function call per step on every machine."""

    def __init__(self: Any) -> None:
        tally.examples += 1
        machine.__init__(self)

    @invariant()
    def count_step(self: Any) -> None:
        tally.checks += 1

    namespace = {"__init__": __init__, "count_step": count_step}
    return type(f"Counted{machine.__name__}", (machine,), namespace)


Timer = Callable[[], float]


def timed_run(
    machine: type[RuleBasedStateMachine],
    examples: int,
    run: int,
    timer: Timer = time.thread_time,
) -> tuple[Tally, float]:
    """Run ``machine`` for ``examples`` examples; return what ran and the seconds it took.

    ``timer``: CPU time of this thread by default, where Hypothesis runs everything, so on
    a shared machine the time the scheduler gives to other processes does not count against
    any machine. A machine on a server waits for it in another process: that takes wall
    time (``time.perf_counter``), which that CPU time would leave out.
    """
    tally = Tally()
    test = get_state_machine_test(
        counted(machine, tally),
        settings=settings(
            max_examples=examples,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
        ),
    )
    seed(run)(test)  # the same seeds for every machine: comparable programs
    start = timer()
    test()
    return tally, timer() - start


Rates = dict[str, list[float]]


def interleaved(
    machines: dict[str, type[RuleBasedStateMachine]],
    examples: int,
    repeats: int,
    timer: Timer = time.thread_time,
) -> tuple[dict[str, float], dict[str, float]]:
    """Median steps/s and mean steps/example of each machine, run round-robin."""
    for machine in machines.values():  # warm up imports, Hypothesis's caches, connections
        timed_run(machine, 5, -1, timer)
    rates: Rates = {name: [] for name in machines}
    lengths: Rates = {name: [] for name in machines}
    for run in range(repeats):  # interleaved, so drift in the machine's speed hits all alike
        for name, machine in machines.items():
            tally, seconds = timed_run(machine, examples, run, timer)
            rates[name].append(tally.steps / seconds)
            lengths[name].append(tally.steps / tally.examples)
    median = {name: statistics.median(r) for name, r in rates.items()}
    return median, {name: statistics.mean(n) for name, n in lengths.items()}


SERVER_KINDS = ("redis", "memcached")
CLIENTS = {"redis": "redis-py Redis.set/get", "memcached": "pymemcache Client.set/get"}


# Seconds a whole check may take, by (target, size): the goals of issue #11.
CHECK_GOALS = {
    ("memory://", "quick"): 10.0,
    ("memory://", "default"): 60.0,
    ("redis", "default"): 120.0,
    ("memcached", "default"): 120.0,
}
CHECK_SEEDS = (1, 2, 3)


def report_checks(targets: list[str], sizes: list[str]) -> None:
    """Median wall time of whole `cachespec check` runs, as a user waits for them."""
    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"whole runs of `cachespec check`, seeds {CHECK_SEEDS}, median wall time")
    print()
    print("| target | size | runs (s) | median (s) | goal (s) | |")
    print("|---|---|---|---:|---:|---|")
    for target in targets:
        for size in sizes:
            seconds = []
            for run_seed in CHECK_SEEDS:
                command = [sys.executable, "-m", "cachespec", "check", target, "--quiet"]
                command += ["--size", size, "--seed", str(run_seed)]
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                seconds.append(time.perf_counter() - started)
                if done.returncode != 0:
                    why = done.stderr.strip()[:80]
                    print(f"| {target} | {size} | exit {done.returncode}: {why} | | | |")
                    break
            else:
                median = statistics.median(seconds)
                goal = CHECK_GOALS.get((target, size))
                verdict = "" if goal is None else ("met" if median <= goal else "NOT met")
                runs = ", ".join(f"{s:.0f}" for s in seconds)
                shown_goal = "" if goal is None else f"{goal:.0f}"
                print(f"| {target} | {size} | {runs} | {median:.0f} | {shown_goal} | {verdict} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples and repeats")
    parser.add_argument("--check", nargs="+", metavar="TARGET", help="time whole checks instead")
    parser.add_argument("--sizes", nargs="+", default=["quick", "default"], help="with --check")
    args = parser.parse_args()
    if args.check:
        report_checks(args.check, args.sizes)
        return
    examples, repeats = (50, 3) if args.quick else (300, 7)
    # Fewer examples on servers: a step there waits for a round trip or two, several times
    # what a step costs in process, and --quick has to stay quick.
    server_examples, server_repeats = (15, 3) if args.quick else (100, 7)
    with tempfile.TemporaryDirectory(prefix="suite-cost-") as scratch:
        # Hypothesis caches the constants of loaded modules under ./.hypothesis; a benchmark
        # should leave the working tree as it found it.
        os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", scratch)
        report(examples, repeats)
        print()
        report_servers(server_examples, server_repeats)


def report(examples: int, repeats: int) -> None:
    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"hypothesis {version('hypothesis')}, cachespec {version('cachespec')}")
    print(
        f"in process: {repeats} repeats x {examples} examples x up to {STEPS} steps, "
        "median steps/s in CPU time; machines interleaved"
    )
    print()

    machines: dict[str, type[RuleBasedStateMachine]] = {
        "ours: ops.get_set on memory://": ours(),
        "no-op rules": NoOpMachine,
        "plain dict": DictMachine,
    }
    median, lengths = interleaved(machines, examples, repeats)
    noop = median["no-op rules"]

    print("| machine | steps/s | / no-op | steps/example |")
    print("|---|---:|---:|---:|")
    for name, rate in median.items():
        print(f"| {name} | {rate:,.0f} | {rate / noop:.2f} | {lengths[name]:.1f} |")
    ratio = median["ours: ops.get_set on memory://"] / noop
    print()
    print("| ratio | measured | goal | |")
    print("|---|---:|---:|---|")
    print(f"| ours / no-op | {ratio:.2f} | ≥ 0.5 | {'met' if ratio >= 0.5 else 'NOT met'} |")


def report_servers(examples: int, repeats: int) -> None:
    print(
        f"on servers: {repeats} repeats x {examples} examples x up to {STEPS} steps, "
        "median steps/s in wall time (the server works in another process); ours and bare "
        "interleaved"
    )
    print(f"redis-py {version('redis')}, pymemcache {version('pymemcache')}")
    rows: list[str] = []
    ratios: list[str] = []
    notes: list[str] = []
    for kind in SERVER_KINDS:
        with contextlib.ExitStack() as stack:  # stops this kind's servers before the next
            try:
                pair = server_pair(kind, stack)
            except (TargetError, servers.HarnessUnavailable) as exc:
                notes.append(f"{kind}: not measured: {exc}")
                rows.append(f"| {kind} | not measured (see below) | — | — | — |")
                continue
            ours_name, bare_name = f"ours: ops.get_set on {kind}", f"bare: {CLIENTS[kind]}"
            median, lengths = interleaved(
                {ours_name: pair.ours, bare_name: pair.bare},
                examples,
                repeats,
                time.perf_counter,
            )
        print(f"{kind} clocks: ours on {pair.ours_clock}; bare on real time")
        bare = median[bare_name]
        for name, rate in median.items():
            rows.append(
                f"| {kind} | {name} | {rate:,.0f} | {rate / bare:.2f} | {lengths[name]:.1f} |"
            )
        ratios.append(f"| ours / bare, {kind} | {median[ours_name] / bare:.2f} | — | no goal set |")
    print()
    print("| server | machine | steps/s | / bare | steps/example |")
    print("|---|---|---:|---:|---:|")
    print("\n".join(rows))
    if ratios:
        print()
        print("| ratio | measured | goal | |")
        print("|---|---:|---:|---|")
        print("\n".join(ratios))
    for note in notes:
        print()
        print(note)


if __name__ == "__main__":
    main()
