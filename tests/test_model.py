"""The model, pinned by hand-written histories: what it allows and what it refuses."""

from __future__ import annotations

import pytest

from cachespec.spec import (
    MEMCACHED_EVICTION,
    NO_VALUE,
    ApproximateLRU,
    CacheModel,
    ExactLRU,
    Guarantees,
    NoEviction,
    Violation,
)
from cachespec.spec.model import format_time
from cachespec.spec.staleness import BOUNDS, SourceOfTruth


def model(**kwargs: object) -> CacheModel:
    return CacheModel(Guarantees(**kwargs), origin=100.0)  # type: ignore[arg-type]


class TestTTL:
    def test_live_until_the_instant_of_expiry_and_gone_at_it(self) -> None:
        m = model()
        m.set(100.0, "a", b"v", 2.5)
        m.get(102.4999, "a", b"v")
        with pytest.raises(Violation, match=r"allowed only a miss: 'a' expired at t=2.5"):
            m.get(102.5, "a", b"v")

    def test_a_miss_before_expiry_is_a_violation(self) -> None:
        m = model()
        m.set(100.0, "a", b"v", 2.5)
        allowed = r"returned a miss \(NO_VALUE\); the model allowed only b'v'"
        with pytest.raises(Violation, match=allowed):
            m.get(102.0, "a", NO_VALUE)

    def test_resolution_allows_both_answers_only_inside_the_window(self) -> None:
        m = model(ttl_resolution=1.0)
        m.set(100.0, "a", b"v", 2.0)
        m.get(102.0, "a", b"v")  # inside [102, 103): a hit is allowed
        m.get(102.9, "a", b"v")
        with pytest.raises(Violation, match=r"expired at t=2.0"):
            m.get(103.0, "a", b"v")

    def test_once_seen_missing_an_entry_never_comes_back(self) -> None:
        m = model(ttl_resolution=1.0)
        m.set(100.0, "a", b"v", 2.0)
        m.get(102.5, "a", NO_VALUE)
        with pytest.raises(Violation, match="seen missing"):
            m.get(102.6, "a", b"v")

    def test_overwrite_resets_the_ttl_and_none_removes_it(self) -> None:
        m = model()
        m.set(100.0, "a", b"v1", 1.0)
        m.set(100.5, "a", b"v2", None)
        m.get(10_000.0, "a", b"v2")
        m.set(10_000.0, "a", b"v3", 1.0)
        with pytest.raises(Violation):
            m.get(10_001.0, "a", b"v3")

    def test_expiry_windows_list_every_timed_entry(self) -> None:
        m = model(ttl_resolution=0.5)
        m.set(100.0, "a", b"v", 2.0)
        m.set(100.0, "b", b"v", None)
        assert m.expiry_windows() == [(102.0, 102.5)]
        assert m.is_ambiguous_at(102.2)
        assert not m.is_ambiguous_at(102.5)


class TestOperations:
    def test_never_written_key_names_itself_in_the_message(self) -> None:
        with pytest.raises(Violation, match="'x' was never written"):
            model().get(100.0, "x", b"v")

    def test_wrong_value_points_at_the_key_that_wrote_it(self) -> None:
        m = model()
        m.set(100.0, "a", b"from-a", None)
        m.set(100.0, "b", b"from-b", None)
        with pytest.raises(Violation, match="was written under 'a'"):
            m.get(100.0, "b", b"from-a")

    def test_a_value_of_another_type_is_not_a_hit(self) -> None:
        m = model()
        m.set(100.0, "a", b"v", None)
        with pytest.raises(Violation):
            m.get(100.0, "a", bytearray(b"v"))
        with pytest.raises(Violation, match="returned None"):
            m.get(100.0, "a", None)

    def test_delete_is_idempotent_and_remembered(self) -> None:
        m = model()
        m.delete(100.0, "a")
        m.set(100.0, "a", b"v", None)
        m.delete(101.0, "a")
        m.delete(101.0, "a")
        with pytest.raises(Violation, match=r"'a' was deleted at t=1.0"):
            m.get(102.0, "a", b"v")

    def test_add_writes_only_over_an_absent_or_expired_entry(self) -> None:
        m = model()
        m.add(100.0, "a", b"1", 1.0, True)
        with pytest.raises(Violation, match="returned True; the model allowed only False"):
            m.add(100.5, "a", b"2", None, True)
        m.add(100.5, "a", b"2", None, False)
        m.get(100.5, "a", b"1")
        m.add(101.0, "a", b"3", None, True)  # expired: absent
        m.get(101.0, "a", b"3")

    def test_add_must_return_a_bool(self) -> None:
        with pytest.raises(Violation, match=r"True .stored. or False"):
            model().add(100.0, "a", b"1", None, 1)

    def test_get_many_is_a_mapping_of_exactly_the_hits(self) -> None:
        m = model()
        m.set(100.0, "a", b"1", None)
        m.get_many(100.0, ["a", "b", "a"], {"a": b"1"})
        with pytest.raises(Violation, match="a mapping of the hits"):
            m.get_many(100.0, ["a"], [("a", b"1")])
        with pytest.raises(Violation, match="not asked for"):
            m.get_many(100.0, ["a"], {"a": b"1", "z": b"1"})
        with pytest.raises(Violation, match=r"gave a miss .NO_VALUE. for 'a'"):
            m.get_many(100.0, ["a"], {})

    def test_clear_removes_everything(self) -> None:
        m = model()
        m.set_many(100.0, [("a", b"1"), ("b", b"2")], None)
        m.clear(101.0)
        with pytest.raises(Violation, match="removed by clear"):
            m.get(101.0, "b", b"2")
        assert m.keys_written == ["a", "b"]


