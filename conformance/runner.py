"""Run the properties against a target and collect a report.

Runs are reproducible: ``seed`` fixes every property's Hypothesis seed (each property
derives its own from it), the example database is off, and the harness owns the clock.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import random
import shlex
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hypothesis import HealthCheck, Phase, Verbosity
from hypothesis import settings as Settings
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter

from cachespec.spec import Guarantees, Violation

from . import realtime, stillclock
from .causes import Cause, find_causes
from .checks import CannotCheck, Check, CheckFailed
from .properties import BY_ID, PROPERTIES, Property
from .properties.stateful import FOCUSES
from .skips import (
    CANNOT_CHECK_HERE,
    EXPECTED_FAILURE,
    NOT_APPLICABLE,
    NOT_DECLARED,
    OPTED_OUT,
    in_real_time,
    why_skipped,
)
from .staleness import Strategies, resolve_strategies
from .target import Target, TargetError, resolve_target

# The skip kinds and why_skipped live in skips.py; they are re-exported here, where the
# report and the tests have always found them.
__all__ = [
    "CANNOT_CHECK_HERE",
    "EXPECTED_FAILURE",
    "NOT_APPLICABLE",
    "NOT_DECLARED",
    "OPTED_OUT",
    "SIZES",
    "STOP",
    "Budget",
    "Interrupted",
    "Listener",
    "Report",
    "Result",
    "describe_failure",
    "in_real_time",
    "run_property",
    "run_suite",
    "why_skipped",
]

# "interrupted": the run was stopped (Ctrl-C, SIGTERM) before this property ended.
Status = Literal["pass", "fail", "skip", "interrupted"]


@dataclass(frozen=True)
class Budget:
    """How hard a run tries: a scale on each property's examples, and steps per example.

    Each property carries its own example count at the default size (``Property.examples``,
    set from how many examples its mutants need: docs/cost.md); a size scales them all.
    """

    name: str
    scale: float
    steps: int
    # What the size is for, in the words `cachespec check --help` and the README use.
    purpose: str = ""

    def examples(self, prop: Property) -> int:
        """How many examples (or trials) ``prop`` runs at this size."""
        return max(1, round(prop.examples * self.scale))


# 100 steps an example: longer programs reach a bug in fewer examples, enough fewer to pay
# for each example's greater cost (measured: docs/cost.md). Past 100 they stop paying.
SIZES: dict[str, Budget] = {
    "quick": Budget("quick", scale=0.2, steps=100, purpose="a smoke test: finds gross bugs"),
    "default": Budget(
        "default", scale=1.0, steps=100, purpose="for CI: rejects every mutant in the tests"
    ),
    "thorough": Budget("thorough", scale=6.0, steps=100, purpose="nightly: six times the examples"),
}


@dataclass
class Result:
    id: str
    promise: str
    status: Status
    reason: str = ""
    counterexample: str = ""
    seconds: float = 0.0
    skip: str = ""  # with status "skip": NOT_DECLARED, OPTED_OUT, ... (why it was not run)
    # realtime.CLOCK when it ran on the real clock, stillclock.CLOCK on a harness clock that
    # stood still; "" on the harness's.
    clock: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "skip": self.skip,
            "reason": self.reason,
            "counterexample": self.counterexample,
            "promise": self.promise,
            "seconds": round(self.seconds, 3),
            "clock": self.clock,
        }


@dataclass
class Report:
    backend: str
    seed: int
    size: str
    guarantees: str
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0
    clock: str = "the harness's clock"
    strategy: str = "guarded"
    # What was asked for, so that the report says how to run it again.
    only: list[str] | None = None
    strategy_spec: str | None = None  # as given to --strategy; None for ours or an object
    # Set when the run was stopped before it ended: "SIGINT" or "SIGTERM".
    interrupted: str | None = None
    require_all: bool = False  # a property this target cannot check fails the run
    # The fewest counterexamples that account for every failure (causes.py); empty when
    # fewer than two failures have one.
    causes: list[Cause] = field(default_factory=list)

    @property
    def checked(self) -> int:
        """How many properties ran to a verdict (passed or failed). One that --require-all
        failed because this target cannot check it did not run: it is not counted."""
        return sum(
            r.status in ("pass", "fail") and r.skip != CANNOT_CHECK_HERE for r in self.results
        )

    @property
    def passed(self) -> bool:
        return self.interrupted is None and all(r.status in {"pass", "skip"} for r in self.results)

    def reproduce(self) -> str:
        """The command line that runs this check again, exactly."""
        words = ["cachespec", "check", self.backend, "--seed", str(self.seed)]
        if self.size != "default":
            words += ["--size", self.size]
        if self.strategy_spec is not None:
            words += ["--strategy", self.strategy_spec]
        if self.require_all:
            words.append("--require-all")
        if self.only:
            words += ["--only", *self.only]
        return shlex.join(words)

    def result(self, prop_id: str) -> Result:
        for r in self.results:
            if r.id == prop_id:
                return r
        raise KeyError(prop_id)

    def failed(self) -> list[str]:
        return [r.id for r in self.results if r.status == "fail"]

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "passed": self.passed,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "size": self.size,
            "guarantees": self.guarantees,
            "clock": self.clock,
            "strategy": self.strategy,
            "interrupted": self.interrupted,
            "checked": self.checked,
            "require_all": self.require_all,
            "properties": [r.to_json() for r in self.results],
            "causes": [cause.as_dict() for cause in self.causes],
        }


def select(only: Sequence[str] | None) -> list[Property]:
    """The properties whose ids match any of the glob patterns (all when none are given)."""
    if not only:
        return list(PROPERTIES)
    chosen = [p for p in PROPERTIES if any(fnmatch.fnmatchcase(p.id, pat) for pat in only)]
    if not chosen:
        raise TargetError(f"no property matches {list(only)} (see `cachespec list`)")
    return chosen


def derive_seed(seed: int, prop_id: str) -> int:
    digest = hashlib.sha256(f"{seed}:{prop_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def hypothesis_settings(budget: Budget, examples: int) -> Settings:
    return Settings(
        max_examples=examples,
        stateful_step_count=budget.steps,
        deadline=None,
        database=None,
        derandomize=False,
        report_multiple_bugs=False,
        print_blob=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.normal,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )


def run_property(
    prop: Property, target: Target, guarantees: Guarantees, budget: Budget, seed: int
) -> Result:
    """Run one property; never raises for a backend's failure, only reports it."""
    result = Result(prop.id, prop.promise, "pass")
    skipped = why_skipped(prop, target, guarantees)
    if skipped is not None:
        result.status = "skip"
        result.skip, result.reason = skipped
        return result
    started = time.perf_counter()
    reported: list[str] = []  # what Hypothesis would print; kept for the report instead
    try:
        real_time = in_real_time(prop, target)
        check: Check | realtime.RealTimeCheck
        if real_time:  # by its own build (rtstaleness.py), or realtime.py's machines'
            rt = prop.real_time
            check = (
                prop.build(target, guarantees)
                if rt
                else realtime.build(prop.id, FOCUSES[prop.id], target, guarantees)
            )
            result.clock = realtime.CLOCK
        else:
            check = prop.build(target, guarantees)  # it stands still where it must
            if prop.needs_clock and prop.still_clock and stillclock.stands_still(target):
                result.clock = stillclock.CLOCK
        with with_reporter(lambda text: reported.append(str(text))):
            examples = (
                realtime.examples(budget.scale, guarantees) if real_time else budget.examples(prop)
            )
            settings = hypothesis_settings(budget, examples)
            check.run(settings, derive_seed(seed, prop.id), examples)
    except (KeyboardInterrupt, SystemExit, TargetError):
        raise
    except CannotCheck as exc:  # the design, not a defect: say so, and move on
        kind = CANNOT_CHECK_HERE if exc.could_elsewhere else NOT_APPLICABLE
        result.status, result.skip, result.reason = "skip", kind, str(exc)
    except BaseException as exc:  # a failing backend can raise anything
        result.status = "fail"
        result.reason = describe_failure(exc)
        notes = [*getattr(exc, "__notes__", []), *_steps(reported)]
        result.counterexample = program(notes, target.name, prop.id, target.strategy_spec)
    result.seconds = time.perf_counter() - started
    expected = guarantees.expected_failures.get(prop.id)
    if expected is not None and result.status != "skip":
        if result.status == "fail":
            result.status, result.skip = "skip", EXPECTED_FAILURE
            result.reason = f"expected failure ({expected}): {result.reason}"
        else:
            result.status = "fail"
            result.reason = (
                f"declared as an expected failure ({expected}) but it held; "
                "remove it from expected_failures"
            )
    return result


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, Flaky):
        inner = list(getattr(exc, "exceptions", ()))
        cause = exc.__cause__ or exc.__context__
        if not inner and cause is not None:
            inner = [cause]
        text = (
            "the backend answered the same program differently when it was replayed: it "
            "depends on something the harness does not control (a real clock, a background "
            "thread, another client)"
        )
        return text + (f"; the first run saw: {describe_failure(inner[0])}" if inner else "")
    if isinstance(exc, (Violation, CheckFailed, AssertionError)):
        return str(exc) or type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    # The file's name, not its path: a report is shared, and a path names the machine's
    # folders (a user's home, a venv) while the function and line say where it broke.
    last = frames[-1] if frames else None
    where = f" (at {os.path.basename(last.filename)}:{last.lineno}, in {last.name})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


