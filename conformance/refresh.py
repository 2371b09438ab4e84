"""Early refresh does its job: a key read steadily stays cached, and nobody waits for it.

Two machines, each on a configuration drawn per example (:class:`~cachespec.spec.refresh.
RefreshBound`, printed as the first step of a replay program: ``state.configure(...)``):

* :class:`SteadyReadsMachine` (``efficacy.early_refresh``): callers in one or two
  processes read the key at a steady rate on the harness's clock. From its first fill on,
  the key is never found expired at a read, and two computes of it never start closer
  than the bound's ``min_spacing`` (no refresh storm): at most ``max_computes_per_ttl``
  per TTL, across every caller.
* :class:`RevalidateMachine` (``efficacy.revalidate``): a caller is held
  inside its refresh compute; every other caller, in its process or another, returns the
  old value at once: it makes no source call and never waits for another caller.

XFetch is run with its random draw fixed per example, which makes it a soft TTL of a known
lead (spec/refresh.py), so the bounds are exact; ``early_refresh.xfetch`` checks the
formula itself. Callers are scheduled tasks (:mod:`.interleave`), as in the other
strategy machines, and nothing sleeps: a compute takes its time on the harness's clock.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from cachespec.backends import NO_VALUE, Backend, ConfigurationError
from cachespec.backends.cache import Cache, is_lease
from cachespec.spec import Violation
from cachespec.spec.refresh import RefreshBound, RefreshConfigError

from .interleave import Scheduled, Scheduler, Task
from .staleness import Strategies
from .swarm import FocusedMachine
from .target import Session, Target

KEY = "hot"
# Steps a caller served during a refresh may take: a read, a decode, nothing more. One that
# needs more is waiting for something.
SOLO_STEPS = 20
HORIZON = 3  # TTLs of steady reads an example runs at most
# Readers served during one refresh: one in each process shows every way of waiting or
# computing again; more would only repeat them.
MEANWHILE = 2


@st.composite
def refresh_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid early-refresh configuration, and how many callers read at each tick.

    Reads per TTL stay at 3 to 12: every read on a server is a move of its clock, and the
    bounds do not depend on the rate as long as ``read_every + compute < lead``."""
    ttl = draw(st.sampled_from([20.0, 60.0, 300.0, 3600.0]))
    read_every = ttl / draw(st.integers(3, 12))
    xfetch = draw(st.booleans())
    share = draw(st.sampled_from([0.1, 0.25, 0.5]) if xfetch else st.sampled_from([0.0, 0.1, 0.5]))
    compute = read_every * share
    floor = read_every + compute
    lead = floor + (ttl - floor) * draw(st.floats(0.05, 0.9))
    # Longer than a compute (spec/refresh.py): by a little, or by far.
    return draw_rest(
        draw,
        ttl=ttl,
        read_every=read_every,
        compute=compute,
        lead=lead,
        lease_shares=(0.25, 1.0, 4.0),
        xfetch=xfetch,
    )


def draw_rest(
    draw: st.DrawFn,
    *,
    ttl: float,
    read_every: float,
    compute: float,
    lead: float,
    lease_shares: tuple[float, ...],
    xfetch: bool,
) -> dict[str, Any]:
    """A configuration from its TTL, read rate, compute time and lead (``refresh_before``,
    or XFetch's with its draw fixed to give that lead), with the rest drawn: the lease time
    (the compute and ``lease_shares`` of a read interval), the callers, the processes."""
    config: dict[str, Any] = {
        "ttl": ttl,
        "compute": compute,
        "read_every": read_every,
        "lease_ttl": compute + read_every * draw(st.sampled_from(lease_shares)),
        "refresh_before": None,
        "beta": None,
        "draw": None,
        "callers": draw(st.integers(1, 3)),
        "processes": draw(st.integers(1, 2)),
    }
    if xfetch:
        beta = draw(st.sampled_from([0.5, 1.0, 2.0]))
        config.update(beta=beta, draw=math.exp(-lead / (compute * beta)))
    else:
        config.update(refresh_before=lead)
    return config


