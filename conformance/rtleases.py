"""``single_flight.one_owner`` and ``takeover`` in real time: a fill lease on a server whose
clock the harness cannot move.

A lease is free again once its time is over: a caller may take over from a holder that
died or hangs, and only one caller owns the lease at a time. On a server the user runs
(``redis://host``) that time is the server's own clock at work, so the flight machine
(:mod:`.flights`) runs on the machine's monotonic clock (:class:`.realtime.RealClock`), the
strategies read that same clock, and each judgement stands only on times measured around
the calls, with the lease's window ``[expiry, expiry + resolution + SLACK]`` on its lenient
side:

* a lease granted by an ``add`` measured over ``[as, ae]`` may be gone from
  ``as + ttl - SLACK`` and is surely gone from ``ae + ttl + resolution + SLACK``;
* ``one_owner``: a grant (or another's delete) conflicts with that lease only when the
  whole call ended before its earliest expiry;
* ``takeover``: a dead holder's lease still in the key is a violation only when the read
  that found it started after the lease was surely gone, or when it was granted with no
  TTL (or one the server cannot have run out by then) and nothing wrote it again: the
  server then keeps it past that instant unless a live caller replaces it.

Lease and fill TTLs are short ones the declared resolution can tell (``realtime.ttl_pool``),
and the only sleeps are to just past a lease's surely-gone instant, a share of the lease
time, and a quarter lease where every caller waits, within one window per example
(``realtime.allowance``). docs/design.md, "Leases in real time", has the decisions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from cachespec.backends import Backend
from cachespec.backends.cache import is_lease
from cachespec.spec import Guarantees, Violation

from . import realtime, stillclock
from .flights import KEY, FlightMachine, FlightPlan, LeaseLedger, _Lease
from .interleave import Task
from .staleness import Strategies
from .target import Target
from .wrapped import Wrapped

# The properties that run here, by id (runner.in_real_time, Property.real_time).
PROPERTIES = ("single_flight.one_owner", "single_flight.takeover")
# The shares of the lease time the advance rule sleeps.
SHARES = (0.5, 1.0)


class RealTimeLedger(LeaseLedger):
    """The lease ledger on measured times: a lease counts as live only while it surely is
    (before ``as + ttl - SLACK``), and a conflict is only a call that ended before that."""

    def __init__(
        self, inner: Backend, owner_of: Callable[[], Task | None], now: Callable[[], float]
    ) -> None:
        super().__init__(inner, owner_of, now)
        # Leases whose bytes were written again after their grant (by set, set_many,
        # compare_and_set or another add): the entry may no longer have the grant's TTL.
        self.rewritten: set[bytes] = set()

    def _call(self, name: str, *args: Any) -> Any:
        result = super()._call(name, *args)
        written: list[Any] = []
        if name == "set":
            written = [args[1]]
        elif name == "compare_and_set":
            written = [args[2]]
        elif name == "set_many":
            written = list(dict(args[0]).values())
        granted = {x.token for x in self.leases}
        self.rewritten.update(v for v in written if v in granted)
        return result

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        started = self.now()
        granted = Wrapped.add(self, key, value, ttl)
        owner = self.owner_of()
        if granted and any(x.token == value for x in self.leases):
            self.rewritten.add(value)
        if granted and owner is not None and is_lease(value):
            ended = self.now()  # every instant of this grant precedes it
            for held in self.live(ended):
                self.conflicts.append(
                    (
                        f"add({key!r}, <lease>) ({owner.name}, ended at t={ended:.3f})",
                        f"granted a lease while {held.owner.name}'s (granted by t="
                        f"{held.taken_at:.3f}, live at least until t={held.expires_at:.3f}) was "
                        "neither released by its owner nor expired",
                    )
                )
            # taken_at: the latest instant the server can have started the lease's TTL
            # (takeover's lenient side); expires_at: the earliest it may end (one_owner's).
            earliest = math.inf if ttl is None else started + ttl - realtime.SLACK
            self.leases.append(_Lease(value, owner, ended, earliest))
        return granted

    def delete(self, key: str) -> None:
        deleter = self.owner_of()
        raw = self.inner.get(key)
        Wrapped.delete(self, key)
        ended = self.now()  # the lease was live through both calls only if live at this
        for lease in self.live(ended):
            if deleter is not None and lease.token == raw:
                if lease.owner is deleter:
                    lease.released = True
                else:
                    self.conflicts.append(
                        (
                            f"delete({key!r}) ({deleter.name}, ended at t={ended:.3f})",
                            f"deleted {lease.owner.name}'s live lease (granted by t="
                            f"{lease.taken_at:.3f}): released by a caller that does not own it",
                        )
                    )
        for lease in self.leases:  # its own, whether or not the server still held it
            if deleter is not None and lease.token == raw and lease.owner is deleter:
                lease.released = True


class RealTimeFlightMachine(realtime.RealTimeCallers, FlightMachine):
    """The flight machine on the real clock (see the module docstring)."""

    ledger_kind = RealTimeLedger

    def _let_time_pass(self) -> None:
        # Every caller waits: a quarter lease passes, for real. Where the allowance refuses
        # it, no time passes, and as on a still clock the example ends after 16 rounds.
        before = self.real_clock.slept
        self.real_clock.advance_to(self.real_clock.now() + self.lease_ttl / 4)
        if self.real_clock.slept == before:
            self.standstill()

    def _record(self, exc: AssertionError) -> None:
        self.broken = True
        if not self.failures:
            self.failures.append(exc)

    def _collect(self) -> None:
        try:
            if self.plan.claim == "takeover":
                self._judge_unexpiring()
            super()._collect()
        except AssertionError as exc:
            self._record(exc)
            raise

    def _run_to_end(self, task: Task) -> None:
        try:
            super()._run_to_end(task)
        except AssertionError as exc:
            self._record(exc)
            raise

    def _surely_free(self, lease: _Lease) -> float:
        """Just past the instant ``lease`` is surely gone from the server."""
        return float(lease.taken_at + self.lease_ttl + self.resolution + realtime.SLACK)

    def _dead_edge(self) -> float | None:
        """The next instant a dead holder's lease is surely gone by, if one is ahead."""
        now = self.real_clock.now()
        edges = [
            self._surely_free(x)
            for x in self.ledger.leases
            if x.owner.abandoned and not x.released and self._surely_free(x) > now
        ]
        return min(edges, default=None)

    def _judge_dead_leases(self) -> None:
        try:
            self._judge_takeover()
        except AssertionError as exc:
            self._record(exc)
            raise

    def _judge_unexpiring(self) -> None:
        """A dead holder's lease in the key now, granted with no TTL or one the server cannot
        have run out by the instant it must be gone: unless a live caller replaces it, the
        key holds it past that instant, which the harness may reach by sleeping (and does,
        where the allowance lets it). Where the resolution is coarse (memcached's 4.5 s)
        callers waiting out the lease on their own clock take it over first, so this is
        how a lease without expiry shows there (docs/design.md, "Leases in real time")."""
        ledger = self.ledger
        assert isinstance(ledger, RealTimeLedger)  # ledger_kind
        doomed = [
            x
            for x in ledger.leases
            if x.owner.abandoned
            and not x.released
            and x.token not in ledger.rewritten
            and x.expires_at > self._surely_free(x)
        ]
        if not doomed:
            return
        raw = ledger.inner.get(KEY)  # the backend itself: not a scheduled call
        now = self.real_clock.now()  # after the read: it found the lease by then
        for lease in doomed:
            if lease.token != raw:
                continue
            ttl = (
                "no TTL"
                if math.isinf(lease.expires_at)
                else f"a TTL it may outlive only from t={lease.expires_at:.3f}"
            )
            raise Violation(
                f"at t={now:.3f}, the entry of {KEY!r}",
                f"is still the lease {lease.owner.name} took by t={lease.taken_at:.3f} before "
                f"its process died, granted with {ttl}: the server keeps it past "
                f"t={self._surely_free(lease):.3f}, when it must be gone, unless a live "
                "caller replaces it",
                f"the key free of it within the lease time ({self.lease_ttl:g} s, plus the "
                f"backend's resolution of {self.resolution:g} s): a dead holder's lease "
                "must expire",
            )

    # The rules that move time: preconditions that never depend on when calls ran, so that
    # Hypothesis's replay draws the same program (docs/design.md, "Real time").
    @precondition(lambda self: self.plan.moves_time)
    @rule(share=st.sampled_from(SHARES))
    def advance(self, share: float) -> None:
        """``share`` of the lease time passes (a fill's too: both are drawn short)."""
        self.real_clock.advance_to(self.real_clock.now() + share * self.lease_ttl)
        self._collect()

    @precondition(lambda self: self.plan.crashes)
    @rule()
    def past_the_lease(self) -> None:
        """Sleep to just past the instant the next dead holder's lease is surely gone, and
        read the key: it must no longer be that lease (whoever else may be waiting)."""
        edge = self._dead_edge()
        if edge is not None:
            self.real_clock.advance_to(edge)
            self._judge_dead_leases()

    @precondition(lambda self: self.plan.outlives_leases and self._holder() is not None)
    @rule(fails=st.booleans())
    def outlive_lease(self, fails: bool) -> None:
        """As on the harness clock, but to just past the instant the holder's lease is
        surely gone (its measured grant, the resolution and the slack)."""
        holder = self._holder()
        assert holder is not None
        mine = [x for x in self.ledger.leases if x.owner is holder.task and not x.released]
        if mine and not math.isinf(mine[-1].expires_at):
            self.real_clock.advance_to(self._surely_free(mine[-1]))
        else:  # no lease, or one with no TTL: only the lease time shows it
            self.real_clock.advance_to(self.real_clock.now() + self.lease_ttl + self.resolution)
        self.call_into_compute(holder.process + 1, fails)

    def teardown(self) -> None:
        """First sleep to just past a dead holder's lease, within one window more, and
        judge it there (the callers' takeovers would replace it); then as on any clock."""
        self.real_clock.allowance = self.real_clock.slept + self._allowance()
        try:
            edge = None if self.broken else self._dead_edge()
            if edge is not None and self.plan.claim == "takeover":
                self.real_clock.advance_to(edge)
                self._judge_dead_leases()
        except BaseException:
            self.scheduler.close()
            self.session.close()
            raise
        super().teardown()


def build(
    name: str,
    target: Target,
    plan: FlightPlan,
    strategies: Strategies,
    g: Guarantees,
    *,
    machine: type[RealTimeFlightMachine] = RealTimeFlightMachine,
) -> realtime.RealTimeMachineCheck:
    """The real-time check of ``plan`` for ``target`` by ``machine`` (rthangs.py has its
    own), with lease and fill TTLs drawn from those ``g``'s resolution can tell apart."""
    pool = realtime.ttl_pool(g)

    @initialize(lease_ttl=st.sampled_from(pool), fill_ttl=st.sampled_from(pool))
    def configure(self: FlightMachine, lease_ttl: float, fill_ttl: float) -> None:
        FlightMachine.configure(self, lease_ttl, fill_ttl)

    namespace = {"target": target, "plan": plan, "strategies": strategies, "guarantees": g}
    return realtime.machine_check(name, machine, namespace, configure)


def runs_in_real_time(prop_id: str) -> bool:
    return prop_id in PROPERTIES


def runs_here(prop_id: str, target: Target) -> bool:
    """Whether ``prop_id`` runs in real time on ``target`` by this module."""
    return prop_id in PROPERTIES and stillclock.stands_still(target)
