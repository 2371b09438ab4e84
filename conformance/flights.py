"""Single-flight, leases and early refresh, checked beside a model of flights.

Callers of one key run as scheduled tasks (:mod:`.interleave`), in one or two *processes*:
each process is its own cache object (its own single-flight group) over the same backend,
as two processes sharing a Redis would be. Every compute is a scheduling point, so
Hypothesis chooses who misses, who computes, who waits, whose compute fails, when time
passes and when a process dies, and the model judges:

* ``one_compute``: in a process, two computes of the key never run at once (a flight
  computes once; the next miss after it starts a new one);
* ``shared_outcome``: a caller that did not compute gets the value of a compute, or the very
  exception of a compute that ran during its call (the leader's error reaches every waiter);
* ``no_hang``: every caller returns once the driver runs it to its end (a bounded number of
  steps, with time passing when all wait): a failed compute never leaves the key locked;
* ``one_owner``: a lease (an ``add`` of a lease entry) is never granted while another
  caller's lease is neither released by its owner nor expired on the harness's clock;
* ``takeover``: a dead process's lease stops blocking the key within the lease time (plus
  the backend's resolution).

:func:`check_herd` runs a herd of real threads as a second check, and XFetch is checked
apart (:func:`cachespec.conformance.xfetch.check_xfetch`): with the random draw injected, a hit
refreshes exactly when ``now - delta * beta * ln(rand) >= expiry``.

Code under test that waits for another caller must wait through ``cache.flight_wait`` (our
:class:`~cachespec.backends.cache.Cache` does): the harness schedules those waits. A wait
on a real lock held across a backend call stops the whole interleaving and is reported as
a hang after the scheduler's patience.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from cachespec.backends import NO_VALUE, Backend
from cachespec.backends.cache import Cache, is_lease
from cachespec.spec import Violation

from . import stillclock
from .checks import CheckFailed
from .drawn import FLIGHTS, STILL_FLIGHTS, field, time_steps
from .interleave import Scheduled, Scheduler, Task, TaskHung
from .staleness import MAX_TASKS, CallersMachine, Strategies
from .target import Target
from .wrapped import Wrapped

KEY = "hot"
# The real-thread checks' configuration, and the machine's until its ``configure`` step
# draws one (conformance/drawn.py).
FILL_TTL = 600.0
LEASE_TTL = 30.0
# Scheduling steps a caller may take to return once the driver runs it to its end (time
# passes meanwhile whenever every caller waits). Ours needs a few dozen at most.
MAX_STEPS = 300
# A caller blocked outside any scheduling point (a real lock or event) is hung after this.
PATIENCE = 3.0

CLAIMS = ("one_compute", "shared_outcome", "no_hang", "one_owner", "takeover")


class ComputeFailed(Exception):
    """The compute function raised (as the driver chose)."""


@dataclass(frozen=True)
class FlightPlan:
    """What a flight property runs, and the one claim it judges (hangs are always judged)."""

    claim: str
    processes: int = 1
    crashes: bool = False  # a process can die, its callers with it, mid-call
    moves_time: bool = False
    # Holders outlive their leases on purpose (``outlive_lease``). Only where the claim is
    # about who owns a lease: elsewhere the rule takes steps from the states those claims
    # need, and single_flight.no_hang's mutants took three times the examples.
    outlives_leases: bool = False
    # On a harness clock that stands still (a server that keeps its own time): long TTLs, and
    # an example in which every caller waits for time to pass ends there (stillclock.py).
    still: bool = False

    def __post_init__(self) -> None:
        if self.claim not in CLAIMS:
            raise ValueError(f"unknown claim {self.claim!r}")
        if self.outlives_leases and not self.moves_time:
            raise ValueError("a lease is outlived only on a clock that moves")
        if self.still and self.moves_time:
            raise ValueError("a still clock does not move")


@dataclass
class _Compute:
    number: int
    task: Task
    process: int
    started: int  # log position
    started_at: float  # on the harness's clock
    ended: int | None = None  # log position, None while it runs
    value: object = None
    error: BaseException | None = None


@dataclass
class _Call:
    task: Task
    process: int
    started: int  # log position
    fails: bool  # whether a compute this caller runs fails


@dataclass
class _Lease:
    token: bytes
    owner: Task
    taken_at: float
    expires_at: float  # math.inf: never
    released: bool = False


class LeaseLedger(Wrapped):
    """Watches the backend for lease entries: who was granted one (``add`` of a lease
    entry), when, for how long, and whether its owner released it (a compare-and-set or
    compare-and-delete that expected it)."""

    def __init__(
        self, inner: Backend, owner_of: Callable[[], Task | None], now: Callable[[], float]
    ) -> None:
        super().__init__(inner)
        self.inner = inner
        self.owner_of, self.now = owner_of, now
        self.leases: list[_Lease] = []
        self.conflicts: list[tuple[str, str]] = []  # (the operation, what it did)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        granted = super().add(key, value, ttl)
        owner = self.owner_of()
        if granted and owner is not None and is_lease(value):
            now = self.now()
            for held in self.live(now):
                self.conflicts.append(
                    (
                        f"add({key!r}, <lease>) ({owner.name}, t={now:g})",
                        f"granted a lease while {held.owner.name}'s (granted at "
                        f"t={held.taken_at:g}, expiring at t={held.expires_at:g}) was neither "
                        "released by its owner nor expired",
                    )
                )
            expires = math.inf if ttl is None else now + ttl
            self.leases.append(_Lease(value, owner, now, expires))
        return granted

    def delete(self, key: str) -> None:
        # A plain delete releases a lease only when the caller deletes its own; deleting
        # another's is the bug this ledger exists to see.
        deleter, now = self.owner_of(), self.now()
        raw = self.inner.get(key)
        for lease in self.live(now):
            if deleter is not None and lease.token == raw:
                if lease.owner is deleter:
                    lease.released = True
                else:
                    self.conflicts.append(
                        (
                            f"delete({key!r}) ({deleter.name}, t={now:g})",
                            f"deleted {lease.owner.name}'s live lease (granted at "
                            f"t={lease.taken_at:g}): released by a caller that does not own it",
                        )
                    )
        super().delete(key)

    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        done = super().compare_and_set(key, expected, value, ttl)
        self._released(expected, done)
        return done

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        done = super().compare_and_delete(key, expected)
        self._released(expected, done)
        return done

    def _released(self, token: bytes, done: bool) -> None:
        owner = self.owner_of()
        for lease in self.leases:
            if done and lease.token == token and lease.owner is owner:
                lease.released = True

    def live(self, now: float) -> list[_Lease]:
        return [x for x in self.leases if not x.released and now < x.expires_at]


class FlightMachine(CallersMachine):
    """Concurrent callers of one key through ``get_or_compute``, beside a model of flights."""

    target: ClassVar[Target]
    plan: ClassVar[FlightPlan]
    strategies: ClassVar[Strategies]
    # What watches the leases: in real time, one judging on measured times (rtleases.py).
    ledger_kind: ClassVar[type[LeaseLedger]] = LeaseLedger

    def __init__(self) -> None:
        super().__init__()
        inner = self._open_session()
        self.scheduler = Scheduler(patience=PATIENCE, on_stuck=self._let_time_pass)
        self.standstill = stillclock.Standstill(self.scheduler.returned)
        self.ledger = self.ledger_kind(inner, self.scheduler.current, self.clock.now)
        self.backend = Scheduled(self.ledger, self.scheduler, "cache")
        self.lease_ttl, self.fill_ttl = LEASE_TTL, FILL_TTL
        self.caches = [self._new_process() for _ in range(self.plan.processes)]
        self.generation = [0] * self.plan.processes  # bumped when a process dies
        self.computes: list[_Compute] = []
        self.calls: dict[int, _Call] = {}
        self.problems: list[Violation] = []

    @initialize(lease_ttl=field(FLIGHTS, "lease_ttl"), fill_ttl=field(FLIGHTS, "fill_ttl"))
    def configure(self, lease_ttl: float, fill_ttl: float) -> None:
        """This example's configuration: the lease time (also how long a flight is shared)
        and the TTL of the fills."""
        self.lease_ttl, self.fill_ttl = lease_ttl, fill_ttl
        self.caches = [self._new_process() for _ in range(self.plan.processes)]

    def _new_process(self) -> Cache:
        return self.strategies.make_cache(
            self.backend,  # type: ignore[arg-type]
            lease_ttl=self.lease_ttl,
            clock=self.clock.now,
            sleep=self.scheduler.sleeper(),
            flight_wait=self.scheduler.waiter(self.clock.now),
        )

    def _let_time_pass(self) -> None:
        if self.plan.still:  # the server would not expire a lease when our clock says
            self.standstill()
            return
        self.clock.advance_to(self.clock.now() + self.lease_ttl / 4)

    def _log(self) -> int:
        return len(self.scheduler.log)

    # ------------------------------------------------------------------- the compute
    def _compute_for(self, process: int, fails: bool) -> Callable[[], object]:
        """The compute function of a caller in ``process``: one scheduled source call."""
        source = Scheduled(_Source(), self.scheduler, "source")

        def compute() -> object:
            task = self.scheduler.current()
            assert task is not None, "computes run in the callers' tasks"
            record = _Compute(len(self.computes) + 1, task, process, self._log(), self.clock.now())
            if self.plan.claim == "one_compute":
                self._check_alone(record)
            self.computes.append(record)
            try:
                value = source.read(f"{KEY}#{record.number}", fails)
            except BaseException as exc:
                record.error = exc
                raise
            finally:
                record.ended = self._log()
            record.value = value
            return value

        return compute

    def _check_alone(self, record: _Compute) -> None:
        for other in self.computes:
            # A flight is shared for a lease's time at most; after that a new one may start.
            young = record.started_at - other.started_at < self.lease_ttl
            if other.process == record.process and other.ended is None and young:
                self.problems.append(
                    Violation(
                        f"compute #{record.number} ({record.task.name}) at step {record.started}",
                        f"started while compute #{other.number} ({other.task.name}) of the "
                        "same key was running in the same process",
                        "one compute per flight: a caller that misses during a flight waits "
                        "for its result",
                    )
                )

    # ---------------------------------------------------------------------- judging
    def _collect(self) -> None:
        if self.ledger.conflicts and self.plan.claim == "one_owner":
            operation, what = self.ledger.conflicts[0]
            raise Violation(
                operation,
                what,
                "one owner at a time: only the owner releases its lease (compare-and-"
                "delete), and a lease is free again only once it expires",
            )
        if self.problems:
            raise self.problems[0]
        for task in self.scheduler.tasks:
            call = self.calls.get(id(task))
            if call is not None and task.done:
                del self.calls[id(task)]
                if not task.abandoned and self.plan.claim == "shared_outcome":
                    self._judge_outcome(call)
        if self.plan.claim == "takeover" and not self.scheduler.runnable():
            self._judge_takeover()

    def _judge_outcome(self, call: _Call) -> None:
        task = call.task
        own = [c for c in self.computes if c.task is task]
        if own:
            return  # it computed: whatever it got is its own compute's doing
        if task.error is not None:
            if any(c.error is task.error for c in self.computes):
                return
            raise Violation(
                f"get_or_compute({KEY!r}) ({task.name}, started at step {call.started})",
                f"raised {type(task.error).__name__}: {task.error}, which no compute raised",
                "the leader's value, or the very exception the leader's compute raised",
            )
        values = [c.value for c in self.computes if c.ended is not None and c.error is None]
        if task.result not in values:
            raise Violation(
                f"get_or_compute({KEY!r}) ({task.name}, started at step {call.started})",
                f"returned {task.result!r}",
                f"a value some compute returned ({', '.join(map(repr, values)) or 'none yet'})",
            )

    def _judge_takeover(self) -> None:
        now = self.clock.now()
        raw = self.ledger.inner.get(KEY)  # the backend itself: not a scheduled call
        if raw is NO_VALUE or not is_lease(raw):
            return
        for lease in self.ledger.leases:
            dead = lease.owner.abandoned
            freed_by = lease.taken_at + self.lease_ttl + self.resolution
            if lease.token == raw and dead and now >= freed_by:
                raise Violation(
                    f"at t={now:g}, the entry of {KEY!r}",
                    f"is still the lease {lease.owner.name} took at t={lease.taken_at:g} "
                    "before its process died",
                    f"the key free of it within the lease time ({self.lease_ttl:g} s, plus the "
                    f"backend's resolution of {self.resolution:g} s): a dead holder's lease "
                    "must expire",
                )

    def _run_to_end(self, task: Task) -> None:
        try:
            self.scheduler.run_to_end(task, max_steps=MAX_STEPS)
        except TaskHung as hung:
            call = self.calls.get(id(task))
            started = "" if call is None else f", started at step {call.started}"
            raise Violation(
                f"get_or_compute({KEY!r}) ({task.name}{started})",
                f"never returned ({hung})",
                "every caller to return once the flight it waits for ends: a failed "
                "compute must not leave the key locked",
            ) from None

    # ------------------------------------------------------------------------ rules
    @precondition(lambda self: len(self.scheduler.runnable()) < MAX_TASKS)
    @rule(process=st.integers(0, 1), fails=st.booleans())
    def call(self, process: int, fails: bool) -> None:
        """A caller in ``process`` asks for the key; a compute it runs fails if ``fails``."""
        process %= self.plan.processes
        cache, strategies = self.caches[process], self.strategies
        compute = self._compute_for(process, fails)
        name = f"P{process}.{self.generation[process]}/C{len(self.scheduler.tasks)}"
        ttl = self.fill_ttl
        started = self.scheduler.note(f"{name} calls")
        task = self.scheduler.spawn(name, lambda: strategies.read(cache, KEY, compute, ttl))
        self.calls[id(task)] = _Call(task, process, started, fails)
        self._collect()

    @precondition(lambda self: len(self.scheduler.runnable()) < MAX_TASKS)
    @rule(process=st.integers(0, 1), fails=st.booleans())
    def call_into_compute(self, process: int, fails: bool) -> None:
        """A caller asks for the key and runs on until it is inside its compute (holding the
        flight and the lease), or waits for another caller, or returns: the state where
        every flight and lease race starts, reached on purpose rather than by luck."""
        self.call(process, fails)
        task = self.scheduler.tasks[-1]
        for _ in range(MAX_STEPS):
            computing = any(c.task is task and c.ended is None for c in self.computes)
            if task.done or task.blocked or computing:
                break
            self.scheduler.step(task)
        self._collect()

    @precondition(lambda self: self.plan.outlives_leases and self._holder() is not None)
    @rule(fails=st.booleans())
    def outlive_lease(self, fails: bool) -> None:
        """The oldest caller inside its compute outlives its lease: time moves past the
        lease's expiry (and the backend's resolution), and a caller in another process
        runs into its own compute. Whatever the first holder does next, it no longer owns
        the key: the state where a careless release or a late fill does harm, reached on
        purpose (docs/cost.md, "Rules that reach the bug")."""
        holder = self._holder()
        assert holder is not None
        expires = min(
            (x.expires_at for x in self.ledger.live(self.clock.now()) if x.owner is holder.task),
            default=self.clock.now(),
        )
        if math.isinf(expires):  # a lease with no TTL: only a wait of the lease time shows it
            expires = self.clock.now() + self.lease_ttl
        self.clock.advance_to(max(self.clock.now(), expires + self.resolution))
        self.call_into_compute(holder.process + 1, fails)

    def _holder(self) -> _Compute | None:
        return next((c for c in self.computes if c.ended is None and not c.task.done), None)

    # The fill TTL: a filled key is a hit for that long, and a program whose key got filled
    # early would otherwise spend the rest of its steps on hits, where no lease is taken.
    @precondition(lambda self: self.plan.moves_time)
    @rule(
        seconds=time_steps(FLIGHTS, lambda c: [1.0, c.lease_ttl, c.lease_ttl * 4 / 3, c.fill_ttl])
    )
    def advance(self, seconds: float) -> None:
        self.clock.advance_to(self.clock.now() + seconds)
        self._collect()

    @precondition(lambda self: self.plan.crashes and bool(self.scheduler.runnable()))
    @rule(process=st.integers(0, 1))
    def crash(self, process: int) -> None:
        """``process`` dies: its callers stop where they stand, releasing nothing; a new
        process (a new cache object) takes its place."""
        process %= self.plan.processes
        for call in list(self.calls.values()):
            if call.process == process and not call.task.done:
                self.scheduler.abandon(call.task)
        self.caches[process] = self._new_process()
        self.generation[process] += 1
        self._collect()

    def teardown(self) -> None:
        """Every caller returns, and a last caller afterwards does too (a failed compute
        left nothing locked)."""
        self.standstill.closing = True
        try:
            for task in self.scheduler.runnable():
                self._run_to_end(task)
            self._collect()
            self.call(0, False)
            last = self.scheduler.tasks[-1]
            self._run_to_end(last)
            self._collect()
        except stillclock.StoodStill:
            pass  # callers wait for time a still clock has not (stillclock.py): unjudged
        finally:
            self.scheduler.close()
            self.session.close()


class _Source:
    """The compute's data source: one scheduled call, which fails when told to."""

    def read(self, value: str, fails: bool) -> str:
        if fails:
            raise ComputeFailed(f"computing {value!r} failed (injected)")
        return value


