"""Eviction profiles: what each promises through the EvictionProfile protocol, and a new
profile working end to end with no change outside its own class."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from mutants import LazyCull

from cachespec.conformance import Target, run_suite
from cachespec.conformance.properties.base import (
    approximate_lru,
    bounded,
    evicting,
    exact_lru,
    expired_first,
)
from cachespec.spec import (
    MEMCACHED_EVICTION,
    NO_VALUE,
    REDIS_SERVER_EVICTION,
    SERVER_EVICTION,
    ApproximateLRU,
    CacheModel,
    EvictionProfile,
    ExactLRU,
    Guarantees,
    NoEviction,
    Violation,
)

NO = NoEviction()
EXACT = ExactLRU(4)
APPROX = ApproximateLRU(holds_at_least=3, protects_recent=1, holds_at_most=10)


# (evicts, exact_lru_order, may_refuse_writes, live_count_bound(), room())
@pytest.mark.parametrize(
    ("profile", "answers"),
    [
        (NO, (False, False, False, None, 0)),
        (EXACT, (True, True, False, 4, 4)),
        (APPROX, (True, False, False, 10, 3)),
        (SERVER_EVICTION, (True, False, False, None, 0)),
        (MEMCACHED_EVICTION, (True, False, True, None, 0)),
        (REDIS_SERVER_EVICTION, (True, False, True, None, 0)),
    ],
)
def test_each_profile_answers_the_protocol(
    profile: EvictionProfile, answers: tuple[bool, bool, bool, int | None, int]
) -> None:
    assert (
        profile.evicts,
        profile.exact_lru_order,
        profile.may_refuse_writes,
        profile.live_count_bound(),
        profile.room(),
    ) == answers


def test_only_an_exact_lru_evicts_to_insert_and_only_when_full() -> None:
    assert [EXACT.evicts_to_insert(n) for n in (0, 3, 4, 5)] == [False, False, True, True]
    for profile in (NO, APPROX, SERVER_EVICTION):
        assert not profile.evicts_to_insert(100)


def test_an_approximate_profile_may_drop_all_but_its_protected_past_its_floor() -> None:
    assert [APPROX.may_have_evicted(n) for n in (0, 3, 4, 6)] == [0, 0, 3, 5]
    assert SERVER_EVICTION.may_have_evicted(5) == 5
    assert NO.may_have_evicted(5) == EXACT.may_have_evicted(5) == 0


def test_keeps_follows_the_room() -> None:
    assert NO.keeps(10**6)
    assert [EXACT.keeps(n) for n in (4, 5)] == [True, False]
    assert [APPROX.keeps(n) for n in (3, 4)] == [True, False]
    assert not SERVER_EVICTION.keeps(1)


def test_the_applicability_reasons_name_the_profile() -> None:
    g = Guarantees
    assert exact_lru(g(eviction=EXACT)) is None
    assert exact_lru(g(eviction=APPROX)) == (
        f"the backend declares {APPROX.describe()}, not exact LRU"
    )
    assert approximate_lru(g(eviction=APPROX)) is None
    assert approximate_lru(g(eviction=EXACT)) == (
        "the backend declares exact LRU, which lru.evicts_lru checks more strictly"
    )
    assert approximate_lru(g(eviction=NO)) == "the backend declares no eviction"
    assert bounded(g(eviction=EXACT)) is None
    assert bounded(g(eviction=APPROX)) is None
    assert bounded(g(eviction=SERVER_EVICTION)) == (
        f"the backend declares no bound on its number of entries ({SERVER_EVICTION.describe()})"
    )
    assert evicting(g(eviction=SERVER_EVICTION)) is None
    assert evicting(g(eviction=NO)) == "the backend declares no eviction"


def test_the_redis_profile_is_the_server_profile_that_may_refuse() -> None:
    assert REDIS_SERVER_EVICTION.may_refuse_writes
    assert REDIS_SERVER_EVICTION.describe() == MEMCACHED_EVICTION.describe()


def test_guarantees_refuse_what_is_not_a_profile() -> None:
    with pytest.raises(TypeError, match="eviction must be an eviction profile"):
        Guarantees(eviction="lru")  # type: ignore[arg-type]


@dataclass(frozen=True)
class DropsAnythingButTheLast(EvictionProfile):
    """A new profile, defined here only: any entry but the most recently used may go."""

    @property
    def evicts(self) -> bool:
        return True

    @property
    def exact_lru_order(self) -> bool:
        return False

    @property
    def may_refuse_writes(self) -> bool:
        return False

    def describe(self) -> str:
        return "keeps the last entry"

    def live_count_bound(self) -> int | None:
        return None

    def room(self) -> int:
        return 1

    def evicts_to_insert(self, held: int) -> bool:
        return False

    def may_have_evicted(self, held: int) -> int:
        return max(0, held - 1)


def test_a_new_profile_drives_the_model_and_the_suite_from_its_own_class() -> None:
    g = Guarantees(eviction=DropsAnythingButTheLast())
    m = CacheModel(g, origin=0.0)
    m.set(0.0, "a", b"1", None)
    m.set(0.0, "b", b"2", None)
    m.get(0.0, "a", NO_VALUE)  # may be gone: not the most recently used
    with pytest.raises(Violation, match="allowed only b'2'"):
        m.get(0.0, "b", NO_VALUE)  # the most recent is kept
    with pytest.raises(Violation):
        m.get(0.0, "b", b"wrong")
    assert approximate_lru(g) is None
    assert exact_lru(g) == "the backend declares keeps the last entry, not exact LRU"
    assert "keeps the last entry" in g.describe()


# ------------------------------------------- expired entries make room, whatever the order
# (docs/design.md, "Expired entries make room")
ISSUE_CAPACITY = 8


def _issue_program(g: Guarantees) -> CacheModel:
    """Issue #15's program up to the last write: capacity 8, `a` with no TTL, then 7 keys
    with a TTL of 1 s, one after another; at 10 s they have all expired."""
    m = CacheModel(g, origin=0.0)
    m.set(0.0, "a", b"live", None)
    for n in range(ISSUE_CAPACITY - 1):
        m.set(0.1 * (n + 1), f"short-{n}", b"x", 1.0)
    m.set(10.0, "next", b"new", None)
    return m


@pytest.mark.parametrize(
    "profile",
    [
        ExactLRU(ISSUE_CAPACITY),
        ApproximateLRU(holds_at_least=ISSUE_CAPACITY, protects_recent=1),
        ApproximateLRU(
            holds_at_least=ISSUE_CAPACITY, protects_recent=0, holds_at_most=ISSUE_CAPACITY
        ),
    ],
    ids=["exact", "approximate", "approximate_bounded"],
)
def test_evicting_the_live_entry_while_expired_ones_hold_slots_is_a_violation(
    profile: EvictionProfile,
) -> None:
    m = _issue_program(Guarantees(eviction=profile))
    with pytest.raises(Violation, match=r"returned a miss .* allowed only b'live'"):
        m.get(10.0, "a", NO_VALUE)


def test_inside_the_expiry_window_the_short_lived_entries_may_still_count() -> None:
    # With a 5 s resolution the short-lived entries may still be there at 5 s: an exact LRU
    # that counts them is full, so the model cannot say which entry the write evicted.
    m = CacheModel(Guarantees(eviction=ExactLRU(ISSUE_CAPACITY), ttl_resolution=5.0))
    m.set(0.0, "a", b"live", None)
    for n in range(ISSUE_CAPACITY - 1):
        m.set(0.0, f"short-{n}", b"x", 1.0)
    m.set(2.0, "next", b"new", None)
    m.get(2.0, "a", NO_VALUE)  # allowed: not surely expired, so not surely a defect


@pytest.mark.parametrize(
    ("profile", "applies"),
    [
        (NO, False),
        (EXACT, True),
        (APPROX, True),
        (ApproximateLRU(holds_at_least=0, protects_recent=0, holds_at_most=5), False),
        (SERVER_EVICTION, False),
        (MEMCACHED_EVICTION, False),
        (DropsAnythingButTheLast(), True),
    ],
)
def test_the_rule_applies_to_every_profile_that_keeps_a_number_of_entries(
    profile: EvictionProfile, applies: bool
) -> None:
    assert profile.expired_make_room() is applies
    reason = expired_first(Guarantees(eviction=profile))
    assert (reason is None) is applies
    if reason is not None:
        assert profile.describe() in reason


@pytest.mark.parametrize("seed", [20261127, 4242])
def test_the_issues_cache_fails_lru_expired_first_for_its_own_reason(seed: int) -> None:
    # Issue #15's cache: a bounded approximate LRU, not an exact one, that culls in order.
    report = run_suite(Target("mutants:lazy_cull", LazyCull), seed=seed, only=["lru.expired_first"])
    result = report.result("lru.expired_first")
    assert result.status == "fail", result
    assert "fill_expired" in result.counterexample
    assert re.search(r"gave a miss .* allowed only", result.reason), result.reason
