"""``staleness.ttl`` in real time: the TTL bound on a server whose clock the harness cannot move.

Under TTL only, the source changes and nothing invalidates: a superseded value may be
served until its fill TTL plus the backend's resolution have run out, counted from the
later of its supersession and its last fill. On a server the user runs
(``redis://host``) that bound is the server's own clock at work, so the staleness machine
(:mod:`.staleness`) runs on the machine's monotonic clock (:class:`.realtime.RealClock`),
the strategies read that same clock, and the judgement stands only on times measured
around the calls:

* a fill is taken as written at the instant its call returned (``CacheWrites`` reads the
  clock then), the latest it can have landed, and the supersession at the instant the
  source changed (in this process, exactly);
* a read is judged at the instant its caller started, before its first call: it may be
  stale only when every instant of the read is past the bound;
* the bound is the fill TTL, the declared resolution, and :data:`.realtime.SLACK`.

Fill TTLs are short ones the declared resolution can tell (``realtime.ttl_pool``), and the
only sleeps are to just past the next bound and a share of the fill TTL, capped there,
within one window per example (``realtime.allowance``). A loaded machine then loses checks,
never raises a false alarm. docs/design.md, "Real time", has the decisions.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from cachespec.spec import Guarantees

from . import realtime, stillclock
from .pools import REAL_TIME_SAFE_TTL
from .staleness import KEYS, Plan, StalenessMachine, Strategies
from .target import Target

# The fill lease outlives the example (as on a still clock): no caller waits for a lease
# the server would expire at an instant the harness does not see, and the only time that
# matters is the fill TTL's.
LEASE_TTL = REAL_TIME_SAFE_TTL / 2
# The shares of the fill TTL the advance rule sleeps (never past the next bound).
SHARES = (0.5, 1.0)

# The property that runs here, by id (runner.in_real_time, Property.real_time).
PROPERTY = "staleness.ttl"


class RealTimeStalenessMachine(realtime.RealTimeCallers, StalenessMachine):
    """The TTL-only staleness machine on the real clock (see the module docstring)."""

    # Just past a bound: the read that follows starts after the sleep, so any margin
    # catches an overrun; a sleep's own lateness only adds to it.
    past_the_edge = realtime.SLACK

    def _let_time_pass(self) -> None:
        # Every caller waits: with leases that outlive the example and no faults, only for a
        # flight that just ended. As on a still clock, such a wait ends in a round or two,
        # and one that does not ends the example, rejected (stillclock.Standstill).
        self.standstill()

    def _collect(self) -> None:
        try:
            super()._collect()
        except AssertionError as exc:
            self.broken = True
            if not self.failures:
                self.failures.append(exc)
            raise

    # The rules that move time: preconditions that never depend on when calls ran, so that
    # Hypothesis's replay draws the same program (docs/design.md, "Real time").
    @precondition(lambda self: self.plan.moves_time)
    @rule(share=st.sampled_from(SHARES))
    def advance(self, share: float) -> None:
        """Time passes by ``share`` of the fill TTL, but never past the next bound, and not
        at all when no cached version has one ahead."""
        edge = self._next_edge()
        if edge is not None:
            self.real_clock.advance_to(min(self._now() + share * self.ttl, edge))

    @precondition(lambda self: self.plan.moves_time and self._anything_cached())
    @rule()
    def past_the_bound(self) -> None:
        """Sleep to just past the next instant a cached old version must be gone by."""
        edge = self._next_edge()
        if edge is not None:
            self.real_clock.advance_to(edge)

    def _anything_cached(self) -> bool:
        return any(v.cached_times for key in KEYS for v in self.truth.versions(key))

    def _stale_edge(self) -> float | None:
        """The earliest future instant just past a superseded, cached version's bound: where
        a fill that outlives its TTL still serves what a correct one has let go."""
        now, bound = self._now(), self.ttl + self.resolution + self.past_the_edge
        edges = [
            max(version.superseded_time, *version.cached_times) + bound
            for key in KEYS
            for version in self.truth.versions(key)
            if version.cached_times and version.superseded_time is not None
        ]
        return min((edge for edge in edges if edge > now), default=None)

    def teardown(self) -> None:
        """Let every caller finish, then sleep to just past the next bound of a superseded
        version still cached, within one window more (as realtime.RealTimeMachine's
        teardown), so that the reads the teardown makes judge it: each example whose
        program cached a version and then changed the source ends with such a read."""
        self.standstill.closing = True
        try:
            self.scheduler.finish()
            self._collect()
            edge = None if self.broken else self._stale_edge()
            if edge is not None:
                self.real_clock.allowance = self.real_clock.slept + self._allowance()
                self.real_clock.advance_to(edge)
        except stillclock.StoodStill:
            pass  # callers left waiting: StalenessMachine.teardown leaves them unjudged
        except BaseException:
            self.scheduler.close()
            self.session.close()
            raise
        super().teardown()


def build(
    name: str, target: Target, plan: Plan, strategies: Strategies, g: Guarantees
) -> realtime.RealTimeMachineCheck:
    """The real-time check of ``plan`` (TTL only) for ``target``, with fill TTLs drawn from
    those ``g``'s resolution can tell apart."""
    pool = realtime.ttl_pool(g)

    @initialize(fill_ttl=st.sampled_from(pool), lease_ttl=st.just(LEASE_TTL))
    def configure(self: StalenessMachine, fill_ttl: float, lease_ttl: float) -> None:
        StalenessMachine.configure(self, fill_ttl, lease_ttl)

    namespace = {"target": target, "plan": plan, "strategies": strategies, "guarantees": g}
    return realtime.machine_check(name, RealTimeStalenessMachine, namespace, configure)


def runs_here(prop_id: str, target: Target) -> bool:
    """Whether ``prop_id`` runs in real time on ``target`` by this module."""
    return prop_id == PROPERTY and stillclock.stands_still(target)
