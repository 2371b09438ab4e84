"""How many examples, and how many seconds, the suite needs to reject each mutant.

    python bench/time_to_kill.py [--size default] [--seeds 20261127 4242 r r r] [--jobs 2]

Every mutant in ``tests/`` (the backend mutants, the strategy mutants on ``memory://``) is
run against the property that must reject it, at the given size, once per seed (``r``
draws a random one, printed). Shrinking is left out of the count: what is measured is the
generate phase up to the first failing example, which is what a property's budget must
cover. For each mutant the table gives the examples to the first failure (a session is one
example: every check opens one per example or trial) as the worst over the seeds, beside
the property's budget at that size, and the seconds to that failure.

A mutant that survives a seed is printed as ``SURVIVED``: the budget is too small for it.
Property budgets (``Property.examples``) are set from this table, with a margin; see
``docs/cost.md``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hypothesis import Phase, settings

from cachespec.conformance import Target, resolve_target, runner
from cachespec.conformance.properties import BY_ID

# The mutants live with the project's tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from mutants import MUTANTS
from strategy_mutants import STRATEGY_MUTANTS


@dataclass(frozen=True)
class Outcome:
    mutant: str
    prop: str
    seed: int
    killed: bool
    examples: int  # sessions opened up to the first failure (all of them if it survived)
    seconds: float
    budget: int
    error: str = ""  # a failure for another reason than the mutant's: the harness broke


_SUITE_SETTINGS = runner.hypothesis_settings


def _run_one(job: tuple[str, str, int, str, int | None]) -> Outcome:
    kind, name, seed_value, size, steps = job

    def no_shrink(budget: runner.Budget, examples: int) -> settings:
        chosen = _SUITE_SETTINGS(budget, examples)
        return settings(
            chosen,
            phases=[Phase.explicit, Phase.generate],
            stateful_step_count=steps or chosen.stateful_step_count,
        )

    # Replaced for this run only, and always from the suite's own: a worker process runs
    # many jobs, and wrapping the previous job's wrapper nested one call per job until
    # Python's recursion limit failed every later run (seen at 2,560 runs on 2 processes).
    runner.hypothesis_settings = no_shrink
    strategies = None
    if kind == "backend":
        factory, prop, pattern = MUTANTS[name]
        target = Target(f"mutants:{name}", factory)
    else:
        chosen, prop, pattern = STRATEGY_MUTANTS[name]
        target, strategies = resolve_target("memory://"), chosen()
    started = time.perf_counter()
    try:
        report = runner.run_suite(
            target, size=size, seed=seed_value, only=[prop], strategy=strategies
        )
    finally:
        runner.hypothesis_settings = _SUITE_SETTINGS
    seconds = time.perf_counter() - started
    result = report.result(prop)
    # A kill is a failure for the mutant's own reason (the tests' pattern); any other
    # failure is the harness's, and is reported as such rather than counted.
    killed = result.status == "fail" and re.search(pattern, result.reason) is not None
    error = result.reason if result.status == "fail" and not killed else ""
    # One session is the guarantees probe; every other is an example or a trial.
    examples = target.sessions_opened - 1
    budget = runner.SIZES[size].examples(BY_ID[prop])
    return Outcome(name, prop, seed_value, killed, examples, seconds, budget, error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="default")
    parser.add_argument("--seeds", nargs="+", default=["20261127", "4242", "r", "r", "r"])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", nargs="*", help="mutant names")
    parser.add_argument("--steps", type=int, help="steps per example, instead of the size's")
    args = parser.parse_args()
    seeds = [random.randrange(2**32) if s == "r" else int(s) for s in args.seeds]
    mutants = [("backend", n) for n in sorted(MUTANTS)]
    mutants += [("strategy", n) for n in sorted(STRATEGY_MUTANTS)]
    if args.only:
        mutants = [(k, n) for k, n in mutants if n in args.only]
    jobs = [(kind, name, s, args.size, args.steps) for kind, name in mutants for s in seeds]
    print(f"size {args.size}, seeds {seeds}, {len(jobs)} runs on {args.jobs} processes")
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        outcomes = list(pool.map(_run_one, jobs))
    print(f"{time.perf_counter() - started:.0f} s in all\n")
    print("| mutant | property | examples to kill (worst of seeds) | budget | seconds (median) |")
    print("|---|---|---:|---:|---:|")
    for _, name in mutants:
        mine = [o for o in outcomes if o.mutant == name]
        broken = [o for o in mine if o.error]
        survived = [o.seed for o in mine if not o.killed and not o.error]
        shown = str(max(o.examples for o in mine))
        if survived:
            shown = f"SURVIVED seeds {survived}"
        if broken:
            shown = f"ERROR at seed {broken[0].seed}: {broken[0].error[:120]}"
        median = statistics.median(o.seconds for o in mine)
        print(f"| {name} | {mine[0].prop} | {shown} | {mine[0].budget} | {median:.2f} |")


if __name__ == "__main__":
    main()
