"""The report's three forms: a terminal table, JSON, and JUnit XML."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from .runner import CANNOT_CHECK_HERE, NOT_APPLICABLE, Report, Result

STATUS_WORD = {"pass": "pass", "fail": "FAIL", "skip": "skip", "interrupted": "stopped"}
# The id column: wide enough for every property id, so the columns after it line up.
ID_WIDTH = 29


def progress_line(result: Result, index: int, total: int) -> str:
    width = len(str(total))
    timing = f"{result.seconds:6.2f}s" if result.status != "skip" else "       "
    status = STATUS_WORD[result.status]
    return f"[{index:>{width}}/{total}] {result.id:<{ID_WIDTH}} {status:<4} {timing}"


def tick_line(prop_id: str, done: int, examples: int, seconds: float) -> str:
    """A property still running: how many of its examples have run."""
    return f"  ... {prop_id:<{ID_WIDTH}} {done}/{examples} examples, {seconds:.0f}s"


def header(report: Report, expected_seconds: float, jobs: int) -> str:
    """What a run is about to check, printed before its first property."""
    processes = "1 process" if jobs == 1 else f"{jobs} processes"
    return "\n".join(
        [
            f"cachespec check {report.backend}",
            f"  guarantees: {report.guarantees}",
            f"  clock: {report.clock}",
            f"  strategy: {report.strategy}",
            f"  size {report.size}, seed {report.seed}, {processes}, "
            f"expected about {_duration(expected_seconds)}",
            "",
        ]
    )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def table(report: Report) -> str:
    lines = [
        f"cachespec check {report.backend}",
        f"  guarantees: {report.guarantees}",
        f"  clock: {report.clock}",
        f"  strategy: {report.strategy}",
        f"  size {report.size}, seed {report.seed}, {report.seconds:.1f}s"
        + (f", stopped by {report.interrupted}" if report.interrupted else ""),
        "",
        f"{'property':<{ID_WIDTH}} {'status':<6} {'time':>7}  note",
    ]
    for r in report.results:
        note = r.reason.splitlines()[0] if r.reason else r.promise
        if r.clock:
            note = f"in {r.clock}: {note}"
        if len(note) > 90:
            note = note[:87] + "..."
        timing = f"{r.seconds:6.2f}s" if r.status in ("pass", "fail") else ""
        lines.append(f"{r.id:<{ID_WIDTH}} {STATUS_WORD[r.status]:<6} {timing:>7}  {note}")
    counts = {s: sum(1 for r in report.results if r.status == s) for s in STATUS_WORD}
    lines.append("")
    summary = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
    if report.interrupted:
        summary += f", {counts['interrupted']} interrupted"
    lines.append(summary)
    lines.append(checked_line(report))
    if report.causes and len(report.causes) < len(report.failed()):
        lines.append("")
        lines.append(
            f"{len(report.failed())} failures, {len(report.causes)} "
            f"counterexample{'s' if len(report.causes) > 1 else ''} between them "
            "(each replayed as every failing property's machine):"
        )
        for cause in report.causes:
            lines.append(f"  breaks {', '.join(cause.breaks)}:")
            lines.extend("    " + line for line in cause.program.splitlines())
    for r in report.results:
        if r.status != "fail":
            continue
        lines.append("")
        lines.append(f"--- {r.id}: {r.promise}")
        lines.extend(textwrap.wrap(r.reason, 100, subsequent_indent="    ") or [""])
        if r.counterexample:
            lines.append("  counterexample (runs as Python):")
            lines.extend("    " + line for line in r.counterexample.splitlines())
    if not report.passed:
        lines.append("")
        again = "reproduce with" if counts["fail"] else "run again with"
        lines.append(f"{again}: {report.reproduce()}")
    return "\n".join(lines)


def checked_line(report: Report) -> str:
    """``checked N of M``, and why the others were not: the backend's declarations, or
    this target's limits (a user's server has no harness clock, and may not be
    reconfigured or killed)."""
    kinds: dict[str, int] = {}
    for r in report.results:
        # With --require-all, what this target cannot check failed without running.
        if r.status == "skip" or r.skip == CANNOT_CHECK_HERE:
            kinds[r.skip or "skipped"] = kinds.get(r.skip or "skipped", 0) + 1
    why = "; ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    line = f"checked {report.checked} of {len(report.results)}" + (f" ({why})" if why else "")
    if kinds.get(CANNOT_CHECK_HERE) and not report.require_all:
        line += "; --require-all makes those a failure"
    return line


# guarantee_table's mark for a skip, by why it was skipped.
SKIP_MARK = {CANNOT_CHECK_HERE: "n/c", NOT_APPLICABLE: "n/a"}


def guarantee_table(reports: list[dict[str, object]]) -> str:
    """A Markdown table, property by backend, from JSON reports (``cachespec table``)."""
    columns = [str(r["backend"]) for r in reports]
    statuses: list[dict[str, str]] = []
    ids: dict[str, None] = {}
    for report in reports:
        row: dict[str, str] = {}
        for prop in report["properties"]:  # type: ignore[attr-defined]
            ids[prop["id"]] = None
            mark = {
                "pass": "pass",
                "fail": "**FAIL**",
                "skip": "skip",
                "interrupted": "interrupted",
            }[prop["status"]]
            if prop["status"] == "skip":
                mark = SKIP_MARK.get(prop.get("skip", ""), mark)
            row[prop["id"]] = mark
        statuses.append(row)
    lines = [
        "| property | " + " | ".join(f"`{c}`" for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    unrun = cannot = inapplicable = False
    for prop_id in sorted(ids):
        cells = [row.get(prop_id, "-") for row in statuses]
        unrun = unrun or "-" in cells
        cannot = cannot or "n/c" in cells
        inapplicable = inapplicable or "n/a" in cells
        lines.append(f"| `{prop_id}` | " + " | ".join(cells) + " |")
    seeds = ", ".join(
        f"`{column}` seed {report['seed']}, {report.get('size', '?')}"
        for column, report in zip(columns, reports, strict=True)
    )
    lines.append("")
    legend = "skip = the backend does not declare it (or opts out)"
    if cannot:
        legend += (
            "; n/c = cannot be checked on this target (on a server the harness did not "
            "start: eviction, faults, and what needs the harness's clock and does not run "
            "in real time)"
        )
    if inapplicable:
        legend += (
            "; n/a = does not apply to this backend (no server to fail in one that lives in "
            "the process; a cluster's or a ring's faults are checked by their own properties)"
        )
    if unrun:
        legend += "; - = not run (the check chose properties with --only)"
    lines.append(f"From `cachespec check` runs: {seeds}. {legend}.")
    return "\n".join(lines)


def write_json(report: Report, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")


def write_junit(report: Report, path: str | Path) -> None:
    suite = ET.Element(
        "testsuite",
        name=f"cachespec {report.backend}",
        tests=str(len(report.results)),
        failures=str(sum(r.status == "fail" for r in report.results)),
        errors=str(sum(r.status == "interrupted" for r in report.results)),
        skipped=str(sum(r.status == "skip" for r in report.results)),
        time=f"{report.seconds:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="seed", value=str(report.seed))
    ET.SubElement(props, "property", name="size", value=report.size)
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"cachespec.{r.id.split('.')[0]}",
            name=r.id,
            time=f"{r.seconds:.3f}",
        )
        if r.status == "fail":
            headline = (r.reason.splitlines() or ["failed"])[0][:500]
            failure = ET.SubElement(case, "failure", message=headline)
            failure.text = r.reason + ("\n\n" + r.counterexample if r.counterexample else "")
        elif r.status == "skip":
            ET.SubElement(case, "skipped", message=r.reason)
        elif r.status == "interrupted":  # an error, never a skip: it was not checked
            error = ET.SubElement(case, "error", type="interrupted", message=r.reason)
            error.text = f"the run was stopped by {report.interrupted} before this ended"
    ET.indent(suite)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
