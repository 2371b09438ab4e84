"""Eviction orders other than LRU: FIFO, expiry-ordered and random, each an EvictionProfile
(cachespec.spec.eviction; docs/design.md, "Eviction orders"). The correct caches are in
tests/order_backends.py; their mutants are rejected by tests/test_mutants.py."""

from __future__ import annotations

import pytest
from order_backends import ExpiryOrderedBackend, FIFOBackend, RandomBackend

from cachespec.backends import NO_VALUE, Backend
from cachespec.conformance import Target, run_suite
from cachespec.conformance.properties.base import approximate_lru, declared_order, exact_lru
from cachespec.spec import (
    FIFO,
    CacheModel,
    EvictionProfile,
    ExactLRU,
    ExpiryOrdered,
    Guarantees,
    NoEviction,
    RandomEviction,
    Violation,
)


def _full(profile: EvictionProfile, ttls: tuple[float | None, ...]) -> CacheModel:
    """A model with keys k0, k1, ... written in order, each with its TTL, then k0 read."""
    m = CacheModel(Guarantees(eviction=profile), origin=0.0)
    for n, ttl in enumerate(ttls):
        m.set(0.0, f"k{n}", b"v%d" % n, ttl)
    m.get(0.0, "k0", b"v0")
    return m


def test_fifo_evicts_the_first_written_even_after_a_hit() -> None:
    m = _full(FIFO(3), (None, None, None))
    m.set(0.0, "new", b"n", None)
    with pytest.raises(Violation, match=r"'k0' was evicted .* the next to go \(FIFO, capacity 3\)"):
        m.get(0.0, "k0", b"v0")
    m.get(0.0, "k1", b"v1")


def test_an_exact_lru_spares_what_was_read() -> None:
    m = _full(ExactLRU(3), (None, None, None))
    m.set(0.0, "new", b"n", None)
    with pytest.raises(Violation, match=r"'k1' was evicted .* the least recently used"):
        m.get(0.0, "k1", b"v1")


def test_expiry_order_evicts_the_soonest_to_expire_and_no_ttl_last() -> None:
    m = _full(ExpiryOrdered(3), (None, 60, 30))
    m.set(0.0, "new", b"n", 10)  # the newcomer expires soonest, but it is what room is made for
    with pytest.raises(Violation, match=r"'k2' was evicted .* \(expiry-ordered, capacity 3\)"):
        m.get(0.0, "k2", b"v2")
    m.set(0.0, "newer", b"n", None)
    with pytest.raises(Violation, match="'new' was evicted"):
        m.get(0.0, "new", b"n")
    m.get(0.0, "k0", b"v0")  # without a TTL: after every entry with one


def test_random_eviction_lets_any_entry_but_the_last_written_go() -> None:
    m = _full(RandomEviction(3), (None, None, None))
    m.get(0.0, "k2", b"v2")  # nothing may go while the cache is not over its capacity
    with pytest.raises(Violation, match="allowed only b'v1'"):
        m.get(0.0, "k1", NO_VALUE)
    m.set(0.0, "new", b"n", None)
    m.get(0.0, "k0", NO_VALUE)  # k0 was read last, yet it may go: a hit is no use
    with pytest.raises(Violation, match="allowed only b'n'"):
        m.get(0.0, "new", NO_VALUE)


@pytest.mark.parametrize("profile", [FIFO, ExpiryOrdered, RandomEviction])
@pytest.mark.parametrize(
    ("capacity", "error"), [(0, ValueError), (True, TypeError), (2.0, TypeError)]
)
def test_a_bad_capacity_is_refused(
    profile: type[EvictionProfile], capacity: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="capacity must be"):
        profile(capacity)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("profile", "order_checked", "approximate_checked"),
    [
        (FIFO(4), True, True),
        (ExpiryOrdered(4), True, True),
        (RandomEviction(4), False, True),
        (ExactLRU(4), False, False),
        (NoEviction(), False, False),
    ],
)
def test_which_order_properties_apply(
    profile: EvictionProfile, order_checked: bool, approximate_checked: bool
) -> None:
    g = Guarantees(eviction=profile)
    assert (declared_order(g) is None) is order_checked
    assert (approximate_lru(g) is None) is approximate_checked
    if not isinstance(profile, ExactLRU):
        assert exact_lru(g) is not None
    assert profile.live_count_bound() == (None if isinstance(profile, NoEviction) else 4)


@pytest.mark.parametrize(
    ("factory", "checked"),
    [
        (FIFOBackend, ["lru.declared_order", "lru.capacity", "lru.expired_first", "ops.mixed"]),
        (
            ExpiryOrderedBackend,
            ["lru.declared_order", "lru.capacity", "lru.expired_first", "ops.mixed"],
        ),
        (RandomBackend, ["lru.recent_survive", "lru.capacity", "lru.expired_first", "ops.mixed"]),
    ],
    ids=["fifo", "expiry_ordered", "random"],
)
def test_a_cache_that_keeps_its_order_passes(factory: type[Backend], checked: list[str]) -> None:
    report = run_suite(Target(f"orders:{factory.__name__}", factory), seed=4242, only=checked)
    assert [report.result(p).status for p in checked] == ["pass"] * len(checked), report.results