# How Hypothesis introduces the failing example; it has used each of these.
_EXAMPLE_HEADERS = ("Falsifying example", "Failing test case", "Steps leading up to this error")


def _steps(reported: list[str]) -> list[str]:
    """Reporter output split into lines (a flaky run reports its steps there, indented)."""
    return [line.strip() for text in reported for line in text.splitlines() if line.strip()]


def program(notes: list[str], target_name: str, prop_id: str, strategy: str | None = None) -> str:
    """The failing example Hypothesis reported, as a program that replays it."""
    lines: list[str] = []
    taking = False
    for note in notes:
        if note.startswith(_EXAMPLE_HEADERS):
            if lines:  # the first example reported is the one that failed
                break
            taking = True
            rest = note.partition(":")[2].strip()
            if rest and rest != "<state machine>":
                lines.append(rest)
            continue
        if taking:
            lines.append(note)
    if lines and lines[0].startswith("state = "):
        end = next((i for i, line in enumerate(lines) if line == "state.teardown()"), None)
        lines = lines[: None if end is None else end + 1]
        chosen = "" if strategy is None else f", strategy={strategy!r}"
        lines[0] = f"state = replay({target_name!r}, {prop_id!r}{chosen})"
        lines.insert(0, "from cachespec.conformance.replay import Blob, replay")
    return "\n".join(lines)


