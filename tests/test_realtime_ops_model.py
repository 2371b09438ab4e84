"""The real-time model judges compare_and_set, compare_and_delete, delete, clear, get_many and
set_many near an expiry as it judges a read: a call wholly before the entry's earliest
expiry sees it live, one wholly past the instant it is surely gone sees it absent, and one
that may fall either side may see either; what it saw then decides the model's state.

No server and no sleep: the times are given, as the timed backend would record them
(conformance/realtime.py). docs/design.md, "Real time", "Operations near an expiry".
"""

from __future__ import annotations

import pytest

from cachespec.backends import NO_VALUE
from cachespec.conformance.realtime import SLACK, RealTimeModel
from cachespec.spec import Guarantees, Violation

RESOLUTION = 0.002
# Written within [10.0, 10.001] with ttl=1.0: may expire from 11.0 - SLACK, and is surely
# gone from the write's last instant plus the TTL, the resolution and the slack.
EARLIEST = 11.0 - SLACK
GONE = 10.001 + 1.0 + RESOLUTION + SLACK
# Calls of a millisecond: wholly before the window, wholly past it, and across it; and two
# within it, one after the other (what a call there saw must hold for the next).
BEFORE = (10.5, 10.501)
PAST = (GONE, GONE + 0.001)
ACROSS = (EARLIEST - 0.005, GONE + 0.005)
INSIDE = (EARLIEST + 0.002, EARLIEST + 0.003)
LATER_INSIDE = (EARLIEST + 0.006, EARLIEST + 0.007)


def _written() -> RealTimeModel:
    """A model whose 'k' holds b'v', written within [10.0, 10.001] with ttl=1.0."""
    model = RealTimeModel(Guarantees(ttl_resolution=RESOLUTION, compare_and_set=True), origin=0)
    model.record(10.0, 10.001)
    model.set(10.0, "k", b"v", 1.0)
    return model


def _cas(model: RealTimeModel, span: tuple[float, float], expected: bytes, observed: bool) -> None:
    model.record(*span)
    model.compare_and_set(span[1], "k", expected, b"w", ttl=1.0, observed=observed)


def _cad(model: RealTimeModel, span: tuple[float, float], expected: bytes, observed: bool) -> None:
    model.record(*span)
    model.compare_and_delete(span[1], "k", expected, observed)


def _get(model: RealTimeModel, span: tuple[float, float], observed: object) -> None:
    model.record(*span)
    model.get(span[0], "k", observed)


# ---------------------------------------------------------------------- compare_and_set
def test_a_compare_and_set_wholly_before_the_window_sees_a_live_entry() -> None:
    _cas(_written(), BEFORE, b"v", True)
    _cas(_written(), BEFORE, b"x", False)
    with pytest.raises(Violation, match="returned False; the model allowed only True"):
        _cas(_written(), BEFORE, b"v", False)
    with pytest.raises(Violation, match="returned True; the model allowed only False"):
        _cas(_written(), BEFORE, b"x", True)


def test_a_compare_and_set_wholly_past_the_window_sees_an_absent_entry() -> None:
    _cas(_written(), PAST, b"v", False)
    with pytest.raises(Violation, match="returned True; the model allowed only False"):
        _cas(_written(), PAST, b"v", True)


@pytest.mark.parametrize("observed", [True, False])
def test_a_compare_and_set_across_the_window_may_go_either_way(observed: bool) -> None:
    _cas(_written(), ACROSS, b"v", observed)


def test_after_a_compare_and_set_across_the_window_its_answer_decides_the_state() -> None:
    # It wrote: the new value lives a new TTL from the call, past the old entry's window.
    model = _written()
    _cas(model, ACROSS, b"v", True)
    later = (GONE + 0.5, GONE + 0.501)
    _get(model, later, b"w")
    with pytest.raises(Violation, match="allowed only b'w'"):
        _get(model, later, NO_VALUE)
    # It did not: the old entry turned out gone, and must not come back, even at an
    # instant where it might otherwise still be served.
    model = _written()
    _cas(model, INSIDE, b"v", False)
    with pytest.raises(Violation, match="was seen gone by a comparison"):
        _get(model, LATER_INSIDE, b"v")


