"""Print, last, what failed in a `tox run-parallel`: every property a `cachespec check`
report marks failed (with its seed and counterexample) and every failed pytest case.

Why: run-parallel prints a failed env's output somewhere in the middle of the log, and a
log read from its tail (as CI logs often are) then loses the one part that matters. This
reads the reports the envs wrote under .tox/<env>/tmp/ and repeats their failures at the
end. It runs nothing and decides nothing: the exit code stays tox's.

Standard library only: it runs with the system Python, outside every env.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# Enough of a counterexample or traceback to act on, not so much that it buries the rest.
MAX_LINES = 60


def _clip(text: str) -> str:
    lines = text.rstrip().splitlines()
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"... ({len(lines) - MAX_LINES} more lines)"]
    return "\n".join("    " + line for line in lines)


def report_failures(path: Path) -> list[str]:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return [f"{path}: unreadable report ({exc})"]
    out = []
    for prop in report.get("properties", []):
        if prop.get("status") != "fail":
            continue
        out.append(
            f"{report.get('backend')} {prop.get('id')} FAILED "
            f"(seed {report.get('seed')}, size {report.get('size')}): {prop.get('reason', '')}"
        )
        if prop.get("counterexample"):
            out.append(_clip(prop["counterexample"]))
    return out


def junit_failures(path: Path) -> list[str]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return [f"{path}: unreadable JUnit file ({exc})"]
    out = []
    for case in root.iter("testcase"):
        for outcome in ("failure", "error"):
            found = case.find(outcome)
            if found is not None:
                name = f"{case.get('classname')}::{case.get('name')}"
                out.append(f"{name} {outcome.upper()}: {found.get('message', '')[:300]}")
                out.append(_clip(found.text or ""))
    return out


def main(root: Path) -> int:
    lines: list[str] = []
    for path in sorted(root.glob(".tox/*/tmp/*.json")):
        lines.extend(report_failures(path))
    for path in sorted(root.glob(".tox/*/tmp/*.xml")):
        lines.extend(junit_failures(path))
    if lines:
        print("\n==== what failed, repeated from the envs' reports ====")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