class Listener:
    """What a run tells as it goes. Override what you need; every method does nothing here.

    ``ticked`` may come from any thread, at most about once a second per property."""

    def began(self, report: Report, expected_seconds: float, jobs: int) -> None:
        """The target is up and its guarantees read; no property has run yet."""

    def ticked(self, prop_id: str, done: int, examples: int, seconds: float) -> None:
        """``prop_id`` is still running: ``done`` of its ``examples`` examples so far."""

    def finished(self, result: Result, index: int, total: int) -> None:
        """``result`` is the ``index``-th of ``total`` properties to end."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run: ``report`` holds what ended, and every property
    that had not is marked ``interrupted``."""

    def __init__(self, report: Report, signal_name: str) -> None:
        super().__init__(signal_name)
        self.report = report
        self.signal_name = signal_name


TICK_SECONDS = 1.0


def expected_seconds(
    chosen: Sequence[Property], budget: Budget, target: Target, guarantees: Guarantees, jobs: int
) -> float:
    """A rough forecast of a run's wall time, from each property's measured cost: the work
    of the properties that will run, shared by ``jobs`` processes, and never less than the
    costliest property alone."""
    costs = [
        realtime.forecast(guarantees, budget.scale)
        if in_real_time(prop, target)
        else prop.cost * budget.examples(prop) * target.relative_cost
        for prop in chosen
        if why_skipped(prop, target, guarantees) is None
    ]
    return max(sum(costs) / jobs, max(costs, default=0.0))


