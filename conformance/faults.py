"""The ``faults.server_*`` properties: what a backend and the strategies over it promise while
a server the harness started is killed (-9), stopped (SIGSTOP/SIGCONT) or restarted mid-run.

A trial opens the backend with a short ``timeout``, runs a workload before the fault, during
it and after the server is back, then moves the harness's clock past the fill TTL and reads
once more. Every call runs under a bounded wait (:func:`.outages.bounded`). Each property
runs the workload its promise needs and checks its promise on every call:

* ``calls``: every call returns or raises a ``CacheError`` (typed), and none hangs;
* ``cache_aside``: cache-aside reads return what the source held under that key, never a
  version older than the last write whose invalidation returned (a read that finds the
  cache down falls through to the source), and no superseded version once the fill TTL
  has passed;
* ``bounds``: the same for write-through and explicit invalidation: a read that starts
  after one returned is fresh; after one that raised, stale at most the fill TTL;
* ``keys``: no read, raw or through the cache, returns a value written under another key;
* ``connections``: the client holds no more connections on the server after the outage
  than before it, and none once closed, by the server's own count;
* ``recovers``, the efficacy twin of ``calls`` (a client that raises for ever after the
  first failure passes that one): once the server is back, every kind of call goes through
  again.

Why these and not a random program: a fault costs real time (a stopped server answers
nothing until each call's timeout), so each trial spends its calls where the promise can
break (docs/design.md, "Faults on a harness server").
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from cachespec.backends import NO_VALUE, Backend, CacheError
from cachespec.spec.staleness import SourceOfTruth

from .checks import CheckFailed
from .outages import (
    FAULTS,
    Outcome,
    bounded,
    can_count,
    connection_count,
    outage,
    settled_count,
)
from .staleness import Source, Strategies
from .target import ServerTarget

__all__ = ["TIMEOUT", "WORKLOADS", "Trial", "Workload", "quiet_fall_through", "run_trial"]

KEYS: Final = ("k0", "k1", "k2")
#: The adapter's ``timeout`` in a trial: what a call to a stopped server waits per round trip.
TIMEOUT: Final = 0.2
FILL_TTL: Final = 60.0
LEASE_TTL: Final = 2.0  # a lease a stopped server stored late blocks its key this long
_STORY: Final = 14  # the calls a failure message shows, the last ones
RECOVERY_ATTEMPTS: Final = 3


@dataclass(frozen=True)
class Checks:
    """Which promises a trial checks on each result, besides typed and bounded calls."""

    keys: bool = False  # a value read carries the key it was read under
    versions: bool = False  # ... and a version the bounds allow
    connections: bool = False  # counted on the server


class Trial:
    """One trial: a backend on the target's server, a cache and a source over it, a fault."""

    def __init__(self, target: ServerTarget, strategies: Strategies, n: int, checks: Checks):
        self.n = n
        self.fault = FAULTS[n % len(FAULTS)]
        self.checks = checks
        self.strategies = strategies
        self.session = target.session()  # an emptied server, the clock on a whole second
        self.clock = self.session.clock
        self.server = target.server()
        if checks.connections and not can_count(self.server):
            raise CheckFailed(f"the harness cannot count {self.server.kind}'s connections")
        self.connections_before = connection_count(self.server) if checks.connections else 0
        self.backend: Backend = target.open_with(f"faults-{n}", timeout=str(TIMEOUT))
        self._build_world("before the fault")

    def _build_world(self, phase: str) -> None:
        """The source, and the cache over ``self.backend``, that every kind of trial judges
        (a cluster's trial opens its backend its own way, then calls this too)."""
        self.resolution = self.backend.guarantees.ttl_resolution
        steps = itertools.count()
        self.truth = SourceOfTruth({key: f"{key}#0" for key in KEYS})
        self.source = Source(self.truth, self.clock, lambda: next(steps), lambda: self)
        self.cache = self.strategies.make_cache(
            self.backend,
            default_ttl=FILL_TTL,
            lease_ttl=LEASE_TTL,
            clock=self.clock.now,
            sleep=self._sleep,
        )
        # Per key, the oldest version a read that starts now may return: raised when a
        # write's invalidation (or write-through) returned, and past the fill TTL.
        self.floor = dict.fromkeys(KEYS, 0)
        self.phase = phase
        self.story: list[str] = []
        self._raw = itertools.count()

    def _sleep(self, seconds: float) -> None:
        """A wait for another caller's lease passes on the harness's clock, not the wall's."""
        self.clock.advance_to(self.clock.now() + seconds)

    # ----------------------------------------------------------------------------- calls
    def call(self, label: str, call: Callable[[], object]) -> Outcome:
        """Run one call with the bounded wait; a result, or a typed error, is the floor."""
        try:
            outcome = bounded(label, call)
        except CheckFailed as exc:
            raise self.failure(str(exc)) from None
        error = outcome.error
        shown = repr(outcome.value) if error is None else f"raised {type(error).__name__}"
        self.story.append(f"{self.phase}: {label} -> {shown}")
        if error is not None and not isinstance(error, CacheError):
            raise self.failure(
                f"{label} raised {type(error).__name__}: {error}; a backend must raise a "
                "CacheError (BackendUnavailable, ...) when its server fails"
            ) from error
        return outcome

    @property
    def fault_name(self) -> str:
        """The fault this trial meets, as its failure messages name it."""
        return self.fault.value

    def failure(self, what: str) -> CheckFailed:
        story = "\n    ".join(self.story[-_STORY:])
        return CheckFailed(
            f"trial {self.n}, {self.fault_name}: {self.phase}: {what}\n  the calls, last "
            f"{min(len(self.story), _STORY)}:\n    {story}"
        )

    # -------------------------------------------------------------------- the strategies
    def read(self, key: str) -> None:
        floor = self.floor[key]
        outcome = self.call(
            f"read({key!r})",
            lambda: self.strategies.read(self.cache, key, lambda: self.source.read(key), FILL_TTL),
        )
        if outcome.error is None:
            self._judge(key, outcome.value, floor)

    def _judge(self, key: str, value: object, floor: int) -> None:
        if not (self.checks.keys or self.checks.versions):
            return
        if not (isinstance(value, str) and value.startswith(f"{key}#")):
            raise self.failure(
                f"read({key!r}) returned {value!r}, which was never written under {key!r}"
            )
        if not self.checks.versions:
            return
        version = self.truth.version_of(key, value)
        if version is None:
            raise self.failure(f"read({key!r}) returned {value!r}: the source never held it")
        if version.number < floor:
            raise self.failure(
                f"read({key!r}) returned version {version.number} ({value!r}); the bound "
                f"allowed only version {floor} or newer: "
                + (
                    "the fill TTL has passed since every older version was cached"
                    if self.phase == "past the fill TTL"
                    else f"a write of version {floor} and its cache update returned before "
                    "this read started"
                )
            )

    def _next_value(self, key: str) -> str:
        return f"{key}#{self.truth.current(key).number + 1}"

    def write_through(self, key: str) -> None:
        value = self._next_value(key)
        outcome = self.call(
            f"write_through({key!r}, {value!r})",
            lambda: self.strategies.write_through(self.cache, self.source, key, value),
        )
        if outcome.error is None:  # returned: reads from now on must see it or newer
            self.floor[key] = self.truth.current(key).number

    def invalidate(self, key: str) -> None:
        value = self._next_value(key)
        outcome = self.call(
            f"write_and_invalidate({key!r}, {value!r})",
            lambda: self.strategies.write_and_invalidate(self.cache, self.source, key, value),
        )
        if outcome.error is None:
            self.floor[key] = self.truth.current(key).number

    def past_the_ttl(self) -> None:
        """Move the clock past every fill TTL (plus the resolution): every key is fresh."""
        self.phase = "past the fill TTL"
        self.clock.advance_to(self.clock.now() + FILL_TTL + self.resolution + 1.0)
        for key in KEYS:
            self.floor[key] = self.truth.current(key).number

    def goes_through(self, label: str, call: Callable[[], object]) -> None:
        """``call`` must succeed again now that the server is back: within RECOVERY_ATTEMPTS,
        so that a timeout on a loaded machine is not taken for a client that gave up."""
        for _ in range(RECOVERY_ATTEMPTS):
            if self.call(label, call).error is None:
                return
        raise self.failure(
            f"{label} raised {RECOVERY_ATTEMPTS} times after the server was back: a client "
            "must recover from an outage, not fail every call after it"
        )

    # ------------------------------------------------------------------------ the backend
    def raw_set(self, key: str) -> None:
        value = f"{key}/{self.n}/{next(self._raw)}".encode()
        self.call(f"set({key!r}, {value!r})", lambda: self.backend.set(key, value, FILL_TTL))

    def raw_get(self, key: str) -> None:
        outcome = self.call(f"get({key!r})", lambda: self.backend.get(key))
        if outcome.error is None:
            self._judge_raw(key, outcome.value, f"get({key!r})")

    def raw_get_many(self, keys: tuple[str, ...]) -> None:
        outcome = self.call(f"get_many({list(keys)!r})", lambda: self.backend.get_many(keys))
        if outcome.error is None and isinstance(outcome.value, dict):
            for key, value in outcome.value.items():
                self._judge_raw(key, value, f"get_many({list(keys)!r})[{key!r}]")

    def _judge_raw(self, key: str, value: object, label: str) -> None:
        if not self.checks.keys or value is NO_VALUE:
            return
        if not (isinstance(value, bytes) and value.startswith(f"{key}/".encode())):
            raise self.failure(f"{label} returned {value!r}, which was never written under {key!r}")

    # -------------------------------------------------------------------- the connections
    def held(self) -> int:
        return connection_count(self.server)

    def expect_at_most(self, bound: int, what: str) -> None:
        count = settled_count(self.server, bound)
        if count > bound:
            raise self.failure(
                f"the server counts {count} connections {what}; at most {bound} may be "
                "(connections the client dropped must be closed)"
            )

    def close(self) -> None:
        try:
            self.backend.close()
        finally:
            self.session.close()


