"""A strategy's declaration (cachespec.spec.promises.Promises): what it needs of the backend
gates its properties, and each promise it makes is checked as declared (docs/design.md,
"Strategy promises")."""

from __future__ import annotations

import pytest
from declared_strategies import (
    FailsClosed,
    PlainCacheAside,
    StaleWhileRevalidate,
    UndeclaredStaleWhileRevalidate,
    WithoutCompare,
    without_compare,
)

from cachespec.backends import Unsupported
from cachespec.conformance import PROPERTIES, Target, run_suite
from cachespec.conformance.regenerations import Read, Regenerations, Verdict
from cachespec.conformance.runner import NOT_DECLARED
from cachespec.conformance.staleness import Strategies, resolve_strategies
from cachespec.conformance.target import TargetError
from cachespec.spec.promises import Promises

# Every property that runs a strategy: the ones a strategy's declaration gates, and the
# forged payload (its serializer).
STRATEGY_PROPERTIES = sorted(
    p.id for p in PROPERTIES if p.strategy_applies is not None or p.id == "faults.forged_payload"
)
# What a plain cache-aside that needs no compare_and_set runs over a backend without it: its
# own read, with our invalidation, event handling and serializer (none needs the compare).
CHECKED_WITHOUT_COMPARE = {
    "efficacy.cache_aside",
    "efficacy.events",
    "faults.cache_aside",
    "faults.forged_payload",
    "faults.source",
    "single_flight.no_hang",
    "staleness.cache_aside",
    "staleness.events",
    "staleness.invalidation",
    "staleness.ttl",
}


def _checked(strategies: Strategies) -> set[str]:
    target = Target("declared_strategies:without_compare", without_compare)
    report = run_suite(target, seed=1, size="quick", only=STRATEGY_PROPERTIES, strategy=strategies)
    return {r.id for r in report.results if r.status in ("pass", "fail")}


def test_a_strategy_that_needs_no_compare_is_checked_over_a_backend_without_it() -> None:
    # Before: every strategy property was gated on the backend's compare_and_set, and only
    # the forged payload (which needs nothing of it) ran. Ours still needs it.
    assert _checked(Strategies()) == {"faults.forged_payload"}
    # After: the gate is what the strategy under test needs.
    assert _checked(PlainCacheAside()) == CHECKED_WITHOUT_COMPARE


def test_what_is_not_run_says_which_part_needs_the_compare_or_which_promise_is_not_made() -> None:
    target = Target("declared_strategies:without_compare", without_compare)
    report = run_suite(
        target,
        seed=1,
        size="quick",
        only=["staleness.write_through", "single_flight.one_compute", "single_flight.takeover"],
        strategy=PlainCacheAside(),
    )
    reasons = {r.id: (r.skip, r.reason) for r in report.results}
    assert reasons["staleness.write_through"] == (
        NOT_DECLARED,
        "runs our write-through (copies moved forward by compare_and_set, into an absent key "
        "under a lease), which needs compare_and_set; the backend does not declare "
        "compare_and_set=True",
    )
    assert reasons["single_flight.one_compute"][0] == NOT_DECLARED
    assert "does not promise single-flight" in reasons["single_flight.one_compute"][1]
    assert "does not promise fill leases" in reasons["single_flight.takeover"][1]
    assert report.strategy == (
        "plain-cache-aside (promises: no compare_and_set needed; no add needed; "
        "no single-flight; no fill leases; no early refresh)"
    )


def test_a_third_party_read_that_declares_nothing_is_held_to_needing_the_compare() -> None:
    class Undeclared(PlainCacheAside):
        promises = Promises()

    target = Target("declared_strategies:without_compare", without_compare)
    report = run_suite(target, seed=1, size="quick", only=["staleness.ttl"], strategy=Undeclared())
    result = report.result("staleness.ttl")
    assert (result.status, result.skip) == ("skip", NOT_DECLARED)
    assert "declares that it needs compare_and_set" in result.reason


def test_a_reader_function_may_carry_its_promises() -> None:
    found = resolve_strategies("declared_strategies:plain_read")
    assert found.promises == Promises(needs_compare_and_set=False, single_flight=False)


@pytest.mark.parametrize(
    "bad", ["declared_strategies:badly_declared_read", "declared_strategies:BadlyDeclared"]
)
def test_a_declaration_that_is_not_promises_is_a_usage_error(bad: str) -> None:
    with pytest.raises(
        TargetError, match=r"its promises must be a cachespec\.spec\.promises\.Promises"
    ):
        resolve_strategies(bad)


def test_a_promise_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="single_flight must be a bool"):
        Promises(single_flight="no")  # type: ignore[arg-type]


def test_the_backend_without_compare_refuses_it() -> None:
    # What makes the count above mean something: the compare is really not there.
    backend = WithoutCompare(lambda: 0.0)
    with pytest.raises(Unsupported):
        backend.compare_and_set("k", b"a", b"b")


# Each declared design passes against its declaration and fails without it: the declaration
# is what the verdict turns on, not a property turned off. (The mutants that break their
# declaration are in tests/strategy_mutants.py: lost_revalidation, swallows_while_failing_closed.)
SEED = 20261127


def _verdict(strategies: Strategies, prop: str) -> tuple[str, str]:
    result = run_suite("memory://", seed=SEED, only=[prop], strategy=strategies).result(prop)
    return result.status, result.reason


def test_stale_while_revalidate_is_held_to_the_ttl_plus_one_regeneration() -> None:
    assert _verdict(StaleWhileRevalidate(), "staleness.ttl") == ("pass", "")
    status, reason = _verdict(UndeclaredStaleWhileRevalidate(), "staleness.ttl")
    assert status == "fail"
    assert "bounds how long a superseded value may be served" in reason
    # It still caches, and an invalidation still makes it fresh.
    assert _verdict(StaleWhileRevalidate(), "efficacy.cache_aside") == ("pass", "")
    assert _verdict(StaleWhileRevalidate(), "staleness.invalidation") == ("pass", "")


def test_a_strategy_that_fails_closed_is_checked_to_raise() -> None:
    assert _verdict(FailsClosed(), "faults.cache_aside") == ("pass", "")
    assert _verdict(FailsClosed(), "faults.source") == ("pass", "")

    class Undeclared(FailsClosed):
        promises = Promises()

    status, reason = _verdict(Undeclared(), "faults.cache_aside")
    assert status == "fail"
    assert "a failing cache must fall through to the source" in reason


def test_a_read_is_judged_once_the_reads_beside_it_have_ended() -> None:
    regenerations = Regenerations()
    stale = Read("price", first=3, last=5, called_source=False)
    claimed = Read("price", first=2, last=None, called_source=False)  # not at the source yet
    assert regenerations.verdict(stale, [claimed]) is Verdict.LATER
    regenerations.ended(Read("price", first=2, last=7, called_source=True))
    assert regenerations.verdict(stale, []) is Verdict.REGENERATING
    other_key = Read("stock", first=1, last=9, called_source=True)
    before = Read("price", first=0, last=1, called_source=True)
    fresh = Regenerations()
    fresh.ended(other_key)
    fresh.ended(before)
    assert fresh.verdict(stale, []) is Verdict.NONE


def test_early_refresh_not_promised_is_not_declared_even_where_the_backend_could() -> None:
    report = run_suite(
        "memory://",
        seed=SEED,
        size="quick",
        only=["efficacy.early_refresh"],
        strategy=PlainCacheAside(),
    )
    result = report.result("efficacy.early_refresh")
    assert (result.status, result.skip) == ("skip", NOT_DECLARED)
    assert "does not promise early refresh (Promises(early_refresh=False))" in result.reason