_CONFIG = st.shared(refresh_configs(), key="cachespec-refresh-config")


def _field(name: str) -> st.SearchStrategy[Any]:
    """One field of the one configuration drawn per example: each argument of
    ``configure`` is one, so that the printed program shows plain numbers to change."""
    return _CONFIG.map(lambda config: config[name])


class _Source:
    """The compute's data source: one scheduled call per compute."""

    def read(self, value: str) -> str:
        return value


class RefreshMachine(FocusedMachine):
    """Callers of one key through caches with early refresh, over one backend."""

    target: ClassVar[Target]
    strategies: ClassVar[Strategies]

    def __init__(self) -> None:
        super().__init__()
        self.session: Session = self.target.session()
        self.clock = self.session.clock
        self.inner: Backend = self.session.backend()
        self.scheduler = Scheduler(on_stuck=self._let_time_pass)
        self.backend = Scheduled(self.inner, self.scheduler, "cache")
        self.source = Scheduled(_Source(), self.scheduler, "source")
        self.caches: list[Cache] = []
        self.starts: list[float] = []  # when each compute started, on the harness's clock
        self.value: object = NO_VALUE  # what the key holds now: the last compute's value
        self.expiry = -math.inf  # when that entry expires, by the cache's own reckoning
        # The clock's smallest step, twice: a server's clock rounds each move.
        self.slack = 2 * max(self.clock.tick, 1e-9)
        self.bound: RefreshBound | None = None
        self.callers = 1

    def _let_time_pass(self) -> None:
        lease = self.bound.lease_ttl if self.bound is not None else 1.0
        self.clock.advance_to(self.clock.now() + lease / 4)

    @initialize(
        ttl=_field("ttl"),
        compute=_field("compute"),
        read_every=_field("read_every"),
        lease_ttl=_field("lease_ttl"),
        refresh_before=_field("refresh_before"),
        beta=_field("beta"),
        draw=_field("draw"),
        callers=_field("callers"),
        processes=_field("processes"),
    )
    def configure(
        self,
        *,
        ttl: float,
        compute: float,
        read_every: float,
        lease_ttl: float,
        refresh_before: float | None,
        beta: float | None,
        draw: float | None,
        callers: int,
        processes: int,
    ) -> None:
        """The configuration of this example: the fill TTL, how long a compute takes, the
        read rate, the lease time, the early-refresh mode (``refresh_before``, or XFetch's
        ``beta`` with its ``draw`` fixed), and how many callers in how many processes."""
        try:
            self.bound = RefreshBound(
                ttl, compute, read_every, lease_ttl, refresh_before, beta, draw
            )
        except RefreshConfigError as exc:  # a replay program edited by hand, say
            raise ConfigurationError(f"not an early-refresh configuration: {exc}") from None
        self.callers = callers
        options: dict[str, Any] = {"refresh_before": refresh_before}
        if beta is not None:
            fixed = draw
            options = {"early_refresh": True, "beta": beta, "random": lambda: fixed}
        self.caches = [
            self.strategies.make_cache(
                self.backend,  # type: ignore[arg-type]
                default_ttl=ttl,
                lease_ttl=lease_ttl,
                clock=self.clock.now,
                sleep=self.scheduler.sleeper(),
                flight_wait=self.scheduler.waiter(self.clock.now),
                **options,
            )
            for _ in range(processes)
        ]

    # ------------------------------------------------------------------- the callers
    def _compute(self) -> object:
        """One compute: a scheduled source call, then its time passes on the clock."""
        assert self.bound is not None
        self.starts.append(self.clock.now())
        value = self.source.read(f"{KEY}#{len(self.starts)}")
        self.clock.advance_to(self.clock.now() + self.bound.compute)
        self.value, self.expiry = value, self.clock.now() + self.bound.ttl
        self._check_spacing()
        return value

    def _check_spacing(self) -> None:
        assert self.bound is not None
        if len(self.starts) < 2:
            return
        earlier, latest = self.starts[-2], self.starts[-1]
        if latest - earlier < self.bound.min_spacing - self.slack:
            raise Violation(
                f"compute #{len(self.starts)} of {KEY!r} at t={latest:.6g}",
                f"started {latest - earlier:.6g} s after compute #{len(self.starts) - 1}",
                f"at least {self.bound.min_spacing:.6g} s between two computes, so at most "
                f"{self.bound.max_computes_per_ttl} per TTL across all callers",
                f"an entry lives ttl after its compute and is refreshed at most its lead "
                f"before expiry ({self.bound.describe()}): a refresh earlier than that is a "
                "refresh storm",
            )

    def _require_configuration(self) -> None:
        if self.bound is None:
            raise ConfigurationError(
                "no configuration: a program of this property starts with state.configure(...)"
            )

    def _spawn_reader(self, index: int) -> Task:
        cache = self.caches[index % len(self.caches)]
        ttl = self.bound.ttl if self.bound is not None else None
        strategies, compute = self.strategies, self._compute
        name = f"P{index % len(self.caches)}/C{len(self.scheduler.tasks)}"
        self.scheduler.note(f"{name} reads")
        return self.scheduler.spawn(name, lambda: strategies.read(cache, KEY, compute, ttl))

    def _raise_if_failed(self, task: Task) -> None:
        if task.error is not None:
            raise task.error

    def _held_entry(self) -> bytes | None:
        """The key's entry as the backend holds it (the driver's look: not scheduled), or
        None for nothing or a fill's lease."""
        raw = self.inner.get(KEY)
        return None if raw is NO_VALUE or is_lease(raw) else raw

    def teardown(self) -> None:
        try:
            self.scheduler.finish()
        finally:
            self.scheduler.close()
            self.session.close()