@dataclass(frozen=True)
class Workload:
    """What a property runs before, during and after the fault, and past the fill TTL."""

    checks: Checks
    before: Callable[[Trial], None]
    during: Callable[[Trial], None]
    after: Callable[[Trial], None]
    past_ttl: Callable[[Trial], None] | None = None


@contextlib.contextmanager
def quiet_fall_through() -> Iterator[None]:
    """The trial fails the cache on purpose: the WARNING a cache logs when get_or_compute
    falls through (docs/design.md, "A failing cache") is for users, and noise in a check's
    output. Properties run one at a time in a worker, so the level is the trial's alone."""
    logger = logging.getLogger("cachespec.backends.tolerant")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_trial(target: ServerTarget, strategies: Strategies, n: int, workload: Workload) -> None:
    """One trial of ``workload`` through ``FAULTS[n % 3]``; raises CheckFailed on a broken
    promise."""
    with quiet_fall_through():
        _run_trial(Trial(target, strategies, n, workload.checks), workload)


def _run_trial(trial: Trial, workload: Workload) -> None:
    closed = False
    try:
        workload.before(trial)
        held_before = trial.held() if workload.checks.connections else 0
        with outage(trial.server, trial.fault):
            trial.phase = "during the outage"
            workload.during(trial)
        trial.phase = "after the outage"
        workload.after(trial)
        if workload.checks.connections:
            trial.expect_at_most(held_before, f"after the outage ({held_before} before it)")
        if workload.past_ttl is not None:
            trial.past_the_ttl()
            workload.past_ttl(trial)
        if workload.checks.connections:
            trial.phase = "after close"
            closed = True
            trial.close()
            trial.expect_at_most(
                trial.connections_before,
                f"after the backend was closed ({trial.connections_before} before it opened)",
            )
    finally:
        if not closed:
            trial.close()