def run_suite(
    backend: str | Target | None = None,
    *,
    size: str = "default",
    seed: int | None = None,
    only: Sequence[str] | None = None,
    strategy: str | Strategies | None = None,
    listener: Listener | None = None,
    jobs: int = 1,
    require_all: bool = False,
) -> Report:
    """Check ``backend`` (a URL, ``module:callable``, or a Target) against every property.

    ``strategy`` chooses the strategy implementations the staleness properties run (a name
    such as ``naive-cache-aside``, ``module:callable``, or a :class:`Strategies`).
    ``jobs`` > 1 spreads the properties over that many worker processes, each with a
    target of its own (a throwaway server each); it needs ``backend`` and ``strategy`` as
    text, which another process can resolve again, and runs in this process otherwise.
    ``require_all``: a property this target cannot check (it needs the harness's clock or
    processes) fails instead of being skipped; what the backend declares stays a skip.
    Raises :class:`TargetError` when the backend or the strategy cannot be resolved, and
    :class:`Interrupted` (with the partial report) on Ctrl-C or SIGTERM.
    """
    if size not in SIZES:
        raise TargetError(f"unknown size {size!r} (choose from {', '.join(SIZES)})")
    budget = SIZES[size]
    listener = listener or Listener()
    target = backend if isinstance(backend, Target) else resolve_target(backend)
    if strategy is not None:
        target.strategies = resolve_strategies(strategy)
        target.strategy_spec = strategy if isinstance(strategy, str) else None
    chosen = select(only)
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    spec = _as_text(backend, strategy)
    jobs = 1 if spec is None else max(1, min(jobs, len(chosen)))
    started = time.perf_counter()
    try:
        try:
            guarantees = target.guarantees()
        except TargetError:
            raise
        except Exception as exc:
            raise TargetError(f"{target.name}: {type(exc).__name__}: {exc}") from exc
        report = Report(
            target.name,
            seed,
            size,
            guarantees.describe(),
            clock=target.clock_note,
            strategy=(target.strategies or Strategies()).describe(),
            only=list(only) if only else None,
            strategy_spec=target.strategy_spec,
        )
        forecast = expected_seconds(chosen, budget, target, guarantees, jobs)
        listener.began(report, forecast, jobs)
        if jobs == 1:
            results = _run_here(
                chosen,
                target=target,
                guarantees=guarantees,
                budget=budget,
                seed=seed,
                listener=listener,
            )
        else:
            # Each worker resolves a target of its own: this one's server would sit idle.
            target.close()
            # Imported here: workers imports this module, and a run in one process
            # needs none of it.
            from .workers import run_in_workers  # noqa: PLC0415

            assert spec is not None  # jobs > 1 only then
            results = run_in_workers(
                spec, chosen, size=size, seed=seed, jobs=jobs, listener=listener
            )
        if results.interrupted is None:
            # Replayed here, on this target (a server it closed for the workers starts again).
            report.causes = find_causes(_in_order(chosen, results), target, guarantees)
    finally:
        target.close()
    report.results = _in_order(chosen, results)
    report.require_all = require_all
    if require_all:
        for result in report.results:
            if result.status == "skip" and result.skip == CANNOT_CHECK_HERE:
                result.status = "fail"
                result.reason = f"--require-all, and this target cannot check it: {result.reason}"
    report.seconds = time.perf_counter() - started
    if results.interrupted is not None:
        report.interrupted = results.interrupted
        raise Interrupted(report, results.interrupted)
    return report