class TestExactLRU:
    def test_evicts_the_least_recently_used(self) -> None:
        m = model(eviction=ExactLRU(2))
        m.set(100.0, "a", b"1", None)
        m.set(100.0, "b", b"2", None)
        m.get(100.0, "a", b"1")  # b is now least recently used
        m.set(100.0, "c", b"3", None)
        m.get_many(100.0, ["a", "b", "c"], {"a": b"1", "c": b"3"})
        with pytest.raises(Violation, match=r"'b' was evicted at t=0.0 to make room for 'c'"):
            m.get(100.0, "b", b"2")

    def test_every_occurrence_in_get_many_is_a_use_in_order(self) -> None:
        m = model(eviction=ExactLRU(3))
        m.set_many(100.0, [("c", b"1"), ("a", b"2"), ("d", b"3")], None)
        m.get_many(100.0, ["d", "a", "c", "d"], {"d": b"3", "a": b"2", "c": b"1"})
        m.set(100.0, "b", b"4", None)  # the least recently used is now a, not d
        m.get_many(100.0, ["d", "c", "b"], {"d": b"3", "c": b"1", "b": b"4"})
        with pytest.raises(Violation, match="'a' was evicted"):
            m.get(100.0, "a", b"2")

    def test_a_failed_add_is_not_a_use(self) -> None:
        m = model(eviction=ExactLRU(2))
        m.set(100.0, "a", b"1", None)
        m.set(100.0, "b", b"2", None)
        m.add(100.0, "a", b"x", None, False)
        m.set(100.0, "c", b"3", None)
        m.get(100.0, "a", NO_VALUE)

    def test_expired_entries_make_room_first(self) -> None:
        m = model(eviction=ExactLRU(2))
        m.set(100.0, "old", b"1", None)
        m.set(100.0, "brief", b"2", 1.0)
        m.set(101.0, "new", b"3", None)
        m.get_many(101.0, ["old", "brief", "new"], {"old": b"1", "new": b"3"})

    def test_ambiguity_weakens_instead_of_guessing(self) -> None:
        m = model(eviction=ExactLRU(2), ttl_resolution=1.0)
        m.set(100.0, "a", b"1", None)
        m.set(100.0, "b", b"2", 1.0)
        m.set(101.5, "c", b"3", None)  # b is inside its window: which entry went is unknown
        m.get(101.5, "a", NO_VALUE)  # allowed now
        with pytest.raises(Violation):
            m.get(101.5, "c", b"wrong")

    def test_bound_is_the_capacity(self) -> None:
        assert model(eviction=ExactLRU(3)).live_count_bound() == 3
        assert model(eviction=NoEviction()).live_count_bound() is None


class TestApproximateLRU:
    def test_only_unprotected_entries_may_vanish_past_the_floor(self) -> None:
        m = model(eviction=ApproximateLRU(holds_at_least=2, protects_recent=1, holds_at_most=3))
        m.set(100.0, "a", b"1", None)
        m.set(100.0, "b", b"2", None)
        with pytest.raises(Violation):
            m.get(100.0, "a", NO_VALUE)  # at the floor nothing may go
        m.set(100.0, "c", b"3", None)
        m.get(100.0, "a", NO_VALUE)  # past the floor, unprotected: may be gone
        with pytest.raises(Violation):
            m.get(100.0, "c", NO_VALUE)  # the most recent is protected
        assert m.live_count_bound() == 3

    def test_a_write_refused_when_full_leaves_the_new_value_or_nothing(self) -> None:
        m = model(eviction=MEMCACHED_EVICTION)
        m.set(100.0, "a", b"old", None)
        m.set(100.0, "b", b"old", None)
        m.refused_set(101.0, [("a", b"new"), ("b", b"new")], None)
        with pytest.raises(Violation, match=r"returned b'old'; the model allowed b'new' or a miss"):
            m.get(101.0, "a", b"old")  # memcached deletes the old entry when it refuses
        m.get(101.0, "b", b"new")  # the write may have landed after all (set_many)
        m.get(101.0, "a", NO_VALUE)
        with pytest.raises(Violation, match="allowed only a miss"):
            m.get(101.0, "a", b"new")  # seen gone: it stays gone


