"""Properties spread over worker processes give the report one process would have given."""

from __future__ import annotations

import pytest
from mutants import PlainBackend

from cachespec.conformance import Report, Target, TargetError, run_suite
from cachespec.conformance.runner import Listener, Result


class Recorder(Listener):
    """Remembers how many processes each run began with, and the properties that ended."""

    def __init__(self) -> None:
        self.jobs: list[int] = []
        self.ended: list[str] = []

    def began(self, report: Report, expected_seconds: float, jobs: int) -> None:
        self.jobs.append(jobs)

    def finished(self, result: Result, index: int, total: int) -> None:
        self.ended.append(result.id)


def test_two_processes_write_the_report_one_process_writes() -> None:
    # A mutant, so that failures, reasons and counterexamples are compared too. Quick, and
    # properties whose failures shrink fast: what is compared is the report, not the teeth
    # (ttl.lives, which LateExpiry also fails, spends 45 s shrinking).
    only = ["ttl.expires", "ttl.overwrite", "ttl.invalid", "ops.get_set"]
    alone = run_suite("mutants:LateExpiry", size="quick", seed=3, only=only, jobs=1)
    listener = Recorder()
    spread = run_suite(
        "mutants:LateExpiry", size="quick", seed=3, only=only, jobs=2, listener=listener
    )
    assert listener.jobs == [2]
    assert sorted(listener.ended) == sorted(r.id for r in alone.results)
    assert [r.id for r in spread.results] == [r.id for r in alone.results]
    for one, other in zip(alone.results, spread.results, strict=True):
        assert (one.status, one.reason, one.counterexample) == (
            other.status,
            other.reason,
            other.counterexample,
        ), one.id
    assert [alone.result(p).status for p in only] == ["fail", "fail", "pass", "pass"]


def test_a_backend_a_worker_cannot_resolve_is_a_target_error() -> None:
    with pytest.raises(TargetError, match="cannot load"):
        run_suite("no_such_module_anywhere:make", jobs=2)


def test_an_object_runs_in_this_process() -> None:
    listener = Recorder()
    report = run_suite(
        Target("plain", PlainBackend),
        size="quick",
        seed=1,
        only=["ops.get_set"],
        jobs=4,
        listener=listener,
    )
    assert listener.jobs == [1]  # a Target cannot cross processes
    assert report.passed