def test_a_failed_comparison_of_another_value_leaves_the_entry_to_its_ttl() -> None:
    model = _written()
    _cas(model, INSIDE, b"x", False)
    _get(model, LATER_INSIDE, b"v")  # still within its window: a hit is fine
    with pytest.raises(Violation, match="gone for sure from"):
        _get(model, PAST, b"v")


# ------------------------------------------------------------------- compare_and_delete
def test_a_compare_and_delete_is_judged_on_the_same_window() -> None:
    _cad(_written(), BEFORE, b"v", True)
    with pytest.raises(Violation, match="returned False; the model allowed only True"):
        _cad(_written(), BEFORE, b"v", False)
    _cad(_written(), PAST, b"v", False)
    with pytest.raises(Violation, match="returned True; the model allowed only False"):
        _cad(_written(), PAST, b"v", True)
    for observed in (True, False):
        model = _written()
        _cad(model, ACROSS, b"v", observed)
        model = _written()
        _cad(model, INSIDE, b"v", observed)
        # Either way the entry is gone now, within its window: deleted, or seen gone.
        with pytest.raises(Violation, match="allowed only a miss"):
            _get(model, LATER_INSIDE, b"v")


# ------------------------------------------------------------ delete, clear, get/set_many
@pytest.mark.parametrize("span", [BEFORE, ACROSS, PAST])
def test_a_delete_or_a_clear_removes_the_entry_wherever_the_call_falls(
    span: tuple[float, float],
) -> None:
    for remove in ("delete", "delete_many", "clear"):
        model = _written()
        model.record(*span)
        if remove == "delete":
            model.delete(span[1], "k")
        elif remove == "delete_many":
            model.delete_many(span[1], ["k", "other"])
        else:
            model.clear(span[1])
        _get(model, (span[1] + 0.001, span[1] + 0.002), NO_VALUE)
        with pytest.raises(Violation, match="allowed only a miss"):
            _get(model, (span[1] + 0.001, span[1] + 0.002), b"v")


def test_get_many_across_the_window_allows_either_and_a_miss_is_final() -> None:
    model = _written()
    model.record(*BEFORE)
    with pytest.raises(Violation, match="allowed only b'v'"):
        model.get_many(BEFORE[1], ["k"], {})
    model = _written()
    model.record(*PAST)
    with pytest.raises(Violation, match="gone for sure from"):
        model.get_many(PAST[1], ["k"], {"k": b"v"})
    for observed in ({"k": b"v"}, {}):
        model = _written()
        model.record(*ACROSS)
        model.get_many(ACROSS[1], ["k"], observed)
    model = _written()
    model.record(*INSIDE)
    model.get_many(INSIDE[1], ["k"], {})  # a miss within the window: seen gone ...
    with pytest.raises(Violation, match="was seen missing"):
        _get(model, LATER_INSIDE, b"v")  # ... and never back


def test_set_many_across_the_window_gives_the_entry_a_new_ttl_from_the_call() -> None:
    model = _written()
    model.record(*ACROSS)
    model.set_many(ACROSS[1], [("k", b"w")], 1.0)
    # Past the old window, within the new TTL from the call's first instant.
    _get(model, (ACROSS[0] + 1.0 - 2 * SLACK, ACROSS[0] + 1.0 - 2 * SLACK + 0.001), b"w")
    with pytest.raises(Violation, match="allowed only b'w'"):
        _get(model, (ACROSS[0] + 1.0 - 2 * SLACK, ACROSS[0] + 1.0 - 2 * SLACK + 0.001), NO_VALUE)
    # Gone for sure only a TTL past the call's last instant.
    end = ACROSS[1] + 1.0 + RESOLUTION + SLACK
    with pytest.raises(Violation, match="gone for sure from"):
        _get(model, (end, end + 0.001), b"w")
