"""The ``faults.ring_*`` properties: what a memcached ring promises while one of its nodes is
killed (-9), stopped (SIGSTOP/SIGCONT) or restarted mid-run, and once it is back.

A trial is a :class:`~cachespec.conformance.faults.Trial` (the single-server faults' workloads,
checks and story) on a ``memcached-ring`` target, with two differences:

* the fault hits one node, the *victim*: the node a key of the trial lives on, never the one
  that holds the namespace counter (on that one every call fails, and nothing remaps), except
  for ``ring_clear``, whose victim is the counter's node;
* the backend drops a node at its first failure (``retry_attempts=1``) and times its
  ``dead_timeout`` by the harness's clock; once the node answers again, the trial moves the
  clock past that timeout, so the backend puts the node back at its next call. No wait on the
  wall clock (docs/design.md, "The memcached ring").

The properties:

* ``ring_calls``, ``ring_keys``: the single-server ``calls`` and ``keys`` workloads (every
  call returns or raises a CacheError within a bounded wait; no value under another key);
* ``ring_recovers``, the efficacy twin of ``ring_calls``: once the node is back, every kind
  of call goes through again, and a key that hashes to the node is stored and read there;
* ``ring_bounds``: cache-aside reads and write-through (the strategies) while the victim is
  away and once it is back: after a write-through or invalidation returned, no read returns
  an older version, and past the fill TTL none returns a superseded one;
* ``ring_returning``: the returning-node rule on raw entries: a value written before a newer
  write or a delete of its key returned is never read again, neither by the client that saw
  the node go and come back nor by one that opens once it is back;
* ``ring_clear``: a ``clear`` that returned while the counter's node was away is never undone
  when the node comes back (read by a client that opens then).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, cast

from cachespec.backends import NO_VALUE, Backend

from .checks import CannotCheck, CheckFailed
from .faults import KEYS, TIMEOUT, WORKLOADS, Trial, quiet_fall_through
from .outages import outage
from .servers.base import HOST
from .servers.managed import ManagedServer
from .servers.ring import MEMCACHED_RING, MemcachedRingServer
from .staleness import Strategies
from .target import ServerTarget

__all__ = ["DEAD_TIMEOUT", "RING_WORKLOADS", "RingTrial", "RingWorkload", "run_ring_trial"]

#: The backend's ``dead_timeout`` in a trial, on the harness's clock: moved past once the
#: victim answers again. Short next to the fill TTL, so no cached entry expires for it.
DEAD_TIMEOUT: Final = 5.0
_PLACEMENTS: Final = 16  # clears tried until a key of the trial lives off the counter's node


class _RingView:
    """The target as a :class:`~cachespec.conformance.faults.Trial` sees it: its server is the
    whole ring (``ServerTarget.server`` wants one process), and a backend it opens drops a
    node at its first failure (``retry_attempts=1``) and puts it back ``DEAD_TIMEOUT`` later."""

    def __init__(self, target: ServerTarget) -> None:
        self.target = target

    def session(self) -> Any:
        return self.target.session()

    def server(self) -> Any:
        return self.target._started()

    def open_with(self, namespace: str, **options: str) -> Backend:
        return self.target.open_with(
            namespace,
            **options,
            retry_attempts="1",
            retry_timeout="0",
            dead_timeout=str(DEAD_TIMEOUT),
        )


class RingTrial(Trial):
    """A trial whose fault is one node's (module docstring)."""

    ring: MemcachedRingServer
    victim: ManagedServer  # the node the fault hits
    victim_key: str  # a key on it when the trial starts
    written: Iterator[int]  # the raw writes' numbers
    raw_floor: dict[str, int]  # per key: the oldest raw write a read may still return

    def __init__(
        self,
        target: ServerTarget,
        strategies: Strategies,
        n: int,
        checks: Any,
        *,
        on_counter: bool = False,
    ) -> None:
        if target.server_kind is not MEMCACHED_RING:
            raise CannotCheck(
                f"faults.ring_* stop and kill one node of a memcached ring the harness "
                f"started; {target.name} is not one (check `cachespec check memcached-ring`)"
            )
        self.view = _RingView(target)
        super().__init__(cast(ServerTarget, self.view), strategies, n, checks)
        self._time_failures(self.backend)
        ring = self.server
        if not isinstance(ring, MemcachedRingServer):
            raise CheckFailed(f"{target.name} started {ring!r}, not a memcached ring")
        self.ring = ring
        self.victim_key, self.victim = self._place(on_counter)
        self.written = itertools.count(1)
        self.raw_floor = dict.fromkeys(KEYS, 0)  # per key: the oldest raw write still readable

    def open(self) -> Backend:
        """Another backend on the ring, as the trial's own was opened."""
        backend = self.view.open_with(f"faults-{self.n}", timeout=str(TIMEOUT))
        self._time_failures(backend)
        return backend

    def _time_failures(self, backend: Backend) -> None:
        """The backend's node failures on the harness's clock (``use_clock``)."""
        use_clock: Callable[[Callable[[], float]], None] | None = getattr(
            backend, "use_clock", None
        )
        if use_clock is None:
            raise CheckFailed(f"{backend!r} is not a memcached ring backend")
        use_clock(self.clock.now)

    def _node(self, name: str) -> ManagedServer:
        for node in self.ring.nodes:
            if f"{HOST}:{node.port}" == name:
                return node
        raise CheckFailed(f"the backend names a node the ring does not have: {name}")

    def _place(self, on_counter: bool) -> tuple[str, ManagedServer]:
        """The key whose node the fault hits, and that node: off the counter's node (or on
        it, ``on_counter``). A clear moves every key to a node drawn anew (the generation is
        part of the key): tried until one fits."""
        backend: Any = self.backend
        home = backend.counter_node
        if on_counter:
            return KEYS[0], self._node(home)
        for _ in range(_PLACEMENTS):
            for key in KEYS:
                node = backend.node_of(key)
                if node != home:
                    return key, self._node(node)
            backend.clear()
        raise CheckFailed(f"every key stayed on the counter's node through {_PLACEMENTS} clears")

    # ----------------------------------------------------------------------- raw entries
    def ring_set(self, key: str) -> None:
        """A raw write of a numbered value; once it returns, every older one is superseded."""
        number = next(self.written)
        value = f"{key}/{self.n}/{number}".encode()
        outcome = self.call(f"set({key!r}, {value!r})", lambda: self.backend.set(key, value))
        if outcome.error is None:
            self.raw_floor[key] = number

    def ring_delete(self, key: str) -> None:
        """A raw invalidation; once it returns, no value written before it may be read."""
        number = next(self.written)
        if self.call(f"delete({key!r})", lambda: self.backend.delete(key)).error is None:
            self.raw_floor[key] = number

    def ring_clear(self) -> None:
        """A clear; once it returns, no value written before it may be read."""
        number = next(self.written)
        if self.call("clear()", self.backend.clear).error is None:
            self.raw_floor = dict.fromkeys(KEYS, number)

    def ring_read(self, backend: Backend, who: str) -> None:
        for key in KEYS:
            outcome = self.call(f"{who} get({key!r})", functools.partial(backend.get, key))
            value = outcome.value
            if outcome.error is not None or value is NO_VALUE:
                continue
            prefix = f"{key}/{self.n}/".encode()
            if not (isinstance(value, bytes) and value.startswith(prefix)):
                raise self.failure(f"get({key!r}) returned {value!r}, never written under it")
            number = int(value[len(prefix) :])
            if number < self.raw_floor[key]:
                raise self.failure(
                    f"{who} get({key!r}) returned {value!r}, superseded by write "
                    f"{self.raw_floor[key]}, which returned while node {self.victim.port} was "
                    "away: the node brought back an entry nobody invalidated on it"
                )

    def fresh_read(self) -> None:
        """Read every key through a client that opens now (it sees every node as live)."""
        other = self.open()
        try:
            self.ring_read(other, "a new client's")
        finally:
            other.close()

    def trip(self) -> None:
        """A read of the victim's key: it fails, and the backend drops the node."""
        self.call(f"get({self.victim_key!r})", lambda: self.backend.get(self.victim_key))

    def keys_on_the_victim(self, count: int) -> list[str]:
        """``count`` keys that live on the victim now (after the backend settled: call it
        after a call that put the node back)."""
        backend: Any = self.backend
        name = f"{HOST}:{self.victim.port}"
        found = [f"probe-{i}" for i in range(1000) if backend.node_of(f"probe-{i}") == name]
        if len(found) < count:
            raise CheckFailed(f"fewer than {count} of 1000 keys live on node {name}")
        return found[:count]

    def node_returns(self) -> None:
        """Past ``dead_timeout`` on the harness's clock: the next call puts the node back."""
        self.phase = "after the node came back"
        self.clock.advance_to(self.clock.now() + DEAD_TIMEOUT + 1.0)


