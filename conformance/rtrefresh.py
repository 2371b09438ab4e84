"""``efficacy.early_refresh`` and ``efficacy.revalidate`` in real time: early refresh on a
server whose clock the harness cannot move.

On a server the user runs (``redis://host``) an entry's expiry is the server's own clock at
work, so the refresh machines (:mod:`.refresh`) run on the machine's monotonic clock
(:class:`.realtime.RealClock`), the strategies' caches read that same clock
(``Cache(clock=...)``), and each verdict stands only on times measured around calls and on
the expiry and compute time the cache framed into the entry (its own reckoning, on that
clock), which the driver reads between the callers' calls:

* **steady reads** (``efficacy.early_refresh``): a read instant whose reads all started
  inside the refresh window of the entry the driver saw (its expiry ``E`` less the lead,
  plus :data:`.realtime.SLACK`) and all ended before that entry could expire on the server
  (``E - SLACK``) must leave an entry that lives until at least its start plus the TTL. A
  later look that finds the key gone before that instant is the violation; reads that ran
  late (a stall) prove nothing, and are left unjudged. The first compute of a read instant
  must not start before the window of the entry it replaces opened (a refresh storm): the
  cache decides on its own clock, so only :data:`.realtime.SLACK` is allowed there.
* **revalidate** (``efficacy.revalidate``): the refresher is held inside its compute only
  once the driver has seen the old entry (or its claimed copy) still in the key, and a
  reader meanwhile is judged (no source call, no wait on another caller, the old value)
  only if every call it made ended before that entry could expire; past it a miss, and a
  compute, are allowed.

A compute that takes ``compute`` seconds is a real sleep in the caller's thread. TTLs are
fractions of a second where the declared resolution is fine (Redis), and whole seconds on a
coarse one (memcached). docs/design.md, "Early refresh in real time", has the decisions and
the measurements.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, ClassVar

from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from cachespec.backends import NO_VALUE
from cachespec.backends.cache import is_lease
from cachespec.backends.entries import Refreshable, Refreshing, parse
from cachespec.spec import Guarantees, Violation

from . import realtime, stillclock
from .refresh import (
    KEY,
    MEANWHILE,
    SOLO_STEPS,
    RefreshMachine,
    RevalidateMachine,
    SteadyReadsMachine,
    draw_rest,
)
from .staleness import Strategies
from .target import Target

# The properties that run here, by id (runner.in_real_time, Property.real_time).
PROPERTIES = ("efficacy.early_refresh", "efficacy.revalidate")

# Fill TTLs. Where the resolution is fine (Redis: 2 ms) a fifth or a third of a second:
# long enough that a read instant, a compute and the scheduling margin below fit in a
# refresh window (0.5 s cost a quarter more, docs/design.md). On a coarse one
# (memcached: whole seconds, and the adapter's margin keeps an entry 2.1 to 3.1 s past its
# TTL, docs/facts.md) steady reads need a TTL longer than that linger plus two read
# instants: a miss shows only once the old entry is really gone, and is judged only while
# a refreshed one would surely still be live. Revalidate never waits for an expiry (its
# readers are judged before one), so a second or a second and a half do there.
FINE_TTLS = (0.2, 0.3)
COARSE_STEADY_TTLS = (4.0,)
COARSE_REVALIDATE_TTLS = realtime.COARSE_TTLS
# Read instants per TTL: on the coarse clock more of them, so that one falls within
# a third of a second of the expiry (the linger above leaves no more than 0.9 s).
FINE_READS = (4, 8)
COARSE_STEADY_READS = (12, 16)
COARSE_REVALIDATE_READS = (4, 8)
# Scheduling margin on either side of the refresh window, on top of read_every + compute:
# a read instant that lands this late still refreshes in time, unloaded.
FINE_MARGIN = 0.03
COARSE_MARGIN = 0.1
# A steady-reads example costs about its horizon (a TTL, the resolution, a read instant):
# 0.3 to 0.4 s on Redis, about 8.5 s on memcached, where it runs half the examples.
COARSE_STEADY_SHARE = 0.5


def _coarse(g: Guarantees) -> bool:
    return g.ttl_resolution > realtime.COARSE_RESOLUTION


def configs(
    ttls: tuple[float, ...], reads: tuple[int, int], margin: float
) -> st.SearchStrategy[dict[str, Any]]:
    """Early-refresh configurations in real time (as ``refresh.refresh_configs``): the
    refresh window fits a read instant, a compute and ``margin`` (``read_every + compute +
    margin <= lead``), and the entry outlives the window by a read instant and ``margin``
    (``lead <= ttl - read_every - margin``), so that a storm shows at the next instant."""

    @st.composite
    def draw_config(draw: st.DrawFn) -> dict[str, Any]:
        ttl = draw(st.sampled_from(ttls))
        read_every = ttl / draw(st.integers(*reads))
        xfetch = draw(st.booleans())
        share = draw(st.sampled_from([0.1, 0.25]) if xfetch else st.sampled_from([0.0, 0.1, 0.25]))
        compute = read_every * share
        floor, top = read_every + compute + margin, ttl - read_every - margin
        lead = floor + (top - floor) * draw(st.floats(0.0, 1.0))
        return draw_rest(
            draw,
            ttl=ttl,
            read_every=read_every,
            compute=compute,
            lead=lead,
            lease_shares=(1.0, 4.0),
            xfetch=xfetch,
        )

    return draw_config()


def _framed(raw: object) -> tuple[float, float, bool] | None:
    """``(expiry, compute time, claimed)`` the cache framed into an entry, on its clock, or
    None for anything else (a miss, a lease, bytes of another shape)."""
    if not isinstance(raw, bytes):
        return None
    entry = parse(raw)
    claimed = isinstance(entry, Refreshing)
    fill = entry.fill if isinstance(entry, Refreshing) else entry
    if isinstance(fill, Refreshable):
        return fill.expiry, fill.delta, claimed
    return None


class _RealTime(RefreshMachine):
    """What both machines change in real time: the clock, a compute's time, and keeping the
    first violation for :class:`.realtime.RealTimeCheck`."""

    failures: ClassVar[list[AssertionError]]
    guarantees: ClassVar[Guarantees]
    allowance_ttls: ClassVar[float] = 2.0  # the example's sleeps, in TTLs (configured)

    def __init__(self) -> None:
        super().__init__()
        self.real_clock = realtime.RealClock(0.0)  # its allowance comes with configure
        self.clock = self.real_clock
        self.standstill = stillclock.Standstill(self.scheduler.returned)

    def configured(self) -> None:
        assert self.bound is not None
        self.real_clock.allowance = self.allowance_ttls * self.bound.ttl

    def _record(self, exc: AssertionError) -> None:
        if not self.failures:
            self.failures.append(exc)

    def _lead(self, delta: float) -> float:
        """How long before its expiry an entry that took ``delta`` to compute is refreshed:
        the cache's own rule, with the draw fixed (XFetch measures ``delta`` itself, a real
        sleep and scheduling: longer than the configured compute)."""
        assert self.bound is not None
        if self.bound.refresh_before is not None:
            return self.bound.refresh_before
        assert self.bound.beta is not None
        assert self.bound.draw is not None
        return -delta * self.bound.beta * math.log(self.bound.draw)

    # Whether an earlier example of this run spent its allowance with every caller
    # waiting (set per built class). The later ones then sleep no more there.
    waited_out: ClassVar[list[bool]]

    def _let_time_pass(self) -> None:
        # Every caller waits: a quarter lease passes, for real, within the allowance. Where
        # it refuses, no time passes, and as on a still clock the example ends after 16
        # such rounds, rejected (Standstill; unjudged in a teardown, StoodStill). A strategy
        # whose callers always wait would otherwise sleep an allowance in each of the
        # hundreds of examples Hypothesis tries before it calls the run unsatisfiable.
        lease = self.bound.lease_ttl if self.bound is not None else 0.0
        before = self.real_clock.slept
        if not self.waited_out:
            self.real_clock.advance_to(self.real_clock.now() + lease / 4)
        if self.real_clock.slept == before:
            if not self.waited_out:
                self.waited_out.append(True)
            self.standstill()

    def teardown(self) -> None:
        """Let every caller finish, as on the harness clock, but leave those still waiting
        once the allowance is spent unjudged (``StoodStill``), then close."""
        self.standstill.closing = True
        try:
            self.scheduler.finish()
        except stillclock.StoodStill:
            pass
        finally:
            self.scheduler.close()
            self.session.close()

    def _compute(self) -> object:
        """One compute: a scheduled source call, then ``compute`` seconds of real sleep in
        the caller's thread (whatever the allowance: it is the compute's own time)."""
        assert self.bound is not None
        self.starts.append(self.clock.now())
        value = self.source.read(f"{KEY}#{len(self.starts)}")
        _hold(self.bound.compute)
        self.value, self.expiry = value, self.clock.now() + self.bound.ttl
        return value


def _hold(seconds: float) -> None:
    """Sleep ``seconds`` for real, except in Hypothesis's replay for the report (the first
    run's verdict stands: realtime.RealTimeCheck)."""
    if realtime._reporting():
        return
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(left)


