"""The real-time model judges each call over the interval it was measured to take.

No server and no sleep: the times are given, as the timed backend would record them
(conformance/realtime.py). docs/design.md, "Real time".
"""

from __future__ import annotations

import pytest

from cachespec.backends import NO_VALUE
from cachespec.conformance.properties import BY_ID
from cachespec.conformance.realtime import (
    REAL_TIME,
    SLACK,
    RealClock,
    RealTimeModel,
)
from cachespec.conformance.runner import CANNOT_CHECK_HERE, NOT_DECLARED, why_skipped
from cachespec.conformance.target import UserServerTarget
from cachespec.spec import Guarantees, Violation

RESOLUTION = 0.002


def _model() -> RealTimeModel:
    return RealTimeModel(Guarantees(ttl_resolution=RESOLUTION), origin=0.0)


def _set(model: RealTimeModel, started: float, ended: float, ttl: float) -> None:
    """A set whose call ran from ``started`` to ``ended``; the machine read its clock first."""
    model.record(started, ended)
    model.set(started, "k", b"v", ttl)


def _get(model: RealTimeModel, started: float, ended: float, observed: object) -> None:
    model.record(started, ended)
    model.get(started, "k", observed)


def test_a_read_wholly_before_the_earliest_expiry_must_hit() -> None:
    model = _model()
    _set(model, 10.0, 10.001, ttl=1.0)
    _get(model, 10.5, 10.501, b"v")
    with pytest.raises(Violation, match="allowed only b'v'"):
        _get(model, 10.9, 10.901, NO_VALUE)


def test_a_read_wholly_past_the_latest_expiry_must_miss() -> None:
    gone = 10.001 + 1.0 + RESOLUTION + SLACK  # the write's last instant, TTL, resolution, slack
    model = _model()
    _set(model, 10.0, 10.001, ttl=1.0)
    with pytest.raises(Violation, match="gone for sure from"):
        _get(model, gone, gone + 0.001, b"v")
    model = _model()
    _set(model, 10.0, 10.001, ttl=1.0)
    _get(model, gone, gone + 0.001, NO_VALUE)


@pytest.mark.parametrize("observed", [b"v", NO_VALUE])
def test_a_read_that_may_fall_either_side_accepts_both(observed: object) -> None:
    model = _model()
    _set(model, 10.0, 10.001, ttl=1.0)
    _get(model, 11.0 - SLACK, 11.0, observed)  # within the slack before the expiry
    model = _model()
    _set(model, 10.0, 10.001, ttl=1.0)
    _get(model, 10.95, 11.5, observed)  # a slow read spanning the expiry


@pytest.mark.parametrize("observed", [b"v", NO_VALUE])
def test_a_stalled_machine_widens_the_judgement_instead_of_raising(observed: object) -> None:
    """A write that took two seconds (a loaded machine) may have landed at any instant of
    them: a read a second after the call returned is allowed either answer."""
    model = _model()
    _set(model, 10.0, 12.0, ttl=1.0)
    _get(model, 12.5, 12.501, observed)


def test_the_machine_reading_its_clock_after_the_call_changes_nothing() -> None:
    """do_get_many reads the clock after the call: the span still covers the call."""
    model = _model()
    _set(model, 10.0, 10.001, ttl=1.0)
    model.record(10.9, 10.901)
    with pytest.raises(Violation):
        model.get_many(10.902, ["k"], {})
    model = _model()
    _set(model, 10.0, 10.001, ttl=1.0)
    model.record(10.98, 11.02)
    model.get_many(11.03, ["k"], {})  # the call spans the expiry: either answer


def test_past_the_allowance_the_clock_does_not_sleep() -> None:
    clock = RealClock(allowance=0.5)
    clock.advance_to(clock.now() + 3600)
    assert clock.slept == 0.0


def test_on_a_users_server_the_ttl_properties_run_and_the_rest_say_why_not() -> None:
    target = UserServerTarget("redis://127.0.0.1:1/0")  # never connected: nothing runs
    g = Guarantees(ttl_resolution=RESOLUTION)
    atomic = Guarantees(ttl_resolution=RESOLUTION, compare_and_set=True)  # ops.compare_and_set
    for prop_id in REAL_TIME:
        assert why_skipped(BY_ID[prop_id], target, atomic) is None
    # ttl.never and ttl.long too, with the guest's cap lifted (guest_reaper.py)
    assert {"ttl.never", "ttl.long"} <= REAL_TIME
    staleness = [p for p in BY_ID.values() if p.area == "staleness" and p.needs_clock]
    assert staleness
    for prop in staleness:
        kind, reason = why_skipped(prop, target, g) or ("", "")
        assert kind in (CANNOT_CHECK_HERE, NOT_DECLARED)
        assert "runs in real time" in reason or kind == NOT_DECLARED