class StillFlightMachine(FlightMachine):
    """The machine on a still clock: its configuration is drawn from TTLs that outlive the
    example (drawn.STILL_FLIGHTS), and printed as such in a replay program."""

    @initialize(
        lease_ttl=field(STILL_FLIGHTS, "lease_ttl"), fill_ttl=field(STILL_FLIGHTS, "fill_ttl")
    )
    def configure(self, lease_ttl: float, fill_ttl: float) -> None:
        super().configure(lease_ttl, fill_ttl)


def build_flight_machine(
    name: str, target: Target, plan: FlightPlan, strategies: Strategies
) -> type[FlightMachine]:
    """The machine of ``plan`` for ``target``: on a still clock where the harness cannot
    move the server's (stillclock.py), with the rules that move time off."""
    base: type[FlightMachine] = FlightMachine
    if plan.still or stillclock.stands_still(target):
        base = StillFlightMachine
        plan = replace(plan, still=True, moves_time=False, outlives_leases=False)
    namespace = {"target": target, "plan": plan, "strategies": strategies}
    return type(name, (base,), namespace)


# ----------------------------------------------------------------------- real threads
HERD = 16
# How long the first compute waits for a second one to start beside it: with a correct
# single-flight none ever does, so this is paid once per trial. It is what lets a missing
# dedupe show every time instead of when the thread switches happen to line up.
BESIDE = 0.25