class RealTimeSteadyReads(_RealTime, SteadyReadsMachine):
    """Steady reads on the real clock (see the module docstring)."""

    allowance_ttls = 3.0  # the horizon: a TTL, the resolution, a read instant

    def __init__(self) -> None:
        super().__init__()
        self.next_read = self.clock.now()
        self.alive_until = -math.inf  # a correct strategy's key surely holds an entry until
        self.evidence = ""  # the read instant that set alive_until, for the report
        self.look: tuple[float, float, bool] | None = None  # the entry seen at this instant
        self.computes = 0  # computes started at this read instant

    def _horizon(self) -> float:
        """Past the first fill's expiry and the instant its entry is surely gone (or a
        second TTL, whichever comes first), and one read instant more: a strategy that
        never refreshes has let the key go by then, and one that storms has shown it at
        the instant after its first refresh."""
        assert self.bound is not None
        start = self.first_fill if self.first_fill is not None else self.clock.now()
        resolution = self.guarantees.ttl_resolution + 2 * realtime.SLACK
        return start + self.bound.ttl + min(resolution, self.bound.ttl) + self.bound.read_every

    def _tick(self) -> None:
        assert self.bound is not None
        if self.first_fill is not None and self.clock.now() >= self._horizon():
            return
        try:
            self._read_instant()
        except AssertionError as exc:
            self._record(exc)
            raise

    def _read_instant(self) -> None:
        assert self.bound is not None
        self.real_clock.advance_to(max(self.clock.now(), self.next_read))
        raw = self.inner.get(KEY)  # the driver's look: not scheduled
        looked = self.clock.now()
        gone = raw is NO_VALUE or (isinstance(raw, bytes) and is_lease(raw))
        if self.first_fill is not None and gone and looked < self.alive_until:
            raise Violation(
                f"at t={looked:.6g}, the entry of {KEY!r}",
                "was gone (read a miss)",
                f"a live entry until at least t={self.alive_until:.6g}: a key read at "
                f"least every {self.bound.read_every:g} s is refreshed before it expires",
                f"{self.bound.describe()}; {self.evidence}, so a refresh had to land then, "
                "and its entry to live a TTL: early refresh kept nothing alive",
            )
        self.look = None if gone else _framed(raw)
        self.computes = 0
        tasks = [self._spawn_reader(index) for index in range(self.callers)]
        self.scheduler.finish()
        for task in tasks:
            self._raise_if_failed(task)
        ended = self.clock.now()
        if self.first_fill is None and self.starts:
            self.first_fill = self.starts[0]
        self._learn(looked, ended)
        self.next_read = looked + self.bound.read_every

    def _learn(self, looked: float, ended: float) -> None:
        """If every read of this instant surely lay in the window of the entry seen, and all
        ended before it could expire, a correct strategy refreshed it: the key then holds
        an entry computed after ``looked``, which lives a TTL (less the slack)."""
        assert self.bound is not None
        if self.look is None or self.look[2]:  # nothing framed, or a refresh left claimed
            return
        expiry, delta, _ = self.look
        opens = expiry - self._lead(delta)
        if looked >= opens + realtime.SLACK and ended < expiry - realtime.SLACK:
            until = looked + self.bound.ttl - realtime.SLACK
            if until > self.alive_until:
                self.alive_until = until
                self.evidence = (
                    f"the reads of t={looked:.6g} (every one ended by t={ended:.6g}) lay in "
                    f"the refresh window of the entry then held, [{opens:.6g}, {expiry:.6g}) "
                    "by the cache's clock, and ended before it could expire"
                )

    def _compute(self) -> object:
        """The first compute of a read instant starts no earlier than the refresh window of
        the entry seen there opened: decided on the cache's clock, so with SLACK only."""
        assert self.bound is not None
        now = self.clock.now()
        if self.computes == 0 and self.look is not None:
            expiry, delta, _ = self.look
            opens = expiry - self._lead(delta)
            if now < opens - realtime.SLACK:
                raise Violation(
                    f"compute #{len(self.starts) + 1} of {KEY!r} at t={now:.6g}",
                    f"started {opens - now:.6g} s before the refresh window of the entry it "
                    f"replaced opened (t={opens:.6g}; it expires at t={expiry:.6g} by the "
                    "cache's clock)",
                    "no compute before that window opens, so at most "
                    f"{self.bound.max_computes_per_ttl} per TTL across all callers",
                    f"{self.bound.describe()}: a refresh earlier than that is a refresh storm",
                )
        self.computes += 1
        return super()._compute()

    def teardown(self) -> None:
        """Read on to the horizon (as on the harness clock, but a TTL and the resolution
        past the first fill instead of two TTLs), unless a violation ended the example."""
        self.standstill.closing = True
        try:
            if self.bound is not None and not self.failures:
                self._tick()  # the first fill, if no step made it
                while self.first_fill is not None and self.clock.now() < self._horizon():
                    self._tick()
        except stillclock.StoodStill:
            pass  # callers left waiting: the reads end here, unjudged
        finally:
            _RealTime.teardown(self)