class SteadyReadsMachine(RefreshMachine):
    """The key read at a steady rate: never found expired, never refreshed in a storm."""

    def __init__(self) -> None:
        super().__init__()
        self.next_read = self.clock.now()
        self.first_fill: float | None = None

    def _tick(self) -> None:
        """The next read instant: every caller reads the key, interleaved call by call."""
        assert self.bound is not None
        self.clock.advance_to(max(self.clock.now(), self.next_read))
        now = self.clock.now()
        if self.first_fill is not None and self._held_entry() is None:
            raise Violation(
                f"at t={now:.6g}, the entry of {KEY!r}",
                "was gone (read a miss)",
                "a live entry: a key read at least every "
                f"{self.bound.read_every:g} s is refreshed before it expires",
                f"{self.bound.describe()}; filled at t={self.first_fill:.6g}, and read every "
                f"{self.bound.read_every:g} s since, with the last compute at "
                f"t={self.starts[-1]:.6g}: early refresh kept nothing alive",
            )
        tasks = [self._spawn_reader(index) for index in range(self.callers)]
        self.scheduler.finish()
        for task in tasks:
            self._raise_if_failed(task)
        if self.first_fill is None and self.starts:
            self.first_fill = self.starts[0]
        self.next_read = now + self.bound.read_every

    @rule(reads=st.integers(1, 4))
    def read_steadily(self, reads: int) -> None:
        """``reads`` read instants, ``read_every`` apart, up to ``HORIZON`` TTLs past the
        first fill (past it, each bound has been seen to hold or fail three times over)."""
        self._require_configuration()
        assert self.bound is not None
        for _ in range(reads):
            if (
                self.first_fill is None
                or self.clock.now() < self.first_fill + HORIZON * self.bound.ttl
            ):
                self._tick()

    def teardown(self) -> None:
        """Every example reads on past two expiries of its first fill: one that never
        refreshes has let the key go by then, and one that refreshes too often has done it
        twice."""
        try:
            if self.bound is not None:
                start = self.first_fill if self.first_fill is not None else self.clock.now()
                end = start + 2 * self.bound.ttl + self.bound.read_every
                while self.clock.now() < end:
                    self._tick()
        finally:
            super().teardown()


