"""How often a correct adapter fails a real-time property: the false alarms, which must be 0.

    python bench/realtime_false_alarms.py [--kinds redis memcached] [--runs 20]
        [--size default] [--only ops.clear ops.compare_and_set ops.mixed]

Each kind's server is started by the harness on the real clock (no libfaketime) and checked
as ``cachespec check redis://host`` checks a server you run (``UserServerTarget``: real
time, a guest's namespace), with the real adapter. Every property runs ``--runs`` times, a
new random seed each (printed, so a failure replays). The table gives, per kind and
property, the runs, the false alarms, the examples a run had, and the seconds a run took
(median and worst). docs/design.md, "Real time".
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time

from cachespec.conformance import servers
from cachespec.conformance.properties import BY_ID
from cachespec.conformance.realtime import examples
from cachespec.conformance.runner import SIZES, run_property
from cachespec.conformance.target import UserServerTarget

PROPERTIES = ("ops.clear", "ops.compare_and_set", "ops.mixed")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kinds", nargs="+", default=["redis", "memcached"])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--size", default="default", choices=sorted(SIZES))
    parser.add_argument("--only", nargs="+", default=list(PROPERTIES))
    args = parser.parse_args()
    print(f"$ python {' '.join(sys.argv)}")
    print(f"Python {platform.python_version()}, {platform.machine()}, {platform.node()}\n")
    budget = SIZES[args.size]
    rows = []
    for kind in args.kinds:
        start = servers.start_redis if kind == "redis" else servers.start_memcached
        with start(fake_time=False) as server:
            target = UserServerTarget(server.url)
            guarantees = target.guarantees()
            for prop_id in args.only:
                alarms, took = [], []
                for _ in range(args.runs):
                    seed = random.getrandbits(32)
                    began = time.perf_counter()
                    result = run_property(BY_ID[prop_id], target, guarantees, budget, seed)
                    took.append(time.perf_counter() - began)
                    if result.status != "pass":
                        alarms.append(seed)
                        print(f"{kind} {prop_id} seed {seed}: {result.status} {result.reason}")
                count = examples(budget.scale, guarantees)
                rows.append((kind, prop_id, args.runs, alarms, count, took))
            target.close()
    print("| kind | property | runs | false alarms | examples a run | s a run (median, worst) |")
    print("|---|---|---|---|---|---|")
    for kind, prop_id, runs, alarms, count, took in rows:
        seeds = f" (seeds {', '.join(map(str, alarms))})" if alarms else ""
        print(
            f"| {kind} | {prop_id} | {runs} | {len(alarms)}{seeds} | {count} | "
            f"{statistics.median(took):.1f}, {max(took):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
