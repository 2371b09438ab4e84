"""Run the properties against a target and collect a report.

Runs are reproducible: ``seed`` fixes every property's Hypothesis seed (each property
derives its own from it), the example database is off, and the harness owns the clock.
"""

from __future__ import annotations

import fnmatch
import hashlib
import random
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hypothesis import HealthCheck, Phase, Verbosity
from hypothesis import settings as Settings
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter

from cachespec.spec import Guarantees, Violation

from .checks import CheckFailed
from .properties import BY_ID, PROPERTIES, Property
from .staleness import Strategies, resolve_strategies
from .target import Target, TargetError, resolve_target

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Budget:
    """How hard a run tries: Hypothesis examples, steps per example, thread trials."""

    name: str
    examples: int
    steps: int
    trials: int


SIZES: dict[str, Budget] = {
    "quick": Budget("quick", examples=30, steps=30, trials=50),
    "default": Budget("default", examples=150, steps=50, trials=200),
    "thorough": Budget("thorough", examples=1000, steps=100, trials=2000),
}


@dataclass
class Result:
    id: str
    promise: str
    status: Status
    reason: str = ""
    counterexample: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "reason": self.reason,
            "counterexample": self.counterexample,
            "promise": self.promise,
            "seconds": round(self.seconds, 3),
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

    @property
    def passed(self) -> bool:
        return all(r.status != "fail" for r in self.results)

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
            "properties": [r.to_json() for r in self.results],
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


def hypothesis_settings(budget: Budget, examples_factor: int = 1) -> Settings:
    return Settings(
        max_examples=budget.examples * examples_factor,
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
    reason = prop.applies(guarantees)
    if reason is None and prop.needs_clock and not target.controls_time:
        reason = (
            f"needs the harness's clock: {target.name} runs in real time (check a throwaway "
            "server on a controlled clock with `cachespec check redis` or `memcached`)"
        )
    if reason is None and prop.needs_processes and not target.shared_across_processes:
        reason = (
            f"runs real processes, which need a backend they can all reach: {target.name} "
            "lives in this process (check a server: `cachespec check redis`, `memcached`)"
        )
    if reason is None and prop.id in guarantees.opt_out:
        reason = f"opted out: {guarantees.opt_out[prop.id]}"
    if reason is not None:
        result.status, result.reason = "skip", reason
        return result
    started = time.perf_counter()
    reported: list[str] = []  # what Hypothesis would print; kept for the report instead
    try:
        check = prop.build(target, guarantees)
        with with_reporter(lambda text: reported.append(str(text))):
            settings = hypothesis_settings(budget, prop.examples_factor)
            check.run(settings, derive_seed(seed, prop.id), budget.trials)
    except (KeyboardInterrupt, SystemExit, TargetError):
        raise
    except BaseException as exc:  # a failing backend can raise anything
        result.status = "fail"
        result.reason = describe_failure(exc)
        notes = [*getattr(exc, "__notes__", []), *_steps(reported)]
        result.counterexample = program(notes, target.name, prop.id, target.strategy_spec)
    result.seconds = time.perf_counter() - started
    expected = guarantees.expected_failures.get(prop.id)
    if expected is not None:
        if result.status == "fail":
            result.status = "skip"
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
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
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


ProgressFn = Callable[[Result, int, int], None]


def run_suite(
    backend: str | Target | None = None,
    *,
    size: str = "default",
    seed: int | None = None,
    only: Sequence[str] | None = None,
    strategy: str | Strategies | None = None,
    progress: ProgressFn | None = None,
) -> Report:
    """Check ``backend`` (a URL, ``module:callable``, or a Target) against every property.

    ``strategy`` chooses the strategy implementations the staleness properties run (a name
    such as ``naive-cache-aside``, ``module:callable``, or a :class:`Strategies`).
    Raises :class:`TargetError` when the backend or the strategy cannot be resolved.
    """
    if size not in SIZES:
        raise TargetError(f"unknown size {size!r} (choose from {', '.join(SIZES)})")
    budget = SIZES[size]
    target = backend if isinstance(backend, Target) else resolve_target(backend)
    if strategy is not None:
        target.strategies = resolve_strategies(strategy)
        target.strategy_spec = strategy if isinstance(strategy, str) else None
    chosen = select(only)
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    started = time.perf_counter()
    try:
        try:
            guarantees = target.guarantees()
        except TargetError:
            raise
        except Exception as exc:
            raise TargetError(f"{target.name}: {type(exc).__name__}: {exc}") from exc
        report = Report(target.name, seed, size, guarantees.describe(), clock=target.clock_note)
        report.strategy = (target.strategies or Strategies()).name
        for index, prop in enumerate(chosen, 1):
            result = run_property(prop, target, guarantees, budget, seed)
            report.results.append(result)
            if progress is not None:
                progress(result, index, len(chosen))
    finally:
        target.close()
    report.seconds = time.perf_counter() - started
    return report


def property_ids() -> list[str]:
    return sorted(BY_ID)
