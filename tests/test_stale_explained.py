"""A stale read after a change is explained from what happened to the value (the cache
writes recorded for it), never by a guess: a stale set only when a write of it into the
cache landed after the change (spec/staleness.py, ``explain_stale``)."""

from __future__ import annotations

import pytest

from cachespec.spec import Violation
from cachespec.spec.staleness import SourceOfTruth


def _after_an_invalidation(cached_at: list[int]) -> SourceOfTruth:
    """'k' at version 0, cached at the given steps; version 1 written at step 4 and made
    fresh by an invalidation that returned at step 6."""
    truth = SourceOfTruth({"k": "k#0"})
    old = truth.current("k")
    for step in cached_at:
        truth.cached(old, float(step), step)
    new = truth.write("k", "k#1", 4, 4.0)
    truth.made_fresh("k", new, 6, "the invalidation (W1)")
    return truth


def _explain(truth: SourceOfTruth) -> str:
    with pytest.raises(Violation) as raised:
        truth.check_read(
            "k", "k#0", started_step=9, time=9.0, ended=9.0, ttl_bound=None, operation="read"
        )
    return str(raised.value)


def test_a_fill_that_landed_after_the_invalidation_is_a_stale_set() -> None:
    text = _explain(_after_an_invalidation([2, 8]))
    assert "wrote it into the cache at step 8, after the invalidation (W1) returned" in text
    assert "stale-set race" in text


def test_a_value_cached_before_the_invalidation_and_served_after_is_not_called_a_race() -> None:
    text = _explain(_after_an_invalidation([2]))
    assert "last written into the cache at step 2, before the invalidation (W1) returned" in text
    assert "race" not in text


def test_a_value_never_cached_was_served_from_elsewhere() -> None:
    text = _explain(_after_an_invalidation([]))
    assert "never written into the cache by a caller that had it" in text
    assert "race" not in text


def test_a_value_served_past_its_ttl_is_an_expiry_overrun() -> None:
    truth = _after_an_invalidation([2])
    with pytest.raises(Violation, match="an expiry overrun"):
        truth.check_read(
            "k", "k#0", started_step=5, time=20.0, ended=20.0, ttl_bound=5.0, operation="read"
        )
