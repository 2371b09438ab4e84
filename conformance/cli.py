"""``cachespec``: the command line.

    cachespec check [BACKEND] [--size quick|default|thorough] [--seed N]
                    [--only PATTERN ...] [--strategy NAME|module:callable]
                    [--report FILE.json] [--junit FILE.xml]
    cachespec list
    cachespec table FILE.json ...

Exit status: 0 when every promised property holds, 1 on a violation, 2 on a usage or
connection error (with a one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .properties import PROPERTIES
from .report import ID_WIDTH, guarantee_table, progress_line, table, write_json, write_junit
from .runner import SIZES, Result, run_suite
from .target import TargetError

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cachespec", description="Check cache backends against an executable model."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="run the conformance suite against a backend",
        description="Run the conformance suite against BACKEND and report each property.",
    )
    check.add_argument(
        "backend",
        nargs="?",
        default="memory://",
        help="a URL (memory://?capacity=100) or module:callable returning a backend "
        "(default: memory://)",
    )
    check.add_argument("--size", choices=list(SIZES), default="default", help="run size")
    check.add_argument("--seed", type=int, help="reproduce an earlier run")
    check.add_argument(
        "--only", nargs="+", metavar="PATTERN", help="property ids or globs, e.g. 'ttl.*'"
    )
    check.add_argument(
        "--strategy",
        metavar="NAME|module:callable",
        help="the cache-aside (and other strategy) implementations the staleness properties "
        "run: guarded (ours, the default), naive-cache-aside, or your own",
    )
    check.add_argument("--report", metavar="FILE.json", help="write the JSON report here")
    check.add_argument("--junit", metavar="FILE.xml", help="write a JUnit XML report here")
    check.add_argument("--quiet", action="store_true", help="no progress lines")
    commands.add_parser("list", help="list the properties and their promises")
    table_cmd = commands.add_parser(
        "table", help="a Markdown guarantee table (property by backend) from JSON reports"
    )
    table_cmd.add_argument("reports", nargs="+", metavar="FILE.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _run(argv)
        # Flush here, not at exit: what fits in the buffer is only written at the final
        # flush, where a closed pipe would be reported as an ignored exception.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (`cachespec list | head`): not an error of ours. Point stdout
        # at devnull so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


class _Terminated(KeyboardInterrupt):
    """SIGTERM, unwound as Ctrl-C is. Not SystemExit: Hypothesis takes that for a failing
    example and starts shrinking; on a KeyboardInterrupt it stops at once."""


_TERMINATING = threading.Event()


def _terminated(signum: int, frame: object) -> None:
    # The exception lands wherever the main thread is, which may be a garbage-collection
    # callback that ignores it; the event makes the next property boundary raise it again.
    _TERMINATING.set()
    raise _Terminated


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for prop in PROPERTIES:
            print(f"{prop.id:<{ID_WIDTH}} {prop.promise}")
        return EXIT_OK
    if args.command == "table":
        try:
            loaded = [json.loads(Path(name).read_text(encoding="utf-8")) for name in args.reports]
        except (OSError, ValueError) as exc:
            print(f"cachespec: cannot read a report: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(guarantee_table(loaded))
        return EXIT_OK

    # `kill`, a CI timeout or a container stop send SIGTERM: exit as for Ctrl-C, through
    # every finally block, so that the servers the harness started are stopped too.
    signal.signal(signal.SIGTERM, _terminated)

    def progress(result: Result, index: int, total: int) -> None:
        if _TERMINATING.is_set():
            raise _Terminated
        if not args.quiet:
            print(progress_line(result, index, total), file=sys.stderr, flush=True)

    try:
        report = run_suite(
            args.backend,
            size=args.size,
            seed=args.seed,
            only=args.only,
            strategy=args.strategy,
            progress=progress,
        )
    except TargetError as exc:
        print(f"cachespec: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as stop:
        if isinstance(stop, _Terminated):
            print("cachespec: terminated", file=sys.stderr)
            return 128 + signal.SIGTERM
        print("cachespec: interrupted", file=sys.stderr)
        return 130
    print(table(report))
    try:
        if args.report:
            write_json(report, args.report)
        if args.junit:
            write_junit(report, args.junit)
    except OSError as exc:
        print(f"cachespec: cannot write the report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if report.passed else EXIT_VIOLATION
