"""Early refresh's bounds (spec/refresh.py) and the machines that check them
(conformance/refresh.py): the arithmetic, the refusals, and programs that replay."""

from __future__ import annotations

import math

import pytest
from strategy_mutants import STRATEGY_MUTANTS

from cachespec.backends import ConfigurationError
from cachespec.conformance import run_suite
from cachespec.conformance.replay import replay
from cachespec.spec import Violation
from cachespec.spec.refresh import RefreshBound, RefreshConfigError


def test_a_soft_ttl_bound_counts_computes_per_ttl() -> None:
    bound = RefreshBound(ttl=60.0, compute=2.0, read_every=10.0, lease_ttl=5.0, refresh_before=20.0)
    assert bound.lead == 20.0
    # An entry written at the end of a compute (start + 2) lives 60 s and is refreshed no
    # earlier than 20 s before it expires: the next compute starts 42 s after this one.
    assert bound.min_spacing == 42.0
    assert bound.max_computes_per_ttl == 2


def test_xfetch_with_a_fixed_draw_is_a_soft_ttl_of_its_lead() -> None:
    draw = math.exp(-3.0)
    bound = RefreshBound(ttl=60.0, compute=4.0, read_every=5.0, lease_ttl=10.0, beta=2.0, draw=draw)
    assert bound.lead == pytest.approx(24.0)  # -delta * beta * ln(draw)
    assert bound.min_spacing == pytest.approx(40.0)
    assert "XFetch, beta=2" in bound.describe()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"refresh_before": 20.0, "beta": 1.0, "draw": 0.5}, "one of the two"),
        ({}, "one of the two"),
        ({"beta": 1.0}, "one of the two"),
        ({"refresh_before": 5.0}, "read_every \\+ compute < lead"),  # 10 + 2 >= 5
        ({"refresh_before": 60.0}, "lead < ttl"),
        ({"refresh_before": 20.0, "lease_ttl": 2.0}, "must outlive the compute"),
        ({"refresh_before": 20.0, "ttl": math.nan}, "ttl must be a finite number"),
        ({"beta": 1.0, "draw": 0.0}, "draw must be in"),
        ({"beta": 1.0, "draw": 0.5, "compute": 0.0}, "takes time"),
    ],
)
def test_a_configuration_the_promise_does_not_cover_is_refused(
    fields: dict[str, float], message: str
) -> None:
    given: dict[str, float] = {"ttl": 60.0, "compute": 2.0, "read_every": 10.0, "lease_ttl": 5.0}
    given.update(fields)
    with pytest.raises(RefreshConfigError, match=message):
        RefreshBound(**given)


def test_a_replayed_configuration_that_breaks_the_premise_is_a_configuration_error() -> None:
    state = replay("memory://", "efficacy.early_refresh")
    try:
        with pytest.raises(ConfigurationError, match="lead < ttl"):
            state.configure(
                ttl=10.0,
                compute=0.0,
                read_every=2.0,
                lease_ttl=1.0,
                refresh_before=30.0,
                beta=None,
                draw=None,
                callers=1,
                processes=1,
            )
    finally:
        state.teardown()


@pytest.mark.parametrize(
    ("prop", "step"),
    [("efficacy.early_refresh", "read_steadily"), ("efficacy.revalidate", "start_refresh")],
)
def test_a_program_without_its_configuration_says_so(prop: str, step: str) -> None:
    state = replay("memory://", prop)
    try:
        rule = getattr(state, step)
        with pytest.raises(ConfigurationError, match=r"starts with state\.configure"):
            rule(reads=1) if step == "read_steadily" else rule(process=0, where=0.5)
    finally:
        state.teardown()


@pytest.mark.parametrize(
    "name",
    ["never_refreshes_early", "refreshes_every_hit", "waits_for_refresher", "each_refreshes"],
)
def test_the_printed_program_shows_the_configuration_and_replays(name: str) -> None:
    strategies, prop, why = STRATEGY_MUTANTS[name]
    spec = f"strategy_mutants:{strategies.__name__}"
    result = run_suite("memory://", seed=5, only=[prop], strategy=spec).result(prop)
    assert result.status == "fail", result.reason
    program = result.counterexample
    # The configuration drawn for the example is the program's first step, in numbers.
    assert "state.configure(ttl=" in program
    for field in ("refresh_before=", "beta=", "draw=", "lease_ttl=", "callers="):
        assert field in program
    assert f"strategy={spec!r})" in program
    with pytest.raises(Violation, match=why):
        exec(compile(program, "<counterexample>", "exec"), {})


def test_the_correct_cache_passes_both_on_several_seeds() -> None:
    for seed in (1, 2):
        report = run_suite(
            "memory://",
            seed=seed,
            only=["efficacy.early_refresh", "efficacy.revalidate"],
        )
        assert [r.status for r in report.results] == ["pass", "pass"], report.results
