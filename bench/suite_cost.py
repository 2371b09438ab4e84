"""What the conformance suite itself costs per step, against bare Hypothesis.

    python bench/suite_cost.py [--quick]

Three state machines with the same rules and the same strategies (``new_key`` filling a
bundle of keys, ``set(key, value, ttl)``, ``get(key)``) run under the same settings:

* ours: the suite's ``ops.get_set`` machine on ``memory://`` (backend, model, checks);
* no-op: rules whose bodies do nothing, i.e. Hypothesis's own cost for those steps;
* dict: the same rules writing and reading a plain ``dict``, with no model and no checks.

Steps are counted the same way in all three: a subclass adds an invariant and counts
``__init__`` calls. Hypothesis checks invariants once before the first step and once after
every step, so steps = invariant calls - examples. Timing covers the whole test call:
example generation, machine set-up and teardown, and the steps, in CPU time of the thread
that runs them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    get_state_machine_test,
    invariant,
    rule,
)

from cachespec.conformance.checks import MachineCheck
from cachespec.conformance.pools import PLAIN_KEYS, PLAIN_VALUES, Blob
from cachespec.conformance.properties import BY_ID
from cachespec.conformance.target import resolve_target

STEPS = 50
KEYS: Bundle[str] = Bundle("keys")


# ------------------------------------------------------------------ the two baselines
# Same rule names, arguments and strategies as ops.get_set (see conformance/machines.py).
class NoOpMachine(RuleBasedStateMachine):
    @rule(target=KEYS, key=st.sampled_from(PLAIN_KEYS))
    def new_key(self, key: str) -> str:
        return key

    @rule(key=KEYS, value=PLAIN_VALUES, ttl=st.just(None))
    def set(self, key: str, value: bytes | Blob, ttl: float | None) -> None:
        pass

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        pass


class DictMachine(RuleBasedStateMachine):
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


def ours() -> type[RuleBasedStateMachine]:
    target = resolve_target("memory://")
    check = BY_ID["ops.get_set"].build(target, target.guarantees())
    assert isinstance(check, MachineCheck)
    return check.machine


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


def timed_run(machine: type[RuleBasedStateMachine], examples: int, run: int) -> tuple[Tally, float]:
    """Run ``machine`` for ``examples`` examples; return what ran and the seconds it took."""
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
    # CPU time of this thread, where Hypothesis runs everything: on a shared machine the time
    # the scheduler gives to other processes does not count against any machine.
    start = time.thread_time()
    test()
    return tally, time.thread_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples and repeats")
    args = parser.parse_args()
    examples, repeats = (50, 3) if args.quick else (300, 7)
    with tempfile.TemporaryDirectory(prefix="suite-cost-") as scratch:
        # Hypothesis caches the constants of loaded modules under ./.hypothesis; a benchmark
        # should leave the working tree as it found it.
        os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", scratch)
        report(examples, repeats)


def report(examples: int, repeats: int) -> None:
    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"hypothesis {version('hypothesis')}, cachespec {version('cachespec')}")
    print(
        f"{repeats} repeats x {examples} examples x up to {STEPS} steps, "
        "median steps/s; machines interleaved"
    )
    print()

    machines: dict[str, type[RuleBasedStateMachine]] = {
        "ours: ops.get_set on memory://": ours(),
        "no-op rules": NoOpMachine,
        "plain dict": DictMachine,
    }
    for machine in machines.values():  # warm up imports and Hypothesis's caches
        timed_run(machine, 5, -1)
    rates: dict[str, list[float]] = {name: [] for name in machines}
    lengths: dict[str, list[float]] = {name: [] for name in machines}
    for run in range(repeats):  # interleaved, so drift in the machine's speed hits all alike
        for name, machine in machines.items():
            tally, seconds = timed_run(machine, examples, run)
            rates[name].append(tally.steps / seconds)
            lengths[name].append(tally.steps / tally.examples)
    median = {name: statistics.median(r) for name, r in rates.items()}
    noop = median["no-op rules"]

    print("| machine | steps/s | / no-op | steps/example |")
    print("|---|---:|---:|---:|")
    for name, rate in median.items():
        length = statistics.mean(lengths[name])
        print(f"| {name} | {rate:,.0f} | {rate / noop:.2f} | {length:.1f} |")
    ratio = median["ours: ops.get_set on memory://"] / noop
    print()
    print("| ratio | measured | goal | |")
    print("|---|---:|---:|---|")
    print(f"| ours / no-op | {ratio:.2f} | ≥ 0.5 | {'met' if ratio >= 0.5 else 'NOT met'} |")


if __name__ == "__main__":
    main()
