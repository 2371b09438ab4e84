"""``cachespec``: the command line.

    cachespec check [BACKEND] [--size quick|default|thorough] [--seed N] [--jobs N]
                    [--only PATTERN ...] [--strategy NAME|module:callable]
                    [--report FILE.json] [--junit FILE.xml] [--require-all]
    cachespec list
    cachespec table FILE.json ...

Exit status: 0 when every promised property holds, 1 on a violation, 2 on a usage or
connection error (with a one-line reason on stderr), 130 on Ctrl-C and 143 on SIGTERM
(after printing what finished and writing the reports, unfinished properties marked
``interrupted``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

from .properties import PROPERTIES
from .report import (
    ID_WIDTH,
    guarantee_table,
    header,
    progress_line,
    table,
    tick_line,
    write_json,
    write_junit,
)
from .runner import SIZES, STOP, Interrupted, Listener, Report, Result, run_suite
from .servers.registry import kind_names
from .target import TargetError

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cachespec", description="Check cache backends against an executable model."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="run the conformance suite against a backend",
        description="Run the conformance suite against BACKEND and report each property.",
        epilog="exit status: 0 every promised property holds; 1 a violation; 2 a usage or "
        "connection error; 130 Ctrl-C; 143 SIGTERM (what finished is reported either way)",
    )
    check.add_argument(
        "backend",
        nargs="?",
        default="memory://",
        help="a URL (memory://?capacity=100, redis://host:6379/0, memcached://host), a "
        f"server the harness starts and stops on its own clock ({', '.join(kind_names())}, "
        "with options after ?: 'redis?capacity=8'), or module:callable returning a backend "
        "(default: memory://)",
    )
    sizes = "; ".join(f"{name}: {budget.purpose}" for name, budget in SIZES.items())
    check.add_argument("--size", choices=list(SIZES), default="default", help=f"run size ({sizes})")
    check.add_argument(
        "--jobs",
        type=_jobs,
        default=default_jobs(),
        metavar="N",
        help="worker processes to spread the properties over, each with a backend (a "
        f"throwaway server) of its own (default: {default_jobs()}, this machine's cores, "
        "at most 4)",
    )
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
    check.add_argument(
        "--require-all",
        action="store_true",
        help="fail a property this target cannot check (a server you run has no harness "
        "clock) instead of skipping it; what the backend declares stays a skip",
    )
    check.add_argument("--quiet", action="store_true", help="no progress lines")
    commands.add_parser("list", help="list the properties and their promises")
    table_cmd = commands.add_parser(
        "table", help="a Markdown guarantee table (property by backend) from JSON reports"
    )
    table_cmd.add_argument("reports", nargs="+", metavar="FILE.json")
    return parser


def default_jobs() -> int:
    """The cores this process may use, at most 4: past that, few runs have the work."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"--jobs takes a whole number >= 1, not {text!r}")
    return jobs


def hypothesis_home() -> Path:
    """Where Hypothesis may keep its caches: the user's cache directory, never a
    ``.hypothesis/`` folder in the directory the check runs from ($HYPOTHESIS_STORAGE_DIRECTORY
    still wins)."""
    configured = os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cachespec" / "hypothesis"


def _version() -> str:
    try:
        return importlib.metadata.version("cachespec")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


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

    signal_name = "SIGTERM"


def _asks_to_stop(kind: type[KeyboardInterrupt]) -> Callable[[int, object], None]:
    """A signal handler that asks the run to stop at its next example or property, where it
    unwinds cleanly (runner.StopRequest); a second signal stops it at once."""

    def handler(signum: int, frame: object) -> None:
        STOP.ask(kind)

    return handler


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
    STOP.reset()
    signal.signal(signal.SIGTERM, _asks_to_stop(_Terminated))
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if ignored
        signal.signal(signal.SIGINT, _asks_to_stop(KeyboardInterrupt))
    set_hypothesis_home_dir(hypothesis_home())
    listener = _Printer(quiet=args.quiet)
    try:
        report = run_suite(
            args.backend,
            size=args.size,
            seed=args.seed,
            only=args.only,
            strategy=args.strategy,
            listener=listener,
            jobs=args.jobs,
            require_all=args.require_all,
        )
    except TargetError as exc:
        listener.clear()
        print(f"cachespec: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as stop:
        listener.clear()
        terminated = stop.signal_name == "SIGTERM"
        print(f"cachespec: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        _finish(stop.report, args)  # what finished, and the reports, even now
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    except KeyboardInterrupt as stop:  # before the run began: nothing to report
        listener.clear()
        terminated = isinstance(stop, _Terminated)
        print(f"cachespec: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    listener.clear()
    code = _finish(report, args)
    if code != EXIT_OK:
        return code
    return EXIT_OK if report.passed else EXIT_VIOLATION


def _finish(report: Report, args: argparse.Namespace) -> int:
    """Print the table and write the reports; EXIT_USAGE if a report cannot be written."""
    print(table(report))
    try:
        if args.report:
            write_json(report, args.report)
        if args.junit:
            write_junit(report, args.junit)
    except OSError as exc:
        print(f"cachespec: cannot write the report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


class _Printer(Listener):
    """Progress on stderr: the header first, a line per property, and while a long one
    runs, how far it got (rewritten in place on a terminal, a line every
    ``LOG_EVERY`` seconds in a log)."""

    LOG_EVERY = 30.0

    def __init__(self, *, quiet: bool) -> None:
        self._quiet = quiet
        self._tty = sys.stderr.isatty()
        self._lock = threading.Lock()  # ticks may come from another thread
        self._status = ""  # the in-place line now on the terminal, if any
        self._logged: dict[str, float] = {}  # property -> seconds at its last logged tick

    def began(self, report: Report, expected_seconds: float, jobs: int) -> None:
        print(header(report, expected_seconds, jobs), file=sys.stderr, flush=True)

    def ticked(self, prop_id: str, done: int, examples: int, seconds: float) -> None:
        if self._quiet:
            return
        line = tick_line(prop_id, done, examples, seconds)
        with self._lock:
            if self._tty:
                self._write(f"\r\033[K{line}")
                self._status = line
            elif seconds - self._logged.get(prop_id, 0.0) >= self.LOG_EVERY:
                self._logged[prop_id] = seconds
                self._write(line + "\n")

    def finished(self, result: Result, index: int, total: int) -> None:
        if not self._quiet:
            with self._lock:
                self.clear()
                self._write(progress_line(result, index, total) + "\n")

    def clear(self) -> None:
        """Take the in-place line off the terminal."""
        if self._status:
            self._write("\r\033[K")
            self._status = ""

    @staticmethod
    def _write(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()
