"""A run's failures grouped by counterexample: one cause, the properties it breaks."""

from __future__ import annotations

from mutants import PlainBackend, SetKeepsFirst

from cachespec.conformance import Target, run_suite
from cachespec.conformance.report import table

BROKEN_BY_ONE_CAUSE = ["ops.get_set", "ops.delete", "ops.mixed"]


def test_one_cause_is_shown_once_with_every_property_it_breaks() -> None:
    report = run_suite(
        Target("mutants:SetKeepsFirst", SetKeepsFirst),
        seed=1,
        size="quick",
        only=BROKEN_BY_ONE_CAUSE,
    )
    assert sorted(report.failed()) == sorted(BROKEN_BY_ONE_CAUSE)
    assert len(report.causes) < len(report.failed())  # fewer programs than failures
    covered = {prop for cause in report.causes for prop in cause.breaks}
    assert covered == set(BROKEN_BY_ONE_CAUSE)
    shown = table(report)
    assert "counterexample between them" in shown or "counterexamples between them" in shown
    assert report.to_json()["causes"] == [cause.as_dict() for cause in report.causes]


def test_a_run_without_failures_has_no_causes() -> None:
    report = run_suite(
        Target("plain", PlainBackend), seed=1, size="quick", only=BROKEN_BY_ONE_CAUSE
    )
    assert report.passed
    assert report.causes == []
