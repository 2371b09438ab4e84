"""The ``faults.cluster_*`` properties: what a backend on the harness's Redis Cluster, and the
strategies over it, promise while a master fails and its replica takes its place.

A trial opens the backend with a short ``timeout``, runs a workload in five phases and
judges every call (docs/design.md, "Failover"):

1. *before the fault*: the cluster whole;
2. *just before the fault*: writes that the fault may lose; in the third trial
   (``NodeFault.LOSE``) the replica never receives them, so the failover loses them;
3. *master down*: the master holding most of the trial's keys is stopped (SIGSTOP) or
   killed (-9), and not replaced yet
   (:func:`~cachespec.conformance.servers.failover.node_fault`);
4. *after the failover*: its replica serves its slots, which the client learns by a
   ``MOVED`` reply or a connection error; the old master is still down;
5. *after the node is back*: continued or started again, a replica of the new master;
6. *past the fill TTL*: the harness's clock moved past every fill TTL.

The checks, each on every call of the phases its promise covers:

* ``calls``: every call returns or raises a ``CacheError``, within a bounded wait;
* ``recovers``, the efficacy twin of ``calls``: once the cluster is whole, every kind of
  call goes through again;
* ``keys``: a read returns a value that was written under its key or a miss, never another
  key's value nor one never written (a lost write reads as an older value or a miss);
* ``bounds``: reads through the strategies return a version the source held; once the node
  is back, a read after a write-through or invalidation returned is fresh; and past the
  fill TTL every read is fresh, whatever writes the failover lost.

The declared loss (:class:`~cachespec.spec.AsyncReplicaFailover`): a write acknowledged
before the failover may be lost, so phases 1-4 raise no floor under a key's versions; from
phase 5 on the cluster has no failover pending, and an acknowledged write holds.

The trial reuses :class:`~cachespec.conformance.faults.Trial`'s calls and judgements (one
home for them); only where the server is, what a fault is, and the floors differ.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cachespec.backends import NO_VALUE, Backend

from .checks import CannotCheck
from .faults import FILL_TTL, KEYS, TIMEOUT, Checks, Trial, quiet_fall_through
from .outages import FAULTS
from .servers import ManagedServer
from .servers.cluster import RedisClusterServer
from .servers.failover import NODE_FAULTS, NodeFault, master_of, node_fault
from .staleness import Strategies
from .target import ServerTarget

__all__ = ["CLUSTER_WORKLOADS", "ClusterTrial", "ClusterWorkload", "run_cluster_trial"]

_PHASES: Final = (
    "before the fault",
    "just before the fault",
    "master down",
    "after the failover",
    "after the node is back",
)


class ClusterTrial(Trial):
    """A :class:`Trial` on the harness's cluster: a master of the trial's keys fails."""

    def __init__(self, target: ServerTarget, strategies: Strategies, n: int, checks: Checks):
        # Trial.__init__ asks the target for one server process; a cluster is six, so the
        # state is built here (the same fields: the calls and judgements are Trial's).
        self.n = n
        self.fault = FAULTS[0]  # unused: Trial's field; the node's fault is node_fault
        self.node_fault: NodeFault = NODE_FAULTS[n % len(NODE_FAULTS)]
        self.checks = checks
        self.strategies = strategies
        # The session first: opening one replaces a cluster whose clock has run its span.
        self.session = target.session()
        self.clock = self.session.clock
        try:
            running = target.running()
            if not isinstance(running, RedisClusterServer) or running.clock is None:
                raise CannotCheck(
                    f"{target.name}: the cluster faults need a Redis Cluster the harness "
                    "started, on its clock (`cachespec check redis-cluster`)"
                )
            self.cluster = running
            namespace, self.victim = self._placed(n)
            self.backend: Backend = target.open_with(namespace, timeout=str(TIMEOUT))
        except BaseException:
            self.session.close()
            raise
        self._build_world(_PHASES[0])
        # Per key, every raw value a set was sent with, acknowledged or not (a set that
        # timed out may have been applied): what a read may return besides a miss.
        self.written: dict[str, set[bytes]] = {key: set() for key in KEYS}
        # Per key, the value of its last set that returned once writes hold (phase 5): a
        # read must return it (the efficacy half of ``keys``: a backend that misses every
        # read after a failure is safe, and no cache).
        self.acknowledged: dict[str, bytes] = {}

    @property
    def fault_name(self) -> str:
        return self.node_fault.value

    def _placed(self, n: int) -> tuple[str, ManagedServer]:
        """A namespace whose keys ``k0`` and ``k1`` sit on one master and ``k2`` on another,
        and that master, which the fault fails: every trial meets a failed master and a
        healthy one (the names are the plain namespace's, cluster.py; the cache's key is
        the trial's key)."""
        # Imported here: every property module is imported with the suite, and redis-py is
        # the redis extra's (`pip install cachespec` alone checks memory://).
        from redis.crc import key_slot  # noqa: PLC0415

        from cachespec.backends.redis.cluster import NO_HASH_TAG  # noqa: PLC0415
        from cachespec.backends.redis.layout import namespace_base  # noqa: PLC0415

        for attempt in itertools.count():
            namespace = f"cluster-faults-{n}-{attempt}"
            prefix = NO_HASH_TAG + namespace_base(namespace) + b":"
            owners = [master_of(self.cluster, key_slot(prefix + key.encode())) for key in KEYS]
            if owners[0] is owners[1] is not owners[2]:
                return namespace, owners[0]
        raise AssertionError("unreachable: itertools.count() never ends")

    # The declared loss: before the node is back, an acknowledged write may be lost, so it
    # raises no floor (module docstring).
    def _holds_writes(self) -> bool:
        return self.phase not in _PHASES[:4]

    def write_through(self, key: str) -> None:
        floor = self.floor[key]
        super().write_through(key)
        if not self._holds_writes():
            self.floor[key] = floor

    def invalidate(self, key: str) -> None:
        floor = self.floor[key]
        super().invalidate(key)
        if not self._holds_writes():
            self.floor[key] = floor

    def raw_set(self, key: str) -> None:
        value = f"{key}/{self.n}/{next(self._raw)}".encode()
        self.written[key].add(value)  # before the call: a set that raised may have landed
        label = f"set({key!r}, {value!r})"
        outcome = self.call(label, lambda: self.backend.set(key, value, FILL_TTL))
        if outcome.error is None and self._holds_writes():
            self.acknowledged[key] = value
        else:
            self.acknowledged.pop(key, None)

    def _judge_raw(self, key: str, value: object, label: str) -> None:
        super()._judge_raw(key, value, label)
        if self.checks.keys and value is not NO_VALUE and value not in self.written[key]:
            raise self.failure(
                f"{label} returned {value!r}, which was never written under {key!r} (a write "
                "the failover lost may read as an older value or a miss, nothing else)"
            )
        if self.checks.keys and key in self.acknowledged and value != self.acknowledged[key]:
            raise self.failure(
                f"{label} returned "
                + ("a miss" if value is NO_VALUE else repr(value))
                + f" right after set({key!r}, {self.acknowledged[key]!r}) was acknowledged, "
                "with the cluster whole and no failover pending: it must read back"
            )


@dataclass(frozen=True)
class ClusterWorkload:
    """What a property runs in each phase (module docstring), and past the fill TTL."""

    checks: Checks
    before: Callable[[ClusterTrial], None]
    doomed: Callable[[ClusterTrial], None]  # just before the fault: writes it may lose
    down: Callable[[ClusterTrial], None]
    failed_over: Callable[[ClusterTrial], None]
    back: Callable[[ClusterTrial], None]
    past_ttl: Callable[[ClusterTrial], None] | None = None


def run_cluster_trial(
    target: ServerTarget, strategies: Strategies, n: int, workload: ClusterWorkload
) -> None:
    """One trial of ``workload`` through ``NODE_FAULTS[n % 2]``; raises CheckFailed on a
    broken promise."""
    with quiet_fall_through():
        trial = ClusterTrial(target, strategies, n, workload.checks)
        try:
            _run(trial, workload)
        finally:
            trial.close()


def _run(trial: ClusterTrial, workload: ClusterWorkload) -> None:
    workload.before(trial)
    victim = trial.victim
    assert victim in trial.cluster.masters

    def doomed() -> None:
        trial.phase = _PHASES[1]
        workload.doomed(trial)

    with node_fault(trial.cluster, victim, trial.node_fault, doomed) as failover:
        trial.phase = _PHASES[2]
        workload.down(trial)
        failover.promote()
        trial.phase = _PHASES[3]
        workload.failed_over(trial)
    trial.phase = _PHASES[4]
    workload.back(trial)
    if workload.past_ttl is not None:
        trial.past_the_ttl()
        workload.past_ttl(trial)


# ------------------------------------------------------------------------------ workloads
def _read_all(t: ClusterTrial) -> None:
    for key in KEYS:
        t.read(key)


def _calls(t: ClusterTrial) -> None:
    """One of every kind of call, each on keys of its own phase's."""
    b, key = t.backend, f"raw-{t.phase.split()[0]}-{t.phase.split()[-1]}"
    t.call(f"get({key!r})", lambda: b.get(key))
    t.call(f"set({key!r})", lambda: b.set(key, b"v", FILL_TTL))
    t.call(f"add({key!r})", lambda: b.add(key + "-a", b"v", FILL_TTL))
    t.call(f"get_many({list(KEYS)!r})", lambda: b.get_many([key, *KEYS]))
    t.call(f"set_many({list(KEYS)!r})", lambda: b.set_many(dict.fromkeys(KEYS, b"m"), FILL_TTL))
    t.call(f"compare_and_set({key!r})", lambda: b.compare_and_set(key, b"v", b"w", FILL_TTL))
    t.call(f"compare_and_delete({key!r})", lambda: b.compare_and_delete(key, b"w"))
    t.call(f"delete_many({list(KEYS)!r})", lambda: b.delete_many(KEYS))
    t.call(f"delete({key!r})", lambda: b.delete(key))
    t.read(KEYS[0])
    t.write_through(KEYS[1])
    t.invalidate(KEYS[2])


def _trip(t: ClusterTrial) -> None:
    """Calls that fail while the master is down, through the backend and the strategies."""
    for key in KEYS:
        t.call(f"get({key!r})", lambda key=key: t.backend.get(key))  # type: ignore[misc]
    t.write_through(KEYS[0])


def _recovers(t: ClusterTrial) -> None:
    b = t.backend
    t.goes_through("get('raw')", lambda: b.get("raw"))
    t.goes_through("set('raw')", lambda: b.set("raw", b"v", FILL_TTL))
    t.goes_through("add('raw-a')", lambda: b.add("raw-a", b"v", FILL_TTL))  # True or False
    t.goes_through("get_many(KEYS)", lambda: b.get_many(KEYS))
    t.goes_through("set_many(KEYS)", lambda: b.set_many(dict.fromkeys(KEYS, b"m"), FILL_TTL))
    t.goes_through("compare_and_set('raw')", lambda: b.compare_and_set("raw", b"v", b"w", FILL_TTL))
    t.goes_through("delete_many(KEYS)", lambda: b.delete_many(KEYS))
    t.goes_through(
        "write_through('k1')",
        lambda: t.strategies.write_through(t.cache, t.source, KEYS[1], t._next_value(KEYS[1])),
    )


def _keys_write_read(t: ClusterTrial) -> None:
    order = list(KEYS)
    random.Random(t.n).shuffle(order)  # reads in another order than the writes
    for key in KEYS:
        t.raw_set(key)
    for key in order:
        t.raw_get(key)
    t.raw_get_many(KEYS)


def _keys_read(t: ClusterTrial) -> None:
    for key in reversed(KEYS):
        t.raw_get(key)
    t.raw_get_many(KEYS)
    _keys_write_read(t)


def _keys_doomed(t: ClusterTrial) -> None:
    for key in KEYS:
        t.raw_set(key)


def _bounds_doomed(t: ClusterTrial) -> None:
    t.write_through(KEYS[0])  # k0 and k1 are on the master the fault fails
    t.write_through(KEYS[2])


def _bounds_before(t: ClusterTrial) -> None:
    _read_all(t)  # each key cached at version 0: what a lost update would leave
    t.write_through(KEYS[0])
    t.invalidate(KEYS[2])
    _read_all(t)


def _bounds_down(t: ClusterTrial) -> None:
    t.invalidate(KEYS[1])  # refused: k1's cached version 0 stays, up to the fill TTL
    t.read(KEYS[1])
    t.write_through(KEYS[2])


def _bounds_failed_over(t: ClusterTrial) -> None:
    _read_all(t)
    t.write_through(KEYS[2])
    _read_all(t)


def _bounds_back(t: ClusterTrial) -> None:
    _read_all(t)
    t.write_through(KEYS[0])
    t.invalidate(KEYS[2])
    _read_all(t)


CLUSTER_WORKLOADS: Final[dict[str, ClusterWorkload]] = {
    "calls": ClusterWorkload(Checks(), _calls, _calls, _calls, _calls, _calls),
    "recovers": ClusterWorkload(Checks(), _trip, _trip, _trip, _trip, _recovers),
    "keys": ClusterWorkload(
        Checks(keys=True), _keys_write_read, _keys_doomed, _keys_read, _keys_read, _keys_read
    ),
    "bounds": ClusterWorkload(
        Checks(keys=True, versions=True),
        _bounds_before,
        _bounds_doomed,
        _bounds_down,
        _bounds_failed_over,
        _bounds_back,
        _read_all,
    ),
}