class RealTimeRevalidate(_RealTime, RevalidateMachine):
    """Stale-while-revalidate on the real clock (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.judged_until = -math.inf  # readers meanwhile are judged before this instant
        self.held: tuple[float, float, bool] | None = None  # the entry being refreshed
        # Between a start_refresh and its finish_refresh, whether or not a refresher was
        # held: the rules' preconditions must not depend on when calls ran, so that
        # Hypothesis's replay (at other instants, without sleeps) draws the same program
        # (docs/design.md, "Real time").
        self.attempt = False

    def _refreshing(self) -> bool:
        return self.attempt

    def _look(self) -> tuple[float, float, bool] | None:
        raw = self.inner.get(KEY)
        return None if raw is NO_VALUE else _framed(raw)

    @precondition(lambda self: not self._refreshing())
    @rule(process=st.integers(0, 1), where=st.floats(0.0, 0.95))
    def start_refresh(self, process: int, where: float) -> None:
        """Sleep to a point ``where`` of the way through the refresh window of the entry
        held (by the cache's clock; filled first if the key is empty), and a caller in
        ``process`` reads: it refreshes the key and is held inside its compute."""
        self._require_configuration()
        self.attempt, self.meanwhile = True, 0
        try:
            self._start_refresh(process, where)
        except AssertionError as exc:
            self._record(exc)
            raise

    def _start_refresh(self, process: int, where: float) -> None:
        assert self.bound is not None
        held = self._look()
        if held is None or held[2]:
            task = self._spawn_reader(0)
            self.scheduler.run_to_end(task)
            self._raise_if_failed(task)
            held = self._look()
        if held is None or held[2]:
            return  # nothing refreshable to refresh (the fill did not land in time)
        expiry, delta, _ = held
        opens, closes = expiry - self._lead(delta), expiry - self.bound.compute
        when = opens + (closes - opens) * where
        if self.clock.now() < when:
            self.real_clock.advance_to(when)
        if not opens <= self.clock.now() < closes:
            return  # past the window, or the allowance is spent
        self.old = self.caches[0].get(KEY)  # the value the refresher replaces
        task = self._spawn_reader(process)
        for _ in range(SOLO_STEPS):
            if task.done or task.blocked or (task.waiting_at or "").startswith("source."):
                break
            self.scheduler.step(task)
        if task.done:
            self._raise_if_failed(task)
        elif (task.waiting_at or "").startswith("source."):
            self.refresher, self.meanwhile = task, 0
            # Readers are judged only while the entry the refresher replaces is still in
            # the key (claimed or not: each_refreshes claims nothing) and surely live.
            seen, now = self._look(), self.clock.now()
            same = seen is not None and seen[:2] == held[:2] and self.old is not NO_VALUE
            self.held = held
            self.judged_until = expiry - realtime.SLACK if same and now < expiry else -math.inf

    @precondition(lambda self: self._refreshing() and self.meanwhile < MEANWHILE)
    @rule(process=st.integers(0, 1))
    def read_meanwhile(self, process: int) -> None:
        """While the refresher computes, a caller in ``process`` reads: if every call it
        made ended before the old entry could expire, it returned the old value without a
        source call and without waiting for anyone."""
        try:
            self._read_meanwhile(process)
        except AssertionError as exc:
            self._record(exc)
            raise

    def _read_meanwhile(self, process: int) -> None:
        assert self.bound is not None
        self.meanwhile += 1
        if self.refresher is None or self.refresher.done:
            return  # no refresher was held (the window was missed): nothing to read beside
        task = self._spawn_reader(process)
        waited = self._served_alone(task)
        seen = self.clock.now()  # every call the reader made so far ended before this
        if seen >= self.judged_until:
            return  # the old entry may be gone: a miss, a wait and a compute are allowed
        assert self.held is not None
        because = (
            f"{self.bound.describe()}: the entry is live until t={self.held[0]:.6g} by the "
            f"cache's clock, every call of {task.name} ended by t={seen:.6g}, and "
            f"{self.refresher.name} is already refreshing it (stale-while-revalidate)"
        )
        self._judge_meanwhile(task, waited, because)

    @precondition(lambda self: self._refreshing())
    @rule()
    def finish_refresh(self) -> None:
        """The refresher's compute ends (a real sleep), and its value replaces the old one."""
        self.attempt, self.judged_until = False, -math.inf
        if self.refresher is None:
            return
        try:
            super().finish_refresh()
        except AssertionError as exc:
            self._record(exc)
            raise


# The real-time machine of each harness machine.
_KINDS: dict[type[RefreshMachine], type[_RealTime]] = {
    SteadyReadsMachine: RealTimeSteadyReads,
    RevalidateMachine: RealTimeRevalidate,
}


@dataclasses.dataclass(frozen=True)
class RefreshCheck(realtime.RealTimeMachineCheck):
    """A refresh machine in real time, at ``share`` of the real-time examples (fewer where
    each example sleeps seconds)."""

    share: float = 1.0

    def run(self, settings: Settings, seed_value: int, examples: int) -> None:
        super().run(settings, seed_value, max(2, round(examples * self.share)))


def build(
    name: str, target: Target, plan: type[RefreshMachine], strategies: Strategies, g: Guarantees
) -> realtime.RealTimeMachineCheck:
    """The real-time check of the refresh machine ``plan`` for ``target``, on configurations
    whose TTLs ``g``'s resolution can tell apart."""
    kind = _KINDS[plan]
    steady = kind is RealTimeSteadyReads
    if not _coarse(g):
        drawn = configs(FINE_TTLS, FINE_READS, FINE_MARGIN)
    elif steady:
        drawn = configs(COARSE_STEADY_TTLS, COARSE_STEADY_READS, COARSE_MARGIN)
    else:
        drawn = configs(COARSE_REVALIDATE_TTLS, COARSE_REVALIDATE_READS, COARSE_MARGIN)
    shared = st.shared(drawn, key=f"cachespec-rt-refresh-{name}")

    def field(key: str) -> st.SearchStrategy[Any]:
        return shared.map(lambda config: config[key])

    @initialize(
        ttl=field("ttl"),
        compute=field("compute"),
        read_every=field("read_every"),
        lease_ttl=field("lease_ttl"),
        refresh_before=field("refresh_before"),
        beta=field("beta"),
        draw=field("draw"),
        callers=field("callers"),
        processes=field("processes"),
    )
    def configure(self: _RealTime, **fields: Any) -> None:
        RefreshMachine.configure(self, **fields)
        self.configured()

    failures: list[AssertionError] = []
    namespace = {
        "target": target,
        "strategies": strategies,
        "guarantees": g,
        "failures": failures,
        "waited_out": [],
        "configure": configure,
    }
    machine = type(name + "RT", (kind,), namespace)
    share = COARSE_STEADY_SHARE if steady and _coarse(g) else 1.0
    return RefreshCheck(machine, failures, share)


def runs_here(prop_id: str, target: Target) -> bool:
    """Whether ``prop_id`` runs in real time on ``target`` by this module."""
    return prop_id in PROPERTIES and stillclock.stands_still(target)