# ------------------------------------------------------------------------------ workloads
def _read_all(t: Trial) -> None:
    for key in KEYS:
        t.read(key)


def _calls(t: Trial) -> None:
    """One of every kind of call, each on a key of its own phase's."""
    b, key = t.backend, f"raw-{t.phase.split()[0]}"
    t.call(f"get({key!r})", lambda: b.get(key))
    t.call(f"set({key!r})", lambda: b.set(key, b"v", FILL_TTL))
    t.call(f"add({key!r})", lambda: b.add(key + "-a", b"v", FILL_TTL))
    t.call(f"get_many([{key!r}])", lambda: b.get_many([key, key + "-a"]))
    t.call(f"compare_and_set({key!r})", lambda: b.compare_and_set(key, b"v", b"w", FILL_TTL))
    t.call(f"delete({key!r})", lambda: b.delete(key))
    t.read(KEYS[0])
    t.write_through(KEYS[1])
    t.invalidate(KEYS[2])


def _calls_before_and_after(t: Trial) -> None:
    _calls(t)
    b, key = t.backend, "raw-many"
    t.call("set_many", lambda: b.set_many({key: b"v", key + "2": b"w"}, FILL_TTL))
    t.call("compare_and_delete", lambda: b.compare_and_delete(key, b"v"))
    t.call("delete_many", lambda: b.delete_many([key, key + "2"]))