@dataclass(frozen=True)
class RingWorkload:
    """Before, during the victim's outage, once it answers (the backend still counts it
    dead), and once the backend put it back; then past the fill TTL."""

    checks: Any
    before: Callable[[RingTrial], None]
    during: Callable[[RingTrial], None]
    answering: Callable[[RingTrial], None]
    back: Callable[[RingTrial], None]
    past_ttl: Callable[[RingTrial], None] | None = None
    on_counter: bool = False


def run_ring_trial(
    target: ServerTarget, strategies: Strategies, n: int, workload: RingWorkload
) -> None:
    """One trial of ``workload`` through ``FAULTS[n % 3]`` on one node; raises CheckFailed
    on a broken promise."""
    with quiet_fall_through():
        trial = RingTrial(target, strategies, n, workload.checks, on_counter=workload.on_counter)
        try:
            workload.before(trial)
            with outage(trial.victim, trial.fault):
                trial.phase = "during the outage"
                workload.during(trial)
            trial.phase = "after the outage"
            workload.answering(trial)
            trial.node_returns()
            workload.back(trial)
            if workload.past_ttl is not None:
                trial.past_the_ttl()
                workload.past_ttl(trial)
        finally:
            trial.close()


# ------------------------------------------------------------------------------ workloads
def _nothing(t: RingTrial) -> None:
    del t


