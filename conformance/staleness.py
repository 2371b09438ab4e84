"""State machines for the strategies' staleness bounds, with concurrent callers.

Readers, writers and event deliveries are *tasks*: ordinary calls into the strategies
(``Cache.get_or_compute``, ``WriteThrough.write``, ...) running on threads, whose every call
on the backend or the source is a scheduling point (:mod:`.interleave`). Hypothesis picks
which task makes its next call, so the interleaving is part of the printed program and
replays exactly. When a read finishes, the model of the source of truth
(:mod:`cachespec.spec.staleness`) judges how stale its value may be under the strategy.

The stale-set race, as the suite finds it in a naive cache-aside::

    state.start_read(key='price')    # R0 misses the cache, stops before reading the source
    state.step(task=0)               # R0 reads the source: the old price
    state.start_write(key='price')   # W1 writes the new price ...
    state.finish_task(task=1)        # ... and invalidates: later reads must be fresh
    state.finish_task(task=0)        # R0 sets the OLD price in the cache
    state.start_read(key='price')    # R2 hits the old price: a violation
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from cachespec.backends import Backend, BackendUnavailable, CacheError
from cachespec.spec import Violation
from cachespec.spec.staleness import BOUNDS, STALE_WHILE_REVALIDATE, SourceOfTruth

from . import stillclock
from .doubles import CacheWrites, FaultyBackend, Source
from .drawn import STALENESS, STILL_STALENESS, field, time_steps
from .interleave import SETTLE_STEPS, Scheduled, Scheduler, Task
from .regenerations import Read, Regenerations, Verdict
from .swarm import FocusedMachine
from .target import Session, Target
from .under_test import STRATEGIES, NaiveCacheAside, Strategies, resolve_strategies

# Source, Strategies and resolve_strategies stay importable from here, where the Strategies
# hooks have always found them (they live in under_test.py).
__all__ = [
    "STRATEGIES",
    "CacheWrites",
    "CallersMachine",
    "FaultyBackend",
    "NaiveCacheAside",
    "Plan",
    "Source",
    "StalenessMachine",
    "Strategies",
    "build_staleness_machine",
    "resolve_strategies",
]

# One key: every reader and writer meets on it, which is where the races are. At most
# MAX_TASKS callers at once: enough for any two-party race, few enough to find it quickly.
KEYS = ("price",)
MAX_TASKS = 3
# The configuration a machine runs until its ``configure`` step draws one (conformance/
# drawn.py); a program written by hand that skips that step runs these.
TTL = 60.0  # the fill TTL, and the safety net of event invalidation
LEASE_TTL = 30.0
PAST_THE_EDGE = 0.25  # how far past a TTL bound past_the_bound lands (any amount catches)


@dataclass(frozen=True)
class Plan:
    """What a staleness property runs: its writers, the bounds, the faults, the overlap."""

    writer: str  # "source" (TTL only) | "invalidate" | "write_through" | "event"
    cache_faults: bool = False  # the next calls on the cache can be made to fail
    source_faults: bool = False  # the source can be made to fail
    sequential: bool = False  # each caller runs alone, start to end
    # The strategy must also cache: a read that nothing gave cause to miss must hit, without
    # a call on the source (docs/design.md, "Efficacy"). Sequential plans only: under a race
    # a fill may rightly be dropped.
    efficacy: bool = False
    # On a harness clock that stands still (a server that keeps its own time): long TTLs,
    # no time rules, and the TTL half of each bound not judged (stillclock.py).
    still: bool = False

    @property
    def faults(self) -> bool:
        return self.cache_faults or self.source_faults

    @property
    def moves_time(self) -> bool:
        """Where the TTL is the bound under test (TTL only, a lost event), and under
        write-through, where a copy that expired must not make room for an older version:
        elsewhere time would only expire the evidence of a race. Never on a still clock."""
        if self.still:
            return False
        if self.writer == "write_through":
            return not self.faults  # under faults, time would only expire the evidence
        return self.writer in ("source", "event")


@dataclass
class _Pending:
    kind: str  # "read" | "write"
    key: str
    started: int  # the log position the task started at
    started_time: float  # the harness's time then
    value: object = None  # what a write wrote
    ended: int | None = None  # the log position and the time it ended at, once it has
    ended_time: float = 0.0


class CallersMachine(FocusedMachine):
    """A machine whose callers run as scheduled tasks: the rules that step them, for the
    staleness and the flight machines. Subclasses set ``scheduler`` and judge finished
    callers in :meth:`_collect`."""

    target: ClassVar[Target]
    scheduler: Scheduler

    def _open_session(self) -> Backend:
        """This example's session and clock; the backend it returns is the one the callers'
        caches wrap, and its TTL resolution is what the model allows for."""
        self.session: Session = self.target.session()
        self.clock = self.session.clock
        inner = self.session.backend()
        self.resolution = inner.guarantees.ttl_resolution
        return inner

    def _collect(self) -> None:
        raise NotImplementedError

    def _run_to_end(self, task: Task) -> None:
        self.scheduler.run_to_end(task)

    def _task(self, index: int) -> Task | None:
        runnable = self.scheduler.runnable()
        return runnable[index % len(runnable)] if runnable else None

    @precondition(lambda self: bool(self.scheduler.runnable()))
    @rule(task=st.integers(0, MAX_TASKS - 1))
    def step(self, task: int) -> None:
        """The ``task``-th unfinished caller makes its next call."""
        chosen = self._task(task)
        if chosen is not None:
            self.scheduler.step(chosen)
        self._collect()

    @precondition(lambda self: bool(self.scheduler.runnable()))
    @rule(task=st.integers(0, MAX_TASKS - 1))
    def finish_task(self, task: int) -> None:
        """The ``task``-th unfinished caller runs to its end (the others run while it
        waits for them)."""
        chosen = self._task(task)
        if chosen is not None:
            self._run_to_end(chosen)
        self._collect()


class StalenessMachine(CallersMachine):
    """Concurrent readers and writers of a few keys under one strategy, beside the model."""

    target: ClassVar[Target]
    plan: ClassVar[Plan]
    strategies: ClassVar[Strategies]
    # How far past a TTL bound past_the_bound lands (rtstaleness.py: less, in real time).
    past_the_edge: ClassVar[float] = PAST_THE_EDGE

    def __init__(self) -> None:
        super().__init__()
        # Callers that all wait (for a lease a failed caller left behind) wait on the clock:
        # time passes for them, a quarter of a lease at a time.
        self.scheduler = Scheduler(on_stuck=self._let_time_pass)
        self.standstill = stillclock.Standstill(self.scheduler.returned)
        self.faulty = _FailuresSeen(self._open_session(), self.scheduler.current)
        self.truth = SourceOfTruth({key: f"{key}#0" for key in KEYS})
        self.source_impl = Source(
            self.truth, self.clock, lambda: len(self.scheduler.log), self.scheduler.current
        )
        recorded = CacheWrites(self.faulty, self.source_impl.cached)
        self.source: Source = Scheduled(self.source_impl, self.scheduler, "source")  # type: ignore[assignment]
        self.backend = Scheduled(recorded, self.scheduler, "cache")
        self.ttl, self.lease_ttl = TTL, LEASE_TTL
        self._build_cache()
        self.events: list[tuple[str, object]] = []  # published, not yet delivered
        self.pending: dict[int, _Pending] = {}
        # Under stale-while-revalidate: the reads, and those past the TTL bound that wait
        # for a read beside them to end (conformance/regenerations.py).
        self.regenerations = Regenerations()
        self.deferred: list[tuple[Task, _Pending, Read, float]] = []
        # Under an efficacy plan: why the next read of a key must hit, and until when (the
        # TTL of what was cached; a backend may keep it longer, never shorter).
        self.expect_hit: dict[str, tuple[str, float]] = {}

    def _build_cache(self) -> None:
        """The cache the callers share, on the configured fill TTL and lease time."""
        event = self.plan.writer == "event"
        self.fill_ttl = self.strategies.event_safety_ttl(self.ttl) if event else self.ttl
        self.cache = self.strategies.make_cache(
            self.backend,  # type: ignore[arg-type]
            default_ttl=self.fill_ttl,
            lease_ttl=self.lease_ttl,
            clock=self.clock.now,
            sleep=self.scheduler.sleeper(),
            flight_wait=self.scheduler.waiter(self.clock.now),
        )

    @initialize(fill_ttl=field(STALENESS, "fill_ttl"), lease_ttl=field(STALENESS, "lease_ttl"))
    def configure(self, fill_ttl: float, lease_ttl: float) -> None:
        """This example's configuration: the TTL fills are written with (the bound under
        TTL only and for a lost event), and the fill lease's time."""
        self.ttl, self.lease_ttl = fill_ttl, lease_ttl
        self._build_cache()

    # --------------------------------------------------------------------- bookkeeping
    def _now(self) -> float:
        return self.clock.now()

    def _let_time_pass(self) -> None:
        if self.plan.still:
            # The server would not expire a lease they wait for when the harness's clock
            # says: no time passes, and a wait only time ends ends the example (stillclock.py).
            self.standstill()
            return
        self.clock.advance_to(self._now() + self.lease_ttl / 4)

    def _spawn(
        self, name: str, work: Callable[[], object], kind: str, key: str, value: object = None
    ) -> None:
        started = self.scheduler.note(f"{name} starts")
        task = self.scheduler.spawn(name, work)
        self.pending[id(task)] = _Pending(kind, key, started, self._now(), value)
        if self.plan.sequential:
            while not task.done:
                self.scheduler.step(task)
        self._collect()

    def _collect(self) -> None:
        """Judge every task that finished since the last call, in the order they started."""
        for task in self.scheduler.tasks:
            if task.done and id(task) in self.pending:
                self._judge(task, self.pending.pop(id(task)))
        if self.deferred:
            self._judge_deferred()

    def _judge(self, task: Task, pending: _Pending) -> None:
        pending.ended, pending.ended_time = len(self.scheduler.log), self._now()
        fail_closed = self.strategies.promises.fail_closed
        if task.error is None and fail_closed and id(task) in self.faulty.failed_for:
            raise Violation(
                f"{pending.kind} {pending.key!r} ({task.name}, started at step {pending.started})",
                f"returned {task.result!r} after a call on the cache failed in it (injected)",
                "the failure, raised: the strategy declares that it fails closed "
                "(Promises(fail_closed=True))",
            )
        if task.error is not None:
            cache_failed = isinstance(task.error, (BackendUnavailable, CacheError))
            if fail_closed and cache_failed and self.plan.faults:
                return  # it failed closed, as declared; what matters is what it left behind
            if self.plan.faults and pending.kind == "read" and cache_failed:
                raise Violation(
                    f"read {pending.key!r} ({task.name})",
                    f"raised {type(task.error).__name__}: {task.error}",
                    "the source's value: a failing cache must fall through to the source",
                )
            if self.plan.faults and (cache_failed or isinstance(task.error, ConnectionError)):
                return  # the failure was injected; what matters is what it left behind
            raise task.error
        if pending.kind == "read" and self.plan.efficacy:
            self._judge_efficacy(task, pending)
        if pending.kind == "read":
            self._check_read(task, pending)
        elif self.plan.efficacy:
            self._after_write(pending.key, task.name)
        if pending.kind == "write" and self.plan.writer in ("invalidate", "write_through"):
            written = self.truth.version_of(pending.key, pending.value)
            if written is not None:
                what = BOUNDS[self.plan.writer].fresh_after
                step = self.scheduler.note(f"{task.name} returned")
                self.truth.made_fresh(pending.key, written, step, f"{what} ({task.name})")

    def _check_read(self, task: Task, pending: _Pending) -> None:
        # The promised bound, whatever TTL the strategy under test chose to fill with. On a
        # still clock its TTL half is never reached: nothing expires (stillclock.py).
        timed = BOUNDS[self.plan.writer].ttl and not self.plan.still
        bound = self.ttl + self.resolution if timed else None
        if bound is not None and self.strategies.promises.stale_while_revalidate:
            # Judged at once without the TTL bound; with it once it is known whether a
            # regeneration ran beside the read (conformance/regenerations.py).
            self._judge_read(task, pending, None)
            read = self._as_read(task, pending)
            self.regenerations.ended(read)
            self.deferred.append((task, pending, read, bound))
            self._judge_deferred()
            return
        self._judge_read(task, pending, bound)

    def _judge_read(
        self, task: Task, pending: _Pending, bound: float | None, overrun: str = ""
    ) -> None:
        # A read may take effect at any instant between its start and its end; judging it
        # at its start is the most lenient reading, so a slow caller holding a value it
        # read in time is never blamed on the cache.
        self.truth.check_read(
            pending.key,
            task.result,
            started_step=pending.started,
            time=pending.started_time,
            ended=pending.ended_time,
            ttl_bound=bound,
            operation=f"read {pending.key!r} ({task.name}, started at step {pending.started})",
            overrun=overrun,
        )

    def _as_read(self, task: Task, pending: _Pending) -> Read:
        called = any(call.startswith("source.read") for call in task.trace)
        return Read(pending.key, pending.started, pending.ended, called)

    def _judge_deferred(self) -> None:
        """The reads under stale-while-revalidate whose verdict is known now."""
        running = [
            self._as_read(task, self.pending[id(task)])
            for task in self.scheduler.tasks
            if id(task) in self.pending and self.pending[id(task)].kind == "read"
        ]
        for entry in list(self.deferred):
            task, pending, read, bound = entry
            verdict = self.regenerations.verdict(read, running)
            if verdict is Verdict.LATER:
                continue
            self.deferred.remove(entry)
            if verdict is Verdict.NONE:
                self._judge_read(task, pending, bound, SWR_OVERRUN)

    def _after_write(self, key: str, name: str) -> None:
        """A write-through leaves the value cached; an invalidation leaves nothing; a source
        write under event invalidation leaves the cache as it was, until the event."""
        if self.plan.writer == "write_through":
            self._expect_hit(key, f"the write-through {name} returned")
        elif self.plan.writer == "invalidate":
            self.expect_hit.pop(key, None)

    def _expect_hit(self, key: str, why: str) -> None:
        ttl = self.fill_ttl
        self.expect_hit[key] = (why, float("inf") if ttl is None else self._now() + ttl)

    def _judge_efficacy(self, task: Task, pending: _Pending) -> None:
        """A read that nothing gave cause to miss hits: it never calls the source."""
        expected = self.expect_hit.get(pending.key)
        if expected is not None and pending.started_time < expected[1]:
            called = [call for call in task.trace if call.startswith("source.")]
            if called:
                raise Violation(
                    f"read {pending.key!r} ({task.name}, started at step {pending.started})",
                    f"called {called[0]}: a miss",
                    "a hit",
                    f"{expected[0]} less than the TTL ({self.fill_ttl!r} s) before, and no "
                    "write, invalidation or event came since: a strategy that is never stale "
                    "because it never caches is of no use",
                )
        if expected is None or any(call.startswith("source.") for call in task.trace):
            # It filled the key: the TTL starts now. (A hit leaves the entry as it was.)
            self._expect_hit(pending.key, f"the read {task.name} filled it")

    # ---------------------------------------------------------------------------- rules
    @precondition(lambda self: len(self.scheduler.runnable()) < MAX_TASKS)
    @rule(key=st.sampled_from(KEYS))
    def start_read(self, key: str) -> None:
        """A caller reads ``key`` through the strategy (it runs up to its first call)."""
        strategies, cache, source = self.strategies, self.cache, self.source

        def read() -> object:
            return strategies.read(cache, key, lambda: source.read(key), self.fill_ttl)

        self._spawn(f"R{len(self.scheduler.tasks)}", read, "read", key)

    # Only where a writer races the readers: under TTL only nothing invalidates, and the
    # rule would only thin out the ones that matter there (advance, read to the end).
    @precondition(
        lambda self: self.plan.writer != "source" and len(self.scheduler.runnable()) < MAX_TASKS
    )
    @rule(key=st.sampled_from(KEYS))
    def read_past_source(self, key: str) -> None:
        """A caller reads ``key`` and runs on until it has read the source and stops before
        its next call on the cache, holding that value for it: the first half of the
        stale-set race, reached on purpose rather than by luck."""
        self.start_read(key)
        self._run_past(self.scheduler.tasks[-1], "source.read")

    @precondition(lambda self: len(self.scheduler.runnable()) < MAX_TASKS)
    @rule(key=st.sampled_from(KEYS))
    def start_write(self, key: str) -> None:
        """A caller updates ``key`` in the source, then does what the strategy says."""
        value = self.source_impl.next_value(key)
        strategies, cache, source, writer = (
            self.strategies,
            self.cache,
            self.source,
            self.plan.writer,
        )

        def write() -> object:
            if writer == "write_through":
                strategies.write_through(cache, source, key, value)
            elif writer == "invalidate":
                strategies.write_and_invalidate(cache, source, key, value)
            else:
                source.write(key, value)
                if writer == "event":  # published now, delivered (or lost) later
                    self.events.append((key, value))
            return None

        self._spawn(f"W{len(self.scheduler.tasks)}", write, "write", key, value)

    @precondition(
        lambda self: (
            self.plan.writer in ("write_through", "invalidate")
            and not self.plan.sequential
            and len(self.scheduler.runnable()) < MAX_TASKS
        )
    )
    @rule(key=st.sampled_from(KEYS))
    def write_past_source(self, key: str) -> None:
        """A writer commits to the source and stops before its next call on the cache: the
        first half of a lost update (an older version's copy landing after a newer one's),
        reached on purpose rather than by luck."""
        self.start_write(key)
        self._run_past(self.scheduler.tasks[-1], "source.write")

    def _run_past(self, task: Task, call: str) -> None:
        """Step ``task`` until it has made ``call`` (it then stops before its next one),
        ends, or waits for another caller."""
        for _ in range(SETTLE_STEPS):
            made = any(traced.startswith(call) for traced in task.trace)
            if task.done or task.blocked or made:
                break
            self.scheduler.step(task)
        self._collect()

    @precondition(lambda self: bool(self.events))
    @rule(which=st.integers(0, 3), fate=st.sampled_from(["deliver", "duplicate", "lose"]))
    def deliver_event(self, which: int, fate: str) -> None:
        """A change event reaches the subscriber (in any order), twice, or never."""
        key, value = self.events[which % len(self.events)]
        if fate != "duplicate":
            self.events.remove((key, value))
        if fate == "lose":
            return
        self.strategies.handle_event(self.cache, key)
        self.expect_hit.pop(key, None)  # the next read refills
        version = self.truth.version_of(key, value)
        assert version is not None
        step = self.scheduler.note(f"event {value!r} delivered")
        self.truth.made_fresh(key, version, step, f"{BOUNDS['event'].fresh_after} for {value!r}")

    @precondition(lambda self: self.plan.moves_time)
    @rule(seconds=time_steps(STALENESS, lambda c: [1.0, c.lease_ttl, c.fill_ttl, c.fill_ttl + 1]))
    def advance(self, seconds: float) -> None:
        self.clock.advance_to(self._now() + seconds)

    @precondition(lambda self: self.plan.moves_time and self._next_edge() is not None)
    @rule()
    def past_the_bound(self) -> None:
        """Time passes to just past the next instant a cached old version must be gone
        by: where a TTL that is a little too long still serves what a correct one let go."""
        edge = self._next_edge()
        assert edge is not None  # the precondition
        self.clock.advance_to(edge)

    def _next_edge(self) -> float | None:
        """The earliest future instant just past a superseded, cached version's bound (the
        rule :meth:`SourceOfTruth.check_read` applies), or past the latest fill's."""
        now, bound = self._now(), self.ttl + self.resolution + self.past_the_edge
        edges: list[float] = []
        latest = float("-inf")
        for key in KEYS:
            for version in self.truth.versions(key):
                if not version.cached_times:
                    continue
                latest = max(latest, *version.cached_times)
                if version.superseded_time is not None:
                    since = max(version.superseded_time, *version.cached_times)
                    edges.append(since + bound)
        future = [edge for edge in edges if edge > now] or [
            edge for edge in [latest + bound] if edge > now
        ]
        return min(future, default=None)

    @precondition(lambda self: self.plan.cache_faults)
    @rule(calls=st.integers(1, 3))
    def cache_fails(self, calls: int) -> None:
        """The next ``calls`` calls on the cache fail."""
        self.faulty.failures = calls

    @precondition(lambda self: self.plan.source_faults)
    @rule(down=st.booleans())
    def source_down(self, down: bool) -> None:
        self.source_impl.down = down

    def teardown(self) -> None:
        """Let every caller finish, then read each key once more: whatever a stale fill
        left behind shows up here even if no later read happened to start."""
        self.standstill.closing = True
        try:
            self.faulty.failures = 0
            self.source_impl.down = False
            self.scheduler.finish()
            self._collect()
            for key in KEYS:
                self.start_read(key)
            self.scheduler.finish()
            self._collect()
        except stillclock.StoodStill:
            pass  # callers wait for time a still clock has not (stillclock.py): unjudged
        finally:
            self.scheduler.close()
            self.session.close()


