"""A still clock: the strategy properties whose verdict needs no time to pass, checked on a
server whose clock the harness cannot move (a user's: ``redis://host``).

Most strategy properties judge bounds that involve no expiry at all: a read after an
invalidation or a write-through is fresh (a bound of 0), a fill is read (efficacy), a miss
is computed once (single-flight). They are sound on a harness clock that simply never moves,
provided

* every TTL the strategies write outlives the example (a fill TTL of an hour, leases of
  half an hour or more: ``drawn.STILL_STALENESS``, ``drawn.STILL_FLIGHTS``), so that the
  server, whose clock is its own, expires nothing while the harness looks;
* no rule moves the clock (a plan on a still clock turns its time rules off), and the TTL
  half of a bound is not judged: it cannot be reached while nothing expires;
* nothing the strategy reads from its clock can disagree with the server's. When every
  caller waits for something only time ends (a lease a failed caller left behind), the
  harness would let time pass; on a still clock it cannot, since the server would not
  expire the lease at the instant the strategy's clock says. The example then stops there,
  rejected (:func:`cannot_wait`): it loses that example, never raises a false alarm.

Where a property's subject is time itself (a TTL, an expiry, a lease's time, a wait only
time ends) it runs in real time there instead (realtime.py and the rt*.py modules).
docs/design.md, "A still clock", has the decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from hypothesis import reject
from hypothesis import settings as Settings
from hypothesis.errors import Unsatisfiable

from .checks import CannotCheck, MachineCheck
from .target import Target

# How a result that ran on a still clock says so (runner.Result.clock, the report's table).
CLOCK = "frozen time"


def stands_still(target: Target) -> bool:
    """Whether the harness's clock must stand still for ``target``: its server keeps its own
    time (a user's server, or a harness server without libfaketime), so a move of the
    harness's clock would not reach it."""
    return not target.controls_time


# Rounds in which every caller waits, with none returning, before an example on a still
# clock is given up: a wait whose reason is gone (a flight that just ended) ends in a round
# or two, while one for a lease only time frees polls forever. On a harness clock, 16 such
# rounds let four lease times pass (each round a quarter of one).
WAITING_ROUNDS = 16


class Standstill:
    """What a machine on a still clock does where it would let time pass (its scheduler's
    ``on_stuck``): nothing, until every caller has waited ``WAITING_ROUNDS`` rounds in a
    row with none returning; then the example ends, rejected (:func:`cannot_wait`).

    Every caller at a wait is not yet every caller waiting for time: the scheduler calls
    ``on_stuck`` as soon as all of them stand at a waiting point, also where what one waits
    for has already happened. Measured on staleness.cache_aside at one seed: 39 of 129
    examples were rejected when the first such round ended them, none of which needed time."""

    def __init__(
        self, returned: Callable[[], int], give_up: Callable[[], object] | None = None
    ) -> None:
        self._returned = returned  # how many callers have returned so far
        self._give_up = give_up or cannot_wait  # the tests watch it without Hypothesis
        self._seen = -1
        self._rounds = 0
        # Set by the machine's teardown: the example's steps are over, and may have failed.
        # A rejection there would overrule that verdict (Hypothesis then finds its data
        # frozen), so the teardown gets StoodStill instead and leaves those callers unjudged.
        self.closing = False

    def __call__(self) -> None:
        returned = self._returned()
        if returned != self._seen:
            self._seen, self._rounds = returned, 0
        self._rounds += 1
        if self._rounds > WAITING_ROUNDS:
            if self.closing:
                raise StoodStill(f"every caller waited {WAITING_ROUNDS} rounds, none returned")
            self._give_up()


class StoodStill(Exception):
    """In a teardown on a still clock: the callers left wait for time to pass."""


class StillMachineCheck(MachineCheck):
    """A machine on a still clock. Were every example to end where its callers wait for
    time (a strategy that waits for leases to expire on the server whenever it runs), no
    example would be left to judge: that is this clock's limit, "cannot check here", not
    the strategy's failure (Hypothesis's Unsatisfiable)."""

    def run(self, settings: Settings, seed_value: int, examples: int) -> None:
        try:
            super().run(settings, seed_value, examples)
        except Unsatisfiable:
            raise CannotCheck(
                "every example ended where all callers waited for time to pass, which the "
                "harness cannot let pass on a server that keeps its own time (docs/design.md, "
                '"A still clock"); check a throwaway server with `cachespec check redis` or '
                "`memcached`"
            ) from None


def cannot_wait() -> NoReturn:
    """Every caller waits for something only time ends, and the harness may not move its
    clock: the example ends here, rejected (Hypothesis counts it as invalid, not as a pass
    or a failure)."""
    reject()