class RevalidateMachine(RefreshMachine):
    """A caller refreshes the key; every other caller is served the old value at once."""

    def __init__(self) -> None:
        super().__init__()
        self.refresher: Task | None = None
        self.meanwhile = 0  # readers served during the current refresh
        self.old: object = NO_VALUE  # the value the refresher is replacing

    def _fill(self) -> None:
        if self.value is NO_VALUE:
            task = self._spawn_reader(0)
            self.scheduler.run_to_end(task)
            self._raise_if_failed(task)

    def _refreshing(self) -> bool:
        return self.refresher is not None and not self.refresher.done

    @precondition(lambda self: not self._refreshing())
    @rule(process=st.integers(0, 1), where=st.floats(0.0, 0.95))
    def start_refresh(self, process: int, where: float) -> None:
        """Time moves to a point ``where`` of the way through the key's refresh window (if
        it is not past it), and a caller in ``process`` reads: it refreshes the key and is
        held inside its compute."""
        self._require_configuration()
        assert self.bound is not None
        self._fill()
        # The compute must end before the entry expires, or the refresh could not land.
        opens, closes = self.expiry - self.bound.lead, self.expiry - self.bound.compute
        when = opens + (closes - opens) * where
        if self.clock.now() < when:
            self.clock.advance_to(when)
        if not opens <= self.clock.now() < closes:
            return  # past the window: a later fill opens the next one
        self.old = self.value
        task = self._spawn_reader(process)
        for _ in range(SOLO_STEPS):
            if task.done or task.blocked or (task.waiting_at or "").startswith("source."):
                break
            self.scheduler.step(task)
        if task.done:
            self._raise_if_failed(task)
        elif (task.waiting_at or "").startswith("source."):
            self.refresher, self.meanwhile = task, 0

    @precondition(lambda self: self._refreshing() and self.meanwhile < MEANWHILE)
    @rule(process=st.integers(0, 1))
    def read_meanwhile(self, process: int) -> None:
        """While the refresher computes, a caller in ``process`` reads: it returns the old
        value without a source call and without waiting for anyone."""
        assert self.refresher is not None
        assert self.bound is not None
        self.meanwhile += 1
        task = self._spawn_reader(process)
        waited = self._served_alone(task)
        because = (
            f"{self.bound.describe()}: the entry is live until t={self.expiry:.6g} and "
            f"{self.refresher.name} is already refreshing it (stale-while-revalidate)"
        )
        self._judge_meanwhile(task, waited, because)

    def _served_alone(self, task: Task) -> bool:
        """Step ``task`` alone until it returns, waits for another caller or calls the
        source; whether it waited."""
        for _ in range(SOLO_STEPS):
            if task.done or task.blocked:
                return task.blocked
            if (task.waiting_at or "").startswith("source."):
                return False
            self.scheduler.step(task)
        return False

    def _judge_meanwhile(self, task: Task, waited: bool, because: str) -> None:
        """``task`` read while the refresher computed: it returned the old value, with no
        source call and no wait (``because`` says why that was due)."""
        assert self.refresher is not None
        operation = f"get_or_compute({KEY!r}) ({task.name}, while {self.refresher.name} refreshes)"
        if (task.waiting_at or "").startswith("source."):
            raise Violation(
                operation, f"computed too ({task.waiting_at})", "the old value", because
            )
        if waited or not task.done:
            at = task.waiting_at or "its next call"
            raise Violation(
                operation, f"waited for another caller ({at})", "the old value at once", because
            )
        self._raise_if_failed(task)
        if task.result != self.old:
            raise Violation(operation, f"returned {task.result!r}", f"{self.old!r}", because)

    @precondition(lambda self: self._refreshing())
    @rule()
    def finish_refresh(self) -> None:
        """The refresher's compute ends, and its value replaces the old one."""
        assert self.refresher is not None
        self.scheduler.run_to_end(self.refresher)
        self._raise_if_failed(self.refresher)
        self.refresher = None


def build_refresh_machine(
    name: str, target: Target, strategies: Strategies, kind: type[RefreshMachine]
) -> type[RefreshMachine]:
    namespace = {"target": target, "strategies": strategies}
    return type(name, (kind,), namespace)