def check_herd(target: Target, strategies: Strategies, trial: int) -> None:
    """``HERD`` real threads miss one key at once: the compute runs once, and every caller
    gets its value."""
    session = target.session()
    try:
        cache = strategies.make_cache(session.backend(), lease_ttl=LEASE_TTL)
        key, value = f"herd-{trial}", f"herd-{trial}-value"
        lock, second = threading.Lock(), threading.Event()
        computes: list[str] = []

        def compute() -> str:
            with lock:
                computes.append(threading.current_thread().name)
                alone = len(computes) == 1
            if alone:
                second.wait(BESIDE)
            else:
                second.set()
            return value

        start = threading.Barrier(HERD)
        results: dict[int, object] = {}

        def caller(index: int) -> None:
            start.wait(timeout=30)
            try:
                results[index] = strategies.read(cache, key, compute, FILL_TTL)
            except BaseException as exc:  # judged below, with the others
                results[index] = exc

        threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(HERD)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)  # a bounded wait: a caller still running is hung
        hung = sum(thread.is_alive() for thread in threads)
        if hung:
            raise CheckFailed(
                f"trial {trial}: {hung} of {HERD} threads that missed {key!r} at once never "
                "returned (waited 30 s); every caller returns once the flight ends"
            )
        if len(computes) != 1:
            raise CheckFailed(
                f"trial {trial}: {HERD} threads missed {key!r} at once and the compute ran "
                f"{len(computes)} times; one flight computes once"
            )
        wrong = {i: r for i, r in results.items() if r != value}
        if wrong:
            index, got = next(iter(wrong.items()))
            raise CheckFailed(
                f"trial {trial}: {len(wrong)} of {HERD} callers did not get the one compute's "
                f"value {value!r} (caller {index} got {got!r})"
            )
    finally:
        session.close()