class TestGuarantees:
    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({"ttl_resolution": -1.0}, ValueError),
            ({"ttl_resolution": float("nan")}, ValueError),
            ({"max_value_size": -1}, ValueError),
            ({"max_ttl": 0.0}, ValueError),
            ({"eviction": "lru"}, TypeError),
            ({"clear": "no"}, TypeError),
            ({"thread_safe": 1}, TypeError),
            ({"opt_out": {"x": "r"}, "expected_failures": {"x": "r"}}, ValueError),
        ],
    )
    def test_a_malformed_declaration_is_refused(
        self, kwargs: dict[str, object], error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            Guarantees(**kwargs)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "make",
        [
            lambda: ExactLRU(0),
            lambda: ExactLRU(True),
            lambda: ApproximateLRU(holds_at_least=1, protects_recent=2),
            lambda: ApproximateLRU(holds_at_least=4, protects_recent=1, holds_at_most=2),
            lambda: ApproximateLRU(0, 0, refuses_when_full=1),  # type: ignore[arg-type]
        ],
    )
    def test_a_malformed_profile_is_refused(self, make: object) -> None:
        with pytest.raises((ValueError, TypeError)):
            make()  # type: ignore[operator]

    def test_describe_names_every_promise(self) -> None:
        text = Guarantees(
            ttl_resolution=0.001, eviction=ExactLRU(5), max_value_size=10, thread_safe=True
        ).describe()
        assert text == (
            "TTL resolution 0.001s; exact LRU, capacity 5; values up to 10 bytes; thread-safe"
        )
        assert Guarantees(clear=False).describe().endswith("; no clear")


class TestStalenessBound:
    """The TTL bound counts from the later of supersession and the last fill of a version
    (docs/design.md, "Staleness bounds"): the case a fresh-clone CI run found on memcached."""

    @staticmethod
    def history(filled_at: float | None) -> SourceOfTruth:
        truth = SourceOfTruth({"price": "price#0"})
        truth.write("price", "price#1", step=11, time=33.0)  # price#0 superseded at 33 s
        if filled_at is not None:  # a reader that read price#0 before 33 s fills it now
            truth.cached(truth.versions("price")[0], filled_at)
        return truth

    @staticmethod
    def read_at(truth: SourceOfTruth, time: float) -> None:
        truth.check_read(
            "price",
            "price#0",
            started_step=14,
            time=time,
            ended=time,
            ttl_bound=60.0,
            operation="read 'price'",
        )

    def test_a_late_fill_starts_the_ttl_again(self) -> None:
        self.read_at(self.history(filled_at=63.0), 123.0)

    def test_past_the_ttl_of_the_last_fill_is_too_stale(self) -> None:
        with pytest.raises(Violation, match=r"last cached at 63.0 s, served 60.5 s after"):
            self.read_at(self.history(filled_at=63.0), 123.5)

    def test_with_no_fill_the_bound_counts_from_supersession(self) -> None:
        with pytest.raises(Violation, match=r"served 61.0 s after that"):
            self.read_at(self.history(filled_at=None), 94.0)

    def test_a_fill_after_the_read_ended_does_not_excuse_it(self) -> None:
        with pytest.raises(Violation, match=r"served 61.0 s after that"):
            self.read_at(self.history(filled_at=200.0), 94.0)


def test_every_strategy_has_its_staleness_bound_in_the_spec() -> None:
    """The bound of each strategy is data in spec/staleness.py, which the staleness machines
    read by their writer (conformance/staleness.py, Plan.writer)."""
    assert set(BOUNDS) == {"source", "invalidate", "write_through", "event"}
    assert BOUNDS["source"].fresh_after is None  # only time makes TTL-only reads fresh
    assert BOUNDS["invalidate"].describe() == (
        "explicit invalidation: fresh after the invalidation; at most the TTL stale"
    )
    assert all(bound.ttl for bound in BOUNDS.values())


def test_times_in_messages_show_no_float_noise_and_name_the_instant_they_are_just_before() -> None:
    # The machines step to an expiry less a tick on purpose: that reads as an instant, not noise.
    assert format_time(5183999.999999999) == "just before 5184000"
    assert format_time(3.0000000001) == "just after 3"
    assert format_time(1000.001 - 1000) == "0.001"  # float noise is rounded away
    assert (format_time(2.5), format_time(12.3456)) == ("2.5", "12.3456")
