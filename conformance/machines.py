"""Hypothesis state machines that drive a backend beside the model.

Every rule does one thing to the backend, tells the model what happened, and lets the model
judge it; a :class:`~cachespec.spec.Violation` fails the run. A property is a *focus*: the
rules it enables and the pools it draws from, so that a run spends its budget where that
property's bugs live and its counterexample reads as being about that property.

Checks live in rules, not in ``@invariant``: under LRU every read is a use, so an invariant
that read the backend would change the state it checks, and the printed program (which
lists rules only) would not replay it.

A failing run prints as a program::

    state = replay('memory://?capacity=4', 'lru.evicts_lru')
    keys_0 = state.new_key(key='k0')
    state.set(key=keys_0, value=b'red', ttl=None)
    ...
    state.teardown()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    initialize,
    multiple,
    precondition,
    rule,
)

from cachespec.backends import Backend, BackendFull, Unsupported, ValueTooLarge
from cachespec.spec import CacheModel, Guarantees, Violation
from cachespec.spec.model import show_value

from .clock import HarnessClock, just_before
from .focus import Focus, Rule, Value
from .pools import (
    AT,
    BEFORE,
    as_bytes,
)
from .swarm import FocusedMachine
from .target import Session, Target

KEYS: Bundle[str] = Bundle("keys")

# What became of a write (see CacheMachine._write).
WriteOutcome = Literal["stored", "too large", "refused"]


@dataclass(frozen=True)
class ExpiringTTL:
    """The ``ttl`` argument of a write whose entry runs out (see CacheMachine.expiring_ttl)."""

    argument: float | None


class CacheMachine(FocusedMachine):
    """One backend namespace beside one model. Subclasses are built by :func:`build_machine`."""

    target: ClassVar[Target]
    focus: ClassVar[Focus]

    def __init__(self) -> None:
        super().__init__()
        self.session: Session = self.target.session()
        self.clock: HarnessClock = self.session.clock
        self.backend: Backend = self.session.backend()
        self.guarantees: Guarantees = self.backend.guarantees
        self.model = CacheModel(self.guarantees, origin=self.clock.now())
        self._fills = 0
        self._expired_fills = 0
        self._broken = False

    # ------------------------------------------------------------------- shared plumbing
    def _run(self, step: Callable[[], None]) -> None:
        granularity = self.guarantees.clock_granularity
        if granularity:
            # The backend orders calls by its clock: between two calls real time moves, so
            # the harness moves it too, by the granularity the backend declares.
            self.move_clock(self._now() + granularity)
        try:
            step()
        except BaseException:
            self._broken = True  # teardown must not bury this failure under a second one
            raise

    def _now(self) -> float:
        return self.clock.now()

    def _fresh_key(self) -> str:
        """A key no rule has written: ``fill`` and ``fill_expired`` write only these."""
        key = f"fill-{self._fills}"
        self._fills += 1
        return key

    def expiring_ttl(self) -> ExpiringTTL | None:
        """The shortest TTL the focus writes that runs out (``None``: none does). Under one
        TTL for the whole cache every write runs out, and its argument is ``None``."""
        declared = self.guarantees.ttl
        if not declared.expires:
            return None
        if not declared.per_entry:
            return ExpiringTTL(None)
        finite = [t for t in self.focus.ttls if t is not None]
        return ExpiringTTL(min(finite)) if finite else None

    def _over_limit(self, *values: bytes) -> bool:
        limit = self.guarantees.max_value_size
        return limit is not None and any(len(v) > limit for v in values)

    def _write(
        self, describe: Callable[[], str], call: Callable[[], object], *values: bytes
    ) -> tuple[WriteOutcome, object]:
        """Run a write and check the size-limit contract: ``(outcome, what the call returned)``.

        A value over the declared ``max_value_size`` must be refused with ``ValueTooLarge``
        (and then nothing was written); any other value must be accepted, unless the
        eviction profile lets the backend refuse it with ``BackendFull`` when full.
        """
        limit = self.guarantees.max_value_size
        if self._over_limit(*values):
            try:
                call()
            except ValueTooLarge:
                return "too large", None
            except Exception as exc:
                raise Violation(
                    describe(), f"raised {type(exc).__name__}: {exc}", "only ValueTooLarge"
                ) from exc
            raise Violation(
                describe(),
                "accepted it",
                "only ValueTooLarge",
                f"a value is over the declared max_value_size of {limit} bytes",
            )
        try:
            return "stored", call()
        except BackendFull as exc:
            profile = self.guarantees.eviction
            if profile.may_refuse_writes:
                return "refused", None
            raise Violation(
                describe(),
                f"raised BackendFull ({exc})",
                "the write",
                f"the eviction profile ({profile.describe()}) does not let the backend refuse "
                "writes when full",
            ) from exc
        except ValueTooLarge as exc:
            raise Violation(
                describe(),
                f"raised ValueTooLarge ({exc})",
                "the write",
                f"every value is within the declared max_value_size of {limit} bytes",
            ) from exc

    # --------------------------------------------------------------------- the operations
    def _write_one(
        self, name: str, key: str, value: Value, ttl: float | None
    ) -> tuple[float, bytes, WriteOutcome, object]:
        """``set`` or ``add`` of one key through :meth:`_write`: when, bytes, outcome, result."""
        data = as_bytes(value)
        now = self._now()
        call = getattr(self.backend, name)
        outcome, result = self._write(
            lambda: f"{name}({key!r}, {show_value(data)}, ttl={ttl!r}) at {self.model.at(now)}",
            lambda: call(key, data, ttl),
            data,
        )
        return now, data, outcome, result

    def do_set(self, key: str, value: Value, ttl: float | None) -> None:
        now, data, outcome, _ = self._write_one("set", key, value, ttl)
        if outcome == "stored":
            self.model.set(now, key, data, ttl)
        elif outcome == "refused":
            self.model.refused_set(now, [(key, data)], ttl)

    def do_add(self, key: str, value: Value, ttl: float | None) -> None:
        now, data, outcome, result = self._write_one("add", key, value, ttl)
        if outcome == "stored":  # a refused add changed nothing
            self.model.add(now, key, data, ttl, result)

    def do_set_many(self, items: dict[str, bytes], ttl: float | None) -> None:
        now = self._now()

        def describe() -> str:
            shown = ", ".join(f"{k!r}: {show_value(v)}" for k, v in list(items.items())[:8])
            more = f", ... ({len(items)} items)" if len(items) > 8 else ""
            return f"set_many({{{shown}{more}}}, ttl={ttl!r}) at {self.model.at(now)}"

        outcome, _ = self._write(
            describe, lambda: self.backend.set_many(items, ttl), *items.values()
        )
        if outcome == "stored":
            self.model.set_many(now, items.items(), ttl)
        elif outcome == "refused":
            self.model.refused_set(now, items.items(), ttl)

    def do_get(self, key: str) -> None:
        self.model.get(self._now(), key, self.backend.get(key))

    def do_get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        observed = self.backend.get_many(list(keys))
        self.model.get_many(self._now(), keys, observed)
        return observed

    def move_clock(self, when: float) -> None:
        if self._avoids_windows():
            when = self._out_of_windows(when)
        if when > self._now():
            self.clock.advance_to(when)

    def _avoids_windows(self) -> bool:
        # A profile that names its victims (exact LRU, FIFO, expiry-ordered) decides them by
        # which entries are expired; inside an expiry window the model cannot know which, and
        # weakens. Machines that check eviction order step over windows to stay exact.
        return (
            self.focus.avoid_windows
            and self.guarantees.ttl_resolution > 0
            and self.guarantees.eviction.names_victim
        )

    def _out_of_windows(self, when: float) -> float:
        moved = True
        while moved:
            moved = False
            for start, end in self.model.expiry_windows():
                if start <= when < end:
                    when, moved = end, True
        return when

    def boundary(self, start: float, end: float, offset: str) -> float:
        """The instant ``offset`` names around an expiry window ``[start, end)``."""
        if offset == BEFORE:
            return just_before(self.clock, start)
        return start if offset == AT else end

    def survivors(self) -> None:
        """Read every key written so far; check each and the number of live entries."""
        keys = self.model.keys_written
        observed = self.do_get_many(keys)
        bound = self.model.live_count_bound()
        if bound is not None and len(observed) > bound:
            raise Violation(
                f"get_many(<all {len(keys)} keys written>) at {self.model.at(self._now())}",
                f"found {len(observed)} live entries",
                f"at most {bound}",
                self.guarantees.eviction.describe(),
            )

    def teardown(self) -> None:
        try:
            if self.focus.survivors_at_teardown and not self._broken:
                self.survivors()
        finally:
            self.session.close()


# ---------------------------------------------------------------------------------- rules
def _evicting(machine: CacheMachine) -> bool:
    return machine.guarantees.eviction.evicts


# How many entries one fill writes where the profile promises no count (a server that
# evicts by memory): with 64 KiB values, a few fills take a few MiB.
FILL_BURST = 16


# How far one example may move the clock. Servers keep absolute times: memcached's are
# 32-bit (2038), so a run must not drift decades ahead in a few big steps.
MAX_SPAN = 5 * 365 * 86_400


def _within_span(machine: CacheMachine) -> bool:
    return machine._now() - machine.model.origin < MAX_SPAN


# How many times one example fills the cache with entries that then expire: each writes the
# cache's whole room (1,024 keys on memory://), and one or two per example reach the state
# the rule is about; more only cost (docs/cost.md).
EXPIRED_FILLS = 2


def _fills_expired(machine: CacheMachine) -> bool:
    """Whether ``fill_expired`` can run: the profile keeps a number of entries (the rule
    "expired entries make room first" has something to bite on), the focus writes a TTL
    that runs out, and the clock may still move."""
    return (
        machine._expired_fills < EXPIRED_FILLS
        and machine.guarantees.eviction.expired_make_room()
        and machine.expiring_ttl() is not None
        and _within_span(machine)
    )


def _has_expiries(machine: CacheMachine) -> bool:
    # Within the span too: jumps from expiry to expiry (a year each, with long TTLs) would
    # otherwise carry one example past memcached's 2038 and fail a valid TTL (a CI failure).
    return bool(machine.model.expiry_windows()) and _within_span(machine)


def _rules(focus: Focus) -> dict[str, Any]:  # noqa: PLR0915 - one short function per rule
    """The rule functions a focus enables, keyed by name."""
    values = focus.values
    ttls = st.sampled_from(focus.ttls)
    key_lists = st.lists(KEYS, max_size=5)

    @rule(target=KEYS, key=st.sampled_from(focus.keys))
    def new_key(self: CacheMachine, key: str) -> str:
        return key

    @rule(key=KEYS, value=values, ttl=ttls)
    def set(self: CacheMachine, key: str, value: Value, ttl: float | None) -> None:
        self._run(lambda: self.do_set(key, value, ttl))

    @rule(key=KEYS)
    def get(self: CacheMachine, key: str) -> None:
        self._run(lambda: self.do_get(key))

    @rule(key=KEYS, value=values, ttl=ttls)
    def add(self: CacheMachine, key: str, value: Value, ttl: float | None) -> None:
        self._run(lambda: self.do_add(key, value, ttl))

    @rule(key=KEYS)
    def delete(self: CacheMachine, key: str) -> None:
        def step() -> None:
            self.backend.delete(key)
            self.model.delete(self._now(), key)

        self._run(step)

    @rule(keys=key_lists)
    def get_many(self: CacheMachine, keys: list[str]) -> None:
        def step() -> None:
            self.do_get_many(keys)

        self._run(step)

    @rule(items=st.lists(st.tuples(KEYS, values), min_size=1, max_size=5), ttl=ttls)
    def set_many(self: CacheMachine, items: list[tuple[str, Value]], ttl: float | None) -> None:
        self._run(lambda: self.do_set_many({k: as_bytes(v) for k, v in items}, ttl))

    @rule(key=KEYS, expected=values, value=values, ttl=ttls)
    def compare_and_set(
        self: CacheMachine, key: str, expected: Value, value: Value, ttl: float | None
    ) -> None:
        def step() -> None:
            old, new = as_bytes(expected), as_bytes(value)
            result = self.backend.compare_and_set(key, old, new, ttl)
            self.model.compare_and_set(self._now(), key, old, new, ttl=ttl, observed=result)

        self._run(step)

    @rule(key=KEYS, expected=values)
    def compare_and_delete(self: CacheMachine, key: str, expected: Value) -> None:
        def step() -> None:
            old = as_bytes(expected)
            result = self.backend.compare_and_delete(key, old)
            self.model.compare_and_delete(self._now(), key, old, result)

        self._run(step)

    @rule(keys=key_lists)
    def delete_many(self: CacheMachine, keys: list[str]) -> None:
        def step() -> None:
            self.backend.delete_many(list(keys))
            self.model.delete_many(self._now(), keys)

        self._run(step)

    @rule()
    def clear(self: CacheMachine) -> None:
        self._run(lambda: clear_as_declared(self.backend, self.model, self._now()))

    @precondition(_within_span)
    @rule(seconds=st.sampled_from(focus.steps))
    def advance(self: CacheMachine, seconds: float) -> None:
        self._run(lambda: self.move_clock(self._now() + seconds))

    @precondition(_has_expiries)
    @rule(which=st.integers(0, 7), offset=st.sampled_from(focus.offsets))
    def advance_to_expiry(self: CacheMachine, which: int, offset: str) -> None:
        """Jump to an entry's expiry boundary: where off-by-one-tick bugs live."""

        def step() -> None:
            now = self._now()
            instants = {
                self.boundary(start, end, offset) for start, end in self.model.expiry_windows()
            }
            ordered = sorted(instant for instant in instants if instant >= now)
            if not ordered:
                return
            self.move_clock(ordered[which % len(ordered)])

        self._run(step)

    @precondition(_evicting)
    @rule(extra=st.sampled_from([-1, 0, 1, 2]))
    def fill(self: CacheMachine, extra: int) -> None:
        """Write fresh keys until the cache is full (``extra`` places more or fewer)."""

        def step() -> None:
            room = self.guarantees.eviction.room()
            if room:
                count = max(1, room - self.model.certainly_live_count(self._now()) + extra)
            else:
                count = FILL_BURST + extra
            size = self.focus.fill_bytes
            if self.guarantees.max_value_size is not None:
                size = min(size, self.guarantees.max_value_size)
            items = {}
            for _ in range(count):
                # Big values are distinct, so that one read under the wrong key is caught.
                key = self._fresh_key()
                tag = key.encode() + b":"
                items[key] = tag.ljust(size, b"f") if size > len(tag) else b"f"
            self.do_set_many(items, None)

        self._run(step)

    @precondition(_fills_expired)
    @rule()
    def fill_expired(self: CacheMachine) -> None:
        """Fill the cache to its room with short-lived fresh keys, move the clock past their
        expiry, write one fresh key, and read every entry that must still be live: one
        evicted now went while expired entries held the slots (issue #15's program, reached
        on purpose rather than by luck; docs/design.md, "Expired entries make room"). The
        read comes at once, before later writes let the profile drop what it may."""

        def step() -> None:
            ttl = self.expiring_ttl()
            assert ttl is not None  # the precondition
            self._expired_fills += 1
            room = self.guarantees.eviction.room()
            # Exactly full, counting what may still be held: an over-full cache would let
            # the profile evict, and the check below would prove nothing.
            count = max(1, room - self.model.held_count(self._now()))
            keys = [self._fresh_key() for _ in range(count)]
            self.do_set_many({key: key.encode() for key in keys}, ttl.argument)
            ends = [self.model.expiry_of(key) for key in keys]
            last = max((end for end in ends if end is not None), default=None)
            if last is not None:  # past the window: surely expired, still held by a lazy cache
                self.move_clock(last + self.guarantees.ttl_resolution)
            self.do_set(self._fresh_key(), b"after", None)
            self.do_get_many(self.model.live_keys(self._now()))

        self._run(step)

    @precondition(lambda self: self.model.least_recent_live(self._now()) is not None)
    @rule()
    def get_oldest(self: CacheMachine) -> None:
        """Read the least recently used live entry: the hit an LRU must count as a use, so
        that the next eviction passes over it. Reached on purpose, since a random read
        rarely picks the one entry that is next in line (docs/cost.md)."""

        def step() -> None:
            key = self.model.least_recent_live(self._now())
            if key is not None:
                self.do_get(key)

        self._run(step)

    @rule()
    def check_survivors(self: CacheMachine) -> None:
        self._run(self.survivors)

    available: dict[Rule, Any] = {
        Rule.SET: set,
        Rule.GET: get,
        Rule.ADD: add,
        Rule.DELETE: delete,
        Rule.GET_MANY: get_many,
        Rule.SET_MANY: set_many,
        Rule.DELETE_MANY: delete_many,
        Rule.COMPARE_AND_SET: compare_and_set,
        Rule.COMPARE_AND_DELETE: compare_and_delete,
        Rule.CLEAR: clear,
        Rule.ADVANCE: advance,
        Rule.ADVANCE_TO_EXPIRY: advance_to_expiry,
        Rule.FILL: fill,
        Rule.FILL_EXPIRED: fill_expired,
        Rule.GET_OLDEST: get_oldest,
        Rule.SURVIVORS: check_survivors,
    }

    @initialize(target=KEYS, group=st.sampled_from(focus.key_groups or ((),)))
    def new_key_group(self: CacheMachine, group: tuple[str, ...]) -> MultipleResults[str]:
        return multiple(*group)

    chosen: dict[str, Any] = {"new_key": new_key}
    if focus.key_groups:
        chosen["new_key_group"] = new_key_group
    for member in focus.rules:
        chosen[member.value] = available[member]
    return chosen


def build_machine(
    class_name: str, target: Target, focus: Focus, base: type[CacheMachine] | None = None
) -> type[CacheMachine]:
    """A machine class that runs ``focus`` against ``target`` (``base``: a subclass of
    CacheMachine to build on, such as the real-time one in realtime.py)."""
    namespace: dict[str, Any] = {"target": target, "focus": focus, **_rules(focus)}
    return type(class_name, (base or CacheMachine,), namespace)


def clear_as_declared(backend: Backend, model: CacheModel, now: float) -> None:
    """``clear``, checked against what the backend declares: it empties the namespace, or,
    under ``clear=False``, raises :class:`~cachespec.backends.Unsupported` and removes
    nothing (the model stays as it was, so the next reads check that every entry is there).
    """
    if backend.guarantees.clear:
        backend.clear()
        model.clear(now)
        return
    operation = f"clear() at {model.at(now)}"
    because = "the backend declares clear=False: a clear it does not offer must not look done"
    try:
        backend.clear()
    except Unsupported:
        return
    except Exception as exc:
        raise Violation(
            operation, f"raised {type(exc).__name__}: {exc}", "only Unsupported", because
        ) from exc
    raise Violation(operation, "returned normally", "only Unsupported", because)