def _trip(t: Trial) -> None:
    """A call and a write through the strategies during the outage: each fails."""
    t.call("get('raw')", lambda: t.backend.get("raw"))
    t.write_through(KEYS[0])


def _recovers(t: Trial) -> None:
    b = t.backend
    t.goes_through("get('raw')", lambda: b.get("raw"))
    t.goes_through("set('raw')", lambda: b.set("raw", b"v", FILL_TTL))
    t.goes_through("add('raw-a')", lambda: b.add("raw-a", b"v", FILL_TTL))  # True or False
    t.goes_through("get_many(['raw'])", lambda: b.get_many(["raw"]))
    t.goes_through("compare_and_set('raw')", lambda: b.compare_and_set("raw", b"v", b"w", FILL_TTL))
    t.goes_through("delete('raw')", lambda: b.delete("raw"))
    t.goes_through(
        "write_through('k1')",
        lambda: t.strategies.write_through(t.cache, t.source, KEYS[1], t._next_value(KEYS[1])),
    )


def _cache_aside_during(t: Trial) -> None:
    _read_all(t)
    t.invalidate(KEYS[1])
    t.read(KEYS[1])


def _cache_aside_before(t: Trial) -> None:
    _read_all(t)
    t.invalidate(KEYS[0])  # the cache is up: reads from now on must see version 1


def _cache_aside_after(t: Trial) -> None:
    _read_all(t)
    t.invalidate(KEYS[2])
    _read_all(t)


def _bounds_before(t: Trial) -> None:
    _read_all(t)  # each key cached at version 0: what a lost update would leave
    t.write_through(KEYS[0])


def _bounds_during(t: Trial) -> None:
    t.write_through(KEYS[1])
    t.invalidate(KEYS[2])
    t.read(KEYS[1])


def _bounds_after(t: Trial) -> None:
    _read_all(t)
    t.write_through(KEYS[1])
    t.write_through(KEYS[2])
    _read_all(t)


def _keys_before(t: Trial) -> None:
    for key in KEYS:
        t.raw_set(key)
    for key in KEYS:
        t.raw_get(key)


def _keys_during(t: Trial) -> None:
    for key in KEYS:
        t.raw_get(key)
    t.raw_get_many(KEYS)


def _keys_after(t: Trial) -> None:
    # The other order from the outage's: a reply left on a connection by a call that timed
    # out answers a later call for another key only if that call asks for another key.
    for key in reversed(KEYS):
        t.raw_get(key)
    t.raw_get_many(KEYS)
    for key in KEYS:
        t.raw_set(key)
        t.raw_get(key)
    t.read(KEYS[0])


def _connections_work(t: Trial) -> None:
    t.raw_set(KEYS[0])
    t.raw_get(KEYS[0])
    t.raw_get_many(KEYS)
    t.read(KEYS[1])
    t.write_through(KEYS[2])


WORKLOADS: Final[dict[str, Workload]] = {
    "calls": Workload(Checks(), _calls_before_and_after, _calls, _calls_before_and_after),
    "cache_aside": Workload(
        Checks(keys=True, versions=True),
        _cache_aside_before,
        _cache_aside_during,
        _cache_aside_after,
        _read_all,
    ),
    "bounds": Workload(
        Checks(keys=True, versions=True), _bounds_before, _bounds_during, _bounds_after, _read_all
    ),
    "keys": Workload(Checks(keys=True), _keys_before, _keys_during, _keys_after),
    "connections": Workload(
        Checks(connections=True), _connections_work, _connections_work, _connections_work
    ),
    "recovers": Workload(Checks(), _trip, _trip, _recovers),
}