def _as_text(
    backend: str | Target | None, strategy: str | Strategies | None
) -> tuple[str | None, str | None] | None:
    """The run as text that another process resolves again; None if an object was given
    (a Target or a Strategies stays in the process that made it)."""
    if isinstance(backend, Target) or isinstance(strategy, Strategies):
        return None
    return backend, strategy


class Outcomes(dict[str, Result]):
    """The results so far, by property id; ``interrupted`` names the signal that cut them
    short, if one did."""

    interrupted: str | None = None


def _run_here(
    chosen: Sequence[Property],
    *,
    target: Target,
    guarantees: Guarantees,
    budget: Budget,
    seed: int,
    listener: Listener,
) -> Outcomes:
    """Each property in turn, in this process."""
    outcomes = Outcomes()
    try:
        for prop in chosen:
            STOP.check()
            examples = (
                realtime.examples(budget.scale, guarantees)
                if in_real_time(prop, target)
                else budget.examples(prop)
            )
            with ticking(target, prop, examples, listener):
                result = run_property(prop, target, guarantees, budget, seed)
            outcomes[prop.id] = result
            listener.finished(result, len(outcomes), len(chosen))
    except KeyboardInterrupt as stop:  # wherever it lands, what ended is kept
        outcomes.interrupted = signal_name(stop)
    return outcomes


class StopRequest:
    """A stop that a signal asked for, raised where the run unwinds cleanly.

    A KeyboardInterrupt raised by a signal handler lands wherever the main thread is. Inside
    Hypothesis's engine it could break an internal assertion, and the property then read
    as failing; in a garbage-collection callback it is ignored, and the run went on to the
    end. So a handler only asks, and the run raises at the next session it opens (one per
    example or trial) or between two properties. A second signal raises at once."""

    def __init__(self) -> None:
        self._asked: type[KeyboardInterrupt] | None = None  # the main thread's alone

    def ask(self, kind: type[KeyboardInterrupt]) -> None:
        if self._asked is not None:
            raise kind
        self._asked = kind

    def check(self) -> None:
        if self._asked is not None:
            raise self._asked

    def reset(self) -> None:
        self._asked = None


# The process's stop request: the CLI's and the workers' signal handlers ask it.
STOP = StopRequest()


def signal_name(stop: KeyboardInterrupt) -> str:
    """SIGTERM arrives as a KeyboardInterrupt whose class says so (the CLI's handler)."""
    return "SIGTERM" if getattr(stop, "signal_name", None) == "SIGTERM" else "SIGINT"


@contextlib.contextmanager
def ticking(target: Target, prop: Property, examples: int, listener: Listener) -> Iterator[None]:
    """Tell ``listener`` how far ``prop`` got, about once a second, as sessions open."""
    first = target.sessions_opened
    started = last = time.perf_counter()

    def tick() -> None:
        nonlocal last
        STOP.check()  # a session opens at the start of an example: a clean place to stop
        now = time.perf_counter()
        if now - last >= TICK_SECONDS:
            last = now
            listener.ticked(prop.id, target.sessions_opened - first, examples, now - started)

    target.on_session = tick
    try:
        yield
    finally:
        target.on_session = None


def _in_order(chosen: Sequence[Property], outcomes: Outcomes) -> list[Result]:
    """The results in the order of ``chosen``; a property that never ended is interrupted."""
    return [
        outcomes.get(prop.id) or Result(prop.id, prop.promise, "interrupted", "the run was stopped")
        for prop in chosen
        if prop.id in outcomes or outcomes.interrupted is not None
    ]


def property_ids() -> list[str]:
    return sorted(BY_ID)
