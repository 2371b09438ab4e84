"""Print, last, how long each tox env took, from `tox run-parallel --result-json`.

Why: the CI budget is per run (40 minutes on 2 cores is the goal, 90 the hard limit), and
the next env to add has to fit. The figures are what tox measured for each env's setup and
commands; envs run side by side, so they add up to more than the run's wall time.

Standard library only: it runs with the system Python, outside every env.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str) -> int:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        print(f"env durations: unreadable ({exc})")
        return 0
    rows = []
    for name, env in data.get("testenvs", {}).items():
        result = env.get("result") or {}
        if "duration" not in result:
            continue  # tox's own packaging env, which has no result of its own
        commands = [c.get("elapsed", 0.0) for c in env.get("test", [])]
        parts = " + ".join(f"{seconds:.0f}" for seconds in commands)
        status = "ok" if result.get("success") else f"FAILED (exit {result.get('exit_code')})"
        rows.append(
            (
                result["duration"],
                f"{name:<10} {result['duration']:7.0f} s  {status}  commands: {parts}",
            )
        )
    print("\nenv durations (seconds, side by side on this machine's cores):")
    for _, line in sorted(rows, reverse=True):
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
