"""``single_flight.no_hang`` in real time: a caller that never returns, on a server whose clock
the harness cannot move.

On the harness's clock a caller waiting for a lease only time frees is told from one that
waits forever by letting time pass until the lease expires. On a still clock that cannot
be done (stillclock.py): the example is given up. In real time it can, for real, and the
harness knows how much passed, since it measures every instant it judges on. The flight
machine runs as for the leases (rtleases.py: one monotonic clock for the machine, the
ledger and the strategies; lease and fill TTLs from ``realtime.ttl_pool``), and where every
caller waits, none returning:

* the first round of such a streak lets no time pass (a wait whose reason is gone, a
  flight that just ended, ends in the next round); each later round sleeps a quarter lease;
* the streak becomes evidence of a hang from the instant it is *due*: every lease the
  ledger saw is surely gone from the server (its measured grant, the lease time, the
  declared resolution and the slack: ``RealTimeFlightMachine._surely_free``), and a whole
  lease window has passed since the callers all began waiting (as if a lease had been
  granted then: what a strategy waits for on its own clock, or writes unseen with at most
  a lease's TTL, is over too);
* after :data:`LATE_ROUNDS` more rounds, each wholly past that instant and each a quarter
  lease of sleep, a caller still waiting has not returned: the same "never returned"
  violation as on the harness clock (``FlightMachine._run_to_end``).

A sleep the allowance refuses before that is skipped, and the example ends as on a still
clock (``Standstill``: in a teardown its callers are left unjudged): never a false alarm.
Hypothesis's replay of a failing program sleeps too (:class:`ReplaySleeps`), and is judged
the same way on its own measured times.
The allowance is one lease window at the longest lease drawn and the late rounds
(:func:`hang_allowance`), spent only where callers stay stuck. docs/design.md, "Hangs in
real time", has the decisions and what they cost.
"""

from __future__ import annotations

import time

from cachespec.backends import Backend
from cachespec.spec import Guarantees

from . import realtime, rtleases, stillclock
from .flights import FlightPlan
from .interleave import TaskHung
from .staleness import Strategies
from .target import Target

# The properties that run here, by id (runner.in_real_time, Property.real_time).
PROPERTIES = ("single_flight.no_hang",)
# Rounds of a streak, each wholly past its due instant and each a quarter lease of sleep,
# before a caller that has not returned is hung: a lease time for the callers to see that
# what they waited for is gone (our Cache's poll sees it in the first of them).
LATE_ROUNDS = 4


def hang_allowance(g: Guarantees) -> float:
    """What an example's steps may sleep, and its teardown as much again (where every
    caller runs to its end): a streak that begins at once needs one lease window (the
    longest lease drawn, the resolution and the slack) and :data:`LATE_ROUNDS` quarter
    leases after it; half a lease more is the margin for streaks that ended earlier
    (their rounds after the first each sleep a quarter lease)."""
    longest = max(realtime.ttl_pool(g))
    return realtime.longest_window(g) + 1.5 * longest + 2 * realtime.SLACK


class ReplaySleeps(realtime.RealClock):
    """The real clock, sleeping also in Hypothesis's replay of a failing program (which
    ``RealClock`` skips): a hang is judged on time that passed, so a replay that did not
    sleep would end where the first run failed, given up, and the report would carry the
    first run's violation without its program. Sleeping, the replay is judged as the first
    run was, on its own measured times, and prints its program; it costs the failing
    example's sleep once more (one lease window and a lease at most)."""

    def advance_to(self, when: float) -> float:
        wait = when - time.monotonic()
        if wait <= 0 or self.slept + wait > self.allowance:
            return self.now()
        self.slept += wait
        while (left := when - time.monotonic()) > 0:
            time.sleep(left)
        return self.now()


class RealTimeHangMachine(rtleases.RealTimeFlightMachine):
    """The flight machine that judges hangs on the real clock (see the module docstring)."""

    # The current streak: how many callers had returned when it began, when it began, when
    # its last round ended and whether that round slept, and how many of its rounds lay
    # wholly past its due instant, each after a sleep.
    _seen = -1
    _since = 0.0
    _last = 0.0
    _slept = False
    _late = 0

    def _open_session(self) -> Backend:
        inner = super()._open_session()
        self.real_clock = ReplaySleeps(self._allowance())
        self.clock = self.real_clock
        return inner

    def _allowance(self) -> float:
        return hang_allowance(self.guarantees)

    def _due(self) -> float:
        """The instant from which the current streak is evidence of a hang."""
        window = self.lease_ttl + self.resolution + realtime.SLACK  # as _surely_free's
        leases = (self._surely_free(x) for x in self.ledger.leases)
        return max([self._since + window, *leases])

    def _let_time_pass(self) -> None:
        clock = self.real_clock
        now = clock.now()
        returned = self.scheduler.returned()
        if returned != self._seen:  # a caller returned: a new streak, and no time passes
            self._seen, self._since, self._last, self._late = returned, now, now, 0
            self._slept = False
            return
        due = self._due()
        if self._slept and self._last >= due:  # all were stepped after it, and still wait
            self._late += 1
            if self._late > LATE_ROUNDS:
                raise TaskHung(
                    f"every caller waited, none returning, for {now - self._since:.3f} s of "
                    f"real time: past the instant {due - self._since:.3f} s in, by which every "
                    "lease the harness saw was surely gone from the server (its measured "
                    f"grant, the lease time {self.lease_ttl:g} s, the resolution and the slack)"
                    " and a lease window had passed since they all began waiting, and "
                    f"{LATE_ROUNDS} rounds more, each a quarter lease of real time"
                )
        before = clock.slept
        clock.advance_to(now + self.lease_ttl / 4)
        self._last, self._slept = clock.now(), clock.slept > before
        if not self._slept:  # refused: the example ends as on a still clock
            self.standstill()


def build(
    name: str, target: Target, plan: FlightPlan, strategies: Strategies, g: Guarantees
) -> realtime.RealTimeMachineCheck:
    """The real-time check of the no-hang ``plan`` for ``target``."""
    return rtleases.build(name, target, plan, strategies, g, machine=RealTimeHangMachine)


def runs_in_real_time(prop_id: str) -> bool:
    return prop_id in PROPERTIES


def runs_here(prop_id: str, target: Target) -> bool:
    """Whether ``prop_id`` runs in real time on ``target`` by this module."""
    return prop_id in PROPERTIES and stillclock.stands_still(target)