def _read_all(t: Trial) -> None:
    for key in KEYS:
        t.read(key)


def _bounds_during(t: RingTrial) -> None:
    t.trip()
    t.write_through(t.victim_key)  # to a stand-in node, once the victim is dropped
    for key in KEYS:
        if key != t.victim_key:
            t.invalidate(key)
    t.read(t.victim_key)


def _returning_before(t: RingTrial) -> None:
    for key in KEYS:
        t.ring_set(key)
    t.ring_read(t.backend, "the client's")


def _returning_during(t: RingTrial) -> None:
    t.trip()
    for key in KEYS:
        t.ring_set(key)  # the victim's keys go to stand-ins
    t.ring_read(t.backend, "the client's")
    t.ring_delete(t.victim_key)  # an invalidation while the node is away


def _returning_answering(t: RingTrial) -> None:
    t.fresh_read()  # every node live to it, the victim with its old entries
    t.ring_read(t.backend, "the client's")


def _returning_back(t: RingTrial) -> None:
    t.ring_read(t.backend, "the client's")  # the victim back in its ring
    t.fresh_read()
    for key in KEYS:
        t.ring_set(key)
    t.ring_read(t.backend, "the client's")


def _keys_before(t: RingTrial) -> None:
    for key in KEYS:
        t.raw_set(key)
    for key in KEYS:
        t.raw_get(key)


def _keys_during(t: RingTrial) -> None:
    t.raw_get(t.victim_key)  # fails: a reply may arrive late on its connection
    t.raw_get_many(KEYS)


def _keys_answering(t: RingTrial) -> None:
    for key in reversed(KEYS):
        t.raw_get(key)


def _keys_back(t: RingTrial) -> None:
    # Put the victim back without a read: a read might meet the late reply under its own key.
    backend: Any = t.backend
    t.call(f"node_of({KEYS[0]!r})", lambda: backend.node_of(KEYS[0]))
    # One-key gets on the victim first: a connection left holding a late reply answers the
    # first call sent on it, and a write would find the reply out of step instead.
    probes = t.keys_on_the_victim(3)
    for key in probes:
        t.raw_get(key)
    t.raw_get_many(KEYS)
    for key in (*probes, *KEYS):
        t.raw_set(key)
        t.raw_get(key)


def _recovers_back(t: RingTrial) -> None:
    """Every kind of call goes through again, and the node is used again: a key that hashes
    to it is stored and read back."""
    RECOVERS.after(t)
    backend: Any = t.backend
    t.call(f"node_of({KEYS[0]!r})", lambda: backend.node_of(KEYS[0]))  # puts the node back
    (key,) = t.keys_on_the_victim(1)
    t.goes_through(f"set({key!r})", lambda: t.backend.set(key, b"back"))
    outcome = t.call(f"get({key!r})", lambda: t.backend.get(key))
    if outcome.value != b"back":
        raise t.failure(
            f"get({key!r}) returned {outcome.value!r} after set({key!r}, b'back') on node "
            f"{t.victim.port}, which is back: a node that comes back must serve again"
        )


def _clear_during(t: RingTrial) -> None:
    t.trip()
    t.ring_clear()  # raises while the counter's node is away, unless it remaps


RECOVERS: Final = WORKLOADS["recovers"]


def _tripping(during: Callable[[Trial], None]) -> Callable[[RingTrial], None]:
    """``during``, after a read of the victim's key. A single server's workload calls keys
    that may all live on other nodes (where a key lives depends on the namespace's random
    generation): the victim then never failed a call, was never dropped, and the trial
    checked nothing of an outage (a CI run saw ring_never_puts_a_node_back pass so)."""

    def tripped(t: RingTrial) -> None:
        t.trip()
        during(t)

    return tripped


def _generic(name: str) -> RingWorkload:
    """A single-server workload (faults.WORKLOADS) with the victim's outage."""
    workload = WORKLOADS[name]
    return RingWorkload(
        workload.checks,
        workload.before,
        _tripping(workload.during),
        _nothing,
        workload.after,
        workload.past_ttl,
    )


RING_WORKLOADS: Final[dict[str, RingWorkload]] = {
    "calls": _generic("calls"),
    # The efficacy twin of ring_calls (a client that raises for ever passes that one).
    "recovers": RingWorkload(
        RECOVERS.checks, RECOVERS.before, _tripping(RECOVERS.during), _nothing, _recovers_back
    ),
    "keys": RingWorkload(
        WORKLOADS["keys"].checks, _keys_before, _keys_during, _keys_answering, _keys_back
    ),
    "bounds": RingWorkload(
        WORKLOADS["bounds"].checks,
        WORKLOADS["bounds"].before,
        _bounds_during,
        _read_all,
        _read_all,
        _read_all,
    ),
    "returning": RingWorkload(
        WORKLOADS["keys"].checks,
        _returning_before,
        _returning_during,
        _returning_answering,
        _returning_back,
    ),
    "clear": RingWorkload(
        WORKLOADS["keys"].checks,
        _returning_before,
        _clear_during,
        _returning_answering,
        _returning_back,
        on_counter=True,
    ),
}