# Why a read past its TTL bound is not excused under stale-while-revalidate.
SWR_OVERRUN = (
    "; the strategy declares stale-while-revalidate, which allows more only "
    f"{STALE_WHILE_REVALIDATE}, and no regeneration of the key (a read that calls the "
    "source) ran beside this read"
)


class _FailuresSeen(FaultyBackend):
    """A failing backend that remembers which callers it failed, so that a strategy that
    declares it fails closed is held to raising (Promises.fail_closed)."""

    def __init__(self, inner: Backend, current: Callable[[], Task | None]) -> None:
        super().__init__(inner)
        self._current = current
        self.failed_for: set[int] = set()

    def _call(self, name: str, *args: Any) -> Any:
        injected = self.failures > 0  # one caller runs at a time: nobody changes it between
        try:
            return super()._call(name, *args)
        except BackendUnavailable:
            if injected:
                self.failed_for.add(id(self._current()))
            raise


class StillStalenessMachine(StalenessMachine):
    """The machine on a still clock: its configuration is drawn from TTLs that outlive the
    example (drawn.STILL_STALENESS), and printed as such in a replay program."""

    @initialize(
        fill_ttl=field(STILL_STALENESS, "fill_ttl"), lease_ttl=field(STILL_STALENESS, "lease_ttl")
    )
    def configure(self, fill_ttl: float, lease_ttl: float) -> None:
        super().configure(fill_ttl, lease_ttl)


def build_staleness_machine(
    name: str, target: Target, plan: Plan, strategies: Strategies
) -> type[StalenessMachine]:
    """The machine of ``plan`` for ``target``: on a still clock where the harness cannot
    move the server's (stillclock.py)."""
    still = plan.still or stillclock.stands_still(target)
    base = StillStalenessMachine if still else StalenessMachine
    namespace = {"target": target, "plan": replace(plan, still=still), "strategies": strategies}
    return type(name, (base,), namespace)
