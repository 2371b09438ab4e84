"""The properties the suite checks, with stable ids grouped by area.

Each property states one promise, says when it applies (from the backend's declared
guarantees), and builds the check that tests it. Ids are stable: reports, ``opt_out`` and
``expected_failures`` refer to them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine

from cachespec.backends import NO_VALUE, Backend
from cachespec.spec import ApproximateLRU, ExactLRU, Guarantees

from .checks import BatchCheck, Check, CheckFailed, GivenCheck, MachineCheck, ThreadCheck
from .flights import (
    HERD,
    XFETCH_CASES,
    FlightPlan,
    build_flight_machine,
    check_herd,
    check_xfetch,
)
from .machines import Focus, build_machine, build_namespace_machine
from .pools import (
    AT,
    BAD_KEYS,
    BAD_VALUES,
    BEFORE,
    BIG_STEPS,
    DISTINCT_KEY_GROUPS,
    DISTINCT_KEYS,
    FALSY_VALUES,
    FEW_KEYS,
    HARD_KEYS,
    INVALID_TTLS,
    LONG_TTLS,
    LRU_KEYS,
    PAST,
    PLAIN_KEYS,
    SHORT_TTLS,
    SMALL_STEPS,
    roundtrip_values,
    size_limit_values,
    ttls,
)
from .processes import PROCESSES, THREADS_PER_PROCESS, check_processes
from .staleness import Plan, Strategies, build_staleness_machine, check_forged_payload
from .target import Target

Applies = Callable[[Guarantees], "str | None"]


@dataclass(frozen=True)
class Property:
    id: str
    promise: str
    applies: Applies
    build: Callable[[Target, Guarantees], Check]
    # Moves the clock or writes short TTLs: skipped where the harness does not own the clock.
    needs_clock: bool = False
    # Examples (or trials) at the default size; a size scales it (runner.Budget). Set from
    # how many examples this property's mutants take to fail, with a margin (docs/cost.md).
    examples: int = 150
    # Seconds one example costs on memory:// at the default size (measured: docs/cost.md),
    # for the forecast a run prints and for handing the costliest properties out first.
    cost: float = 0.05
    # Runs real processes on the backend: skipped where no other process can reach it.
    needs_processes: bool = False

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]


# ------------------------------------------------------------------------ applicability
def always(_: Guarantees) -> str | None:
    return None


def exact_lru(g: Guarantees) -> str | None:
    if isinstance(g.eviction, ExactLRU):
        return None
    return f"the backend declares {g.eviction.describe()}, not exact LRU"


def approximate_lru(g: Guarantees) -> str | None:
    if isinstance(g.eviction, ApproximateLRU):
        return None
    if isinstance(g.eviction, ExactLRU):
        return "the backend declares exact LRU, which lru.evicts_lru checks more strictly"
    return f"the backend declares {g.eviction.describe()}"


def bounded(g: Guarantees) -> str | None:
    if isinstance(g.eviction, ExactLRU):
        return None
    if isinstance(g.eviction, ApproximateLRU) and g.eviction.holds_at_most is not None:
        return None
    return f"the backend declares no bound on its number of entries ({g.eviction.describe()})"


def evicting(g: Guarantees) -> str | None:
    if isinstance(g.eviction, (ExactLRU, ApproximateLRU)):
        return None
    return f"the backend declares {g.eviction.describe()}"


def size_limited(g: Guarantees) -> str | None:
    if g.max_value_size is not None:
        return None
    return "the backend declares no value size limit (max_value_size=None)"


def thread_safe(g: Guarantees) -> str | None:
    return None if g.thread_safe else "the backend does not declare thread_safe=True"


def long_ttls_allowed(g: Guarantees) -> str | None:
    if g.max_ttl is None or g.max_ttl >= max(LONG_TTLS):
        return None
    return f"the backend declares max_ttl={g.max_ttl}s"


# ------------------------------------------------------------------------ stateful checks
def _machine(
    prop_id: str, focus: Callable[[Guarantees], Focus]
) -> Callable[[Target, Guarantees], Check]:
    class_name = "".join(part.title() for part in prop_id.replace(".", "_").split("_"))

    def build(target: Target, g: Guarantees) -> Check:
        return MachineCheck(build_machine(class_name, target, focus(g)))

    return build


def _ttls(g: Guarantees, *, none: bool = False) -> tuple[float | None, ...]:
    return ttls(SHORT_TTLS, g.max_ttl, none=none)


PROPERTIES: list[Property] = []
# Guarantees under which every focus builds, to read what it needs (its rules and pools).
_PROBE = Guarantees(eviction=ExactLRU(8), max_value_size=1024)


def stateful(
    prop_id: str, promise: str, applies: Applies = always, *, examples: int, cost: float = 0.05
) -> Callable[[Callable[[Guarantees], Focus]], Callable[[Guarantees], Focus]]:
    def register(focus: Callable[[Guarantees], Focus]) -> Callable[[Guarantees], Focus]:
        needs_clock = focus(_PROBE).needs_clock
        PROPERTIES.append(
            Property(prop_id, promise, applies, _machine(prop_id, focus), needs_clock, examples)
        )
        return focus

    return register


@stateful("ops.get_set", "get returns the value last set; a key never set is a miss", examples=170)
def _get_set(g: Guarantees) -> Focus:
    return Focus(rules=("set", "get"))


@stateful(
    "ops.delete", "delete removes the entry, touches no other key, and is idempotent", examples=20
)
def _delete(g: Guarantees) -> Focus:
    return Focus(rules=("set", "get", "delete"))


@stateful(
    "ops.add",
    "add writes only when no live entry exists (expired counts as absent) and says so",
    examples=160,
)
def _add(g: Guarantees) -> Focus:
    return Focus(
        rules=("add", "set", "get", "delete", "advance_to_expiry"),
        ttls=_ttls(g, none=True),
    )


def atomic_ops(g: Guarantees) -> str | None:
    if g.compare_and_set:
        return None
    return "the backend does not declare compare_and_set=True"


@stateful(
    "ops.compare_and_set",
    "compare_and_set / compare_and_delete act exactly when the live value matches, and say so",
    atomic_ops,
    examples=50,
)
def _compare_and_set(g: Guarantees) -> Focus:
    return Focus(
        rules=("set", "get", "compare_and_set", "compare_and_delete", "advance_to_expiry"),
        keys=FEW_KEYS,
        values=st.sampled_from([b"red", b"green", b""]),
        ttls=_ttls(g, none=True),
    )


@stateful("ops.get_many", "get_many returns exactly the hits, each with its value", examples=250)
def _get_many(g: Guarantees) -> Focus:
    return Focus(rules=("set", "delete", "get_many"))


@stateful("ops.set_many", "set_many stores every item as set would", examples=110)
def _set_many(g: Guarantees) -> Focus:
    return Focus(rules=("set_many", "get", "get_many"))


@stateful("ops.delete_many", "delete_many removes exactly the keys given", examples=180)
def _delete_many(g: Guarantees) -> Focus:
    return Focus(rules=("set", "set_many", "delete_many", "get"))


@stateful(
    "ops.clear",
    "clear removes every entry of the namespace; declared clear=False, it raises Unsupported "
    "and removes nothing",
    examples=170,
)
def _clear(g: Guarantees) -> Focus:
    return Focus(rules=("set", "clear", "get", "get_many"), ttls=_ttls(g, none=True))


@stateful(
    "ttl.lives", "an entry with a TTL is served until written_at + ttl, never less", examples=80
)
def _ttl_lives(g: Guarantees) -> Focus:
    return Focus(
        rules=("set", "add", "set_many", "get", "get_many", "advance_to_expiry"),
        ttls=_ttls(g),
        offsets=(BEFORE,),
    )


@stateful(
    "ttl.expires",
    "an entry is gone once written_at + ttl (plus the declared resolution) has passed",
    examples=240,
)
def _ttl_expires(g: Guarantees) -> Focus:
    return Focus(
        rules=("set", "set_many", "get", "get_many", "advance", "advance_to_expiry"),
        ttls=_ttls(g),
        offsets=(AT, PAST),
    )


@stateful(
    "ttl.never", "an entry written with ttl=None never expires, even over a TTL", examples=250
)
def _ttl_never(g: Guarantees) -> Focus:
    # Entries without a TTL are the subject: one draw in three, not one in twelve (with
    # the whole pool, a run of 150 examples sometimes never outlived a day-long default).
    # The TTLs beside it are there to be overwritten by ttl=None, short and long.
    return Focus(
        rules=("set", "get", "advance"),
        keys=FEW_KEYS,
        ttls=ttls((1, 86_400), g.max_ttl, none=True),
        steps=BIG_STEPS,
    )


@stateful(
    "ttl.overwrite", "overwriting an entry replaces its TTL (ttl=None removes it)", examples=90
)
def _ttl_overwrite(g: Guarantees) -> Focus:
    return Focus(
        rules=("set", "set_many", "get", "advance_to_expiry"),
        keys=FEW_KEYS,
        ttls=_ttls(g, none=True),
    )


@stateful(
    "ttl.long",
    "a TTL over 30 days still counts seconds from now (memcached reads it as a date)",
    long_ttls_allowed,
    examples=100,
)
def _ttl_long(g: Guarantees) -> Focus:
    return Focus(
        rules=("set", "get", "advance", "advance_to_expiry"),
        ttls=ttls(LONG_TTLS, g.max_ttl, none=False),
        steps=BIG_STEPS,
    )


@stateful(
    "keys.any_unicode",
    "every str is a key: empty, long, whitespace, control, non-ASCII",
    examples=170,
)
def _any_unicode(g: Guarantees) -> Focus:
    return Focus(rules=("set", "get", "delete", "get_many"), keys=HARD_KEYS)


@stateful("keys.distinct", "two different keys never share an entry", examples=190)
def _distinct(g: Guarantees) -> Focus:
    return Focus(
        rules=("set", "get", "get_many", "delete"),
        keys=DISTINCT_KEYS,
        key_groups=DISTINCT_KEY_GROUPS,
    )


@stateful("values.roundtrip", "every bytes value reads back exactly as written", examples=120)
def _roundtrip(g: Guarantees) -> Focus:
    return Focus(rules=("set", "get", "get_many"), values=roundtrip_values(g.max_value_size))


@stateful("values.falsy", "an empty or falsy-looking value is a hit, never a miss", examples=170)
def _falsy(g: Guarantees) -> Focus:
    return Focus(rules=("set", "add", "get", "get_many"), values=FALSY_VALUES)


@stateful(
    "values.size_limit",
    "a value up to the declared limit is stored; a larger one raises ValueTooLarge and "
    "leaves the old entry",
    size_limited,
    examples=70,
)
def _size_limit(g: Guarantees) -> Focus:
    assert g.max_value_size is not None
    return Focus(
        rules=("set", "add", "set_many", "get"),
        keys=FEW_KEYS,
        values=size_limit_values(g.max_value_size),
    )


@stateful(
    "lru.capacity", "the cache never holds more live entries than it declares", bounded, examples=30
)
def _capacity(g: Guarantees) -> Focus:
    return Focus(rules=("set", "add", "get", "fill", "survivors"), keys=LRU_KEYS)


@stateful(
    "lru.evicts_lru",
    "a full cache evicts the least recently written entry, never another",
    exact_lru,
    examples=20,
)
def _evicts_lru(g: Guarantees) -> Focus:
    return Focus(rules=("set", "fill"), keys=LRU_KEYS, survivors_at_teardown=True)


@stateful(
    "lru.hit_refreshes", "a hit makes the entry the most recently used", exact_lru, examples=300
)
def _hit_refreshes(g: Guarantees) -> Focus:
    return Focus(
        rules=("set", "get", "get_many", "fill"), keys=LRU_KEYS, survivors_at_teardown=True
    )


@stateful(
    "lru.expired_first",
    "expired entries make room before any live entry is evicted",
    exact_lru,
    examples=70,
)
def _expired_first(g: Guarantees) -> Focus:
    return Focus(
        rules=("set", "fill", "advance", "advance_to_expiry"),
        keys=LRU_KEYS,
        ttls=_ttls(g, none=True),
        steps=SMALL_STEPS,
        offsets=(PAST,),
        survivors_at_teardown=True,
        avoid_windows=True,
    )


@stateful(
    "lru.recent_survive",
    "the protected recent entries survive eviction, none comes back once gone, and a write "
    "refused when full leaves no old value (approximate profiles)",
    approximate_lru,
    examples=270,
)
def _recent_survive(g: Guarantees) -> Focus:
    # 64 KiB a fill entry: enough for a few fills to push a server that evicts by memory
    # (the harness's maxmemory of a few MiB) into evicting; an in-process backend counts
    # entries, not bytes, and does not mind.
    return Focus(
        rules=("set", "get", "get_many", "fill", "survivors"),
        keys=LRU_KEYS,
        fill_bytes=64 * 1024,
    )


@stateful(
    "ops.mixed",
    "any interleaving of every operation, key, value, TTL and clock move agrees with the model",
    examples=270,
    cost=0.11,  # eleven rules: drawing one costs twice what it costs elsewhere
)
def _mixed(g: Guarantees) -> Focus:
    return Focus(
        rules=(
            "set",
            "get",
            "add",
            "delete",
            "get_many",
            "set_many",
            "delete_many",
            "clear",
            "advance",
            "advance_to_expiry",
            *(("fill",) if evicting(g) is None else ()),
        ),
        keys=PLAIN_KEYS + HARD_KEYS[:6],
        values=st.one_of(FALSY_VALUES, roundtrip_values(g.max_value_size)),
        ttls=_ttls(g, none=True),
        avoid_windows=True,
    )


PROPERTIES.append(
    Property(
        "ops.clear_namespace",
        "clear, set and delete in one namespace never touch another",
        always,
        lambda target, g: MachineCheck(build_namespace_machine("OpsClearNamespace", target)),
        examples=210,
    )
)


# ------------------------------------------------------------------- argument checking
def _fresh(target: Target) -> tuple[Any, Backend]:
    session = target.session()
    return session, session.backend()


def _expect(exc_type: type[Exception], call: Callable[[], object], what: str) -> None:
    try:
        call()
    except exc_type:
        return
    except Exception as exc:
        raise AssertionError(
            f"{what} raised {type(exc).__name__}: {exc}; expected {exc_type.__name__}"
        ) from exc
    raise AssertionError(f"{what} returned normally; expected {exc_type.__name__}")


def _untouched(backend: Backend, what: str, **expected: object) -> None:
    for key, value in expected.items():
        found = backend.get(key)
        if found is not value and found != value:
            raise AssertionError(
                f"after the refused call {what}, get({key!r}) returned {found!r}; "
                f"expected {value!r}: a refused call must write nothing"
            )


_KEY_OPS: dict[str, Callable[[Backend, Any], object]] = {
    "get": lambda b, k: b.get(k),
    "set": lambda b, k: b.set(k, b"v"),
    "add": lambda b, k: b.add(k, b"v"),
    "delete": lambda b, k: b.delete(k),
    "get_many": lambda b, k: b.get_many(["k", k]),
    "set_many": lambda b, k: b.set_many({"k": b"new", k: b"v"}),
    "delete_many": lambda b, k: b.delete_many(["k", k]),
}


def _keys_type(target: Target, g: Guarantees) -> Check:
    def body(case: tuple[object, str]) -> None:
        bad, op = case
        session, backend = _fresh(target)
        try:
            backend.set("k", b"old")
            what = f"{op} with key {bad!r}"
            _expect(TypeError, lambda: _KEY_OPS[op](backend, bad), what)
            _untouched(backend, what, k=b"old")
            if op in ("set", "add", "set_many") and isinstance(bad, (int, float, bytes)):
                coerced = bad.decode() if isinstance(bad, bytes) else str(bad)
                _untouched(backend, what, **{coerced: NO_VALUE})
        finally:
            session.close()

    hashable = [k for k in BAD_KEYS if not isinstance(k, list)]
    cases = st.one_of(
        st.tuples(st.sampled_from(BAD_KEYS), st.sampled_from(["get", "set", "add", "delete"])),
        st.tuples(st.sampled_from(hashable), st.sampled_from(list(_KEY_OPS))),
    )
    return GivenCheck("keys_type", cases, body)


def _refusals(
    name: str,
    target: Target,
    ops: dict[str, Callable[[Backend, Any], object]],
    bad: Sequence[tuple[object, type[Exception]]],
    shown: str,
) -> Check:
    """Each call in ``ops`` with each bad argument raises its exception and writes nothing."""

    def body(case: tuple[tuple[object, type[Exception]], str]) -> None:
        (argument, exc_type), op = case
        session, backend = _fresh(target)
        try:
            backend.set("k", b"old")
            what = f"{op} with {shown}{argument!r}"
            _expect(exc_type, lambda: ops[op](backend, argument), what)
            _untouched(backend, what, k=b"old", j=NO_VALUE, n=NO_VALUE)
        finally:
            session.close()

    cases = st.tuples(st.sampled_from(bad), st.sampled_from(list(ops)))
    return GivenCheck(name, cases, body)


def _values_type(target: Target, g: Guarantees) -> Check:
    ops: dict[str, Callable[[Backend, Any], object]] = {
        "set": lambda b, v: b.set("k", v),
        "add": lambda b, v: b.add("n", v),
        "set_many": lambda b, v: b.set_many({"j": b"ok", "k": v}),
    }
    bad = [(value, TypeError) for value in BAD_VALUES]
    return _refusals("values_type", target, ops, bad, "value ")


def _ttl_invalid(target: Target, g: Guarantees) -> Check:
    ops: dict[str, Callable[[Backend, Any], object]] = {
        "set": lambda b, t: b.set("k", b"new", t),
        "add": lambda b, t: b.add("n", b"new", t),
        "set_many": lambda b, t: b.set_many({"k": b"new", "j": b"new"}, t),
    }
    return _refusals("ttl_invalid", target, ops, INVALID_TTLS, "ttl=")


PROPERTIES.extend(
    [
        Property(
            "keys.type",
            "a key that is not a str raises TypeError, and nothing is written",
            always,
            _keys_type,
            examples=100,
            cost=0.002,
        ),
        Property(
            "values.type",
            "a value that is not bytes raises TypeError, and nothing is written",
            always,
            _values_type,
            examples=100,
            cost=0.002,
        ),
        Property(
            "ttl.invalid",
            "0, negative, NaN, infinite TTLs raise ValueError; bools and non-numbers "
            "TypeError; nothing is written",
            always,
            _ttl_invalid,
            examples=100,
            cost=0.002,
        ),
    ]
)


# ------------------------------------------------------------------------ real threads
THREADS = 8


def _race_on(backend: Backend, work: Callable[[Backend, int], object]) -> list[Any]:
    """Run ``work(backend, i)`` on THREADS threads released at once; return the results."""
    start = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work(backend, i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        if t.is_alive():
            raise CheckFailed("a thread was still running after 60 s: the backend hangs")
    for result in results:
        if isinstance(result, BaseException):
            raise CheckFailed(f"a thread raised {type(result).__name__}: {result}") from result
    return results


def _exactly_one_wins(
    target: Target,
    call: str,
    attempt: Callable[[Backend, bytes], object],
    reset: Callable[[Backend], None],
) -> Check:
    """Rounds of THREADS concurrent ``attempt(backend, own_value)`` calls on one key: exactly
    one may return True, and the key must then hold the winner's value.

    Each round is released by a barrier, so the threads contend in every round (with one
    round, the first thread tends to finish before the others wake). One key fits any
    capacity, so no eviction can fake a second winner. ``reset`` prepares the next round.
    """
    rounds = 32

    def trial(n: int) -> None:
        session, backend = _fresh(target)
        results: list[list[object]] = [[None] * THREADS for _ in range(rounds)]
        problems: list[str] = []
        current = [0]

        def settle() -> None:  # run by one thread once every thread has tried this round
            r = current[0]
            current[0] += 1
            winners = [i for i in range(THREADS) if results[r][i] is True]
            if len(winners) != 1:
                problems.append(
                    f"trial {n}, round {r}: {len(winners)} of {THREADS} concurrent calls of "
                    f"{call} returned True (threads {winners}); exactly one may"
                )
            else:
                expected = f"thread-{winners[0]}/{r}".encode()
                found = backend.get("race")
                if found != expected:
                    problems.append(
                        f"trial {n}, round {r}: thread {winners[0]} won {call}, but the key "
                        f"holds {found!r}; the winner's value is {expected!r}"
                    )
            reset(backend)

        barrier = threading.Barrier(THREADS, action=settle)

        def work(backend: Backend, i: int) -> object:
            for r in range(rounds):
                results[r][i] = attempt(backend, f"thread-{i}/{r}".encode())
                barrier.wait(timeout=30)
            return None

        reset(backend)
        try:
            _race_on(backend, work)
        finally:
            session.close()
        if problems:
            raise CheckFailed(problems[0])

    return ThreadCheck(trial)


def _add_atomic(target: Target, g: Guarantees) -> Check:
    return _exactly_one_wins(
        target,
        "add('race', ...) on an absent key",
        lambda backend, mine: backend.add("race", mine),
        lambda backend: backend.delete("race"),
    )


def _compare_and_set_atomic(target: Target, g: Guarantees) -> Check:
    return _exactly_one_wins(
        target,
        "compare_and_set('race', b'start', ...)",
        lambda backend, mine: backend.compare_and_set("race", b"start", mine),
        lambda backend: backend.set("race", b"start"),
    )


def _check_reads(trial: int, results: list[Any]) -> None:
    """Every value a reader saw was written under the key it read (``key/...``)."""
    for seen in results:
        for key, value in seen:
            if value is NO_VALUE:
                continue
            if not (isinstance(value, bytes) and value.startswith(f"{key}/".encode())):
                raise CheckFailed(
                    f"trial {trial}: under {THREADS} threads a read of {key!r} returned "
                    f"{value!r}, which was never written under {key!r}"
                )


def _threads(target: Target, g: Guarantees) -> Check:  # noqa: PLR0915 - one trial, read together
    """Half the threads read hot keys in tight loops, half write: sets with and without TTLs,
    fresh keys past the capacity (evictions), deletes. Readers and writers in different
    threads are what exposes a reader that changes state a writer is walking."""
    hot = [f"t{i}" for i in range(16)]
    room = g.eviction.capacity if isinstance(g.eviction, ExactLRU) else None
    steps = 64
    writers = THREADS // 2
    # Fresh keys three times the capacity per trial, so writers cross it together and keep
    # evicting, and expiry bookkeeping turns over.
    batch = 1 if room is None else 3 * room // (writers * steps // 2) + 2

    def fill_key(i: int, step: int, j: int) -> str:
        return f"fill-{i}-{step}-{j}"

    def read(backend: Backend, i: int, writing: threading.Event) -> list[tuple[str, object]]:
        # Readers keep reading until the last writer is done (bounded all the same), so
        # that every write, and whatever bookkeeping it walks, meets a reader.
        seen: list[tuple[str, object]] = []
        for step in range(steps * 1000):
            if not writing.is_set():
                break
            key = hot[(i + step) % len(hot)]
            seen.append((key, backend.get(key)))
            seen.extend(backend.get_many(hot).items())
        return seen

    def write(backend: Backend, i: int) -> list[tuple[str, object]]:
        for step in range(steps):
            key = hot[(i + step) % len(hot)]
            value = f"{key}/{i}/{step}".encode()
            if step % 2 == 0:
                # Half the writes carry a TTL (long enough never to expire here), so that
                # expiry bookkeeping is exercised under contention too.
                backend.set(key, value, 3600 if step % 4 == 0 else None)
            else:
                items = {fill_key(i, step, j): b"f" for j in range(batch)}
                backend.set_many({**items, key: value}, 3600)
            if step % 16 == 15:
                backend.delete(key)
        return []

    def trial(n: int) -> None:
        session, backend = _fresh(target)
        try:
            backend.set_many({key: f"{key}/start".encode() for key in hot})
            writing = threading.Event()
            writing.set()
            left = [writers]
            left_lock = threading.Lock()

            def churn(backend: Backend, i: int) -> object:
                if i % 2:
                    return read(backend, i, writing)
                try:
                    return write(backend, i)
                finally:
                    with left_lock:
                        left[0] -= 1
                        if not left[0]:
                            writing.clear()

            results = _race_on(backend, churn)
            _check_reads(n, results)
            if room is not None:
                written = [
                    fill_key(i, s, j)
                    for i in range(0, THREADS, 2)
                    for s in range(1, steps, 2)
                    for j in range(batch)
                ]
                held = len(backend.get_many(written + hot))
                if held > room:
                    raise CheckFailed(
                        f"trial {n}: after {THREADS} threads wrote concurrently the cache holds "
                        f"{held} live entries; its capacity is {room}"
                    )
        finally:
            session.close()

    return ThreadCheck(trial)


PROPERTIES.extend(
    [
        Property(
            "ops.add_atomic",
            "of concurrent adds on one absent key, exactly one wins and its value stays",
            thread_safe,
            _add_atomic,
            examples=30,
            cost=0.015,
        ),
        Property(
            "ops.compare_and_set_atomic",
            "of concurrent compare_and_sets from one value, exactly one wins and its value stays",
            lambda g: thread_safe(g) or atomic_ops(g),
            _compare_and_set_atomic,
            examples=30,
            cost=0.015,
        ),
        Property(
            "ops.threads",
            "under concurrent use no call fails, no read returns another key's value, and "
            "capacity holds",
            thread_safe,
            _threads,
            examples=40,  # a trial keeps 8 threads busy until the writers are done
            cost=0.2,
        ),
    ]
)


# ------------------------------------------------------------------ staleness and faults
def guarded_fills(g: Guarantees) -> str | None:
    if g.compare_and_set:
        return None
    return (
        "the backend does not declare compare_and_set=True, which guarded fills, leases and "
        "write-through need"
    )


def caches_what_it_keeps(g: Guarantees) -> str | None:
    """The efficacy properties expect the one entry a strategy just cached to be read."""
    cannot = guarded_fills(g)
    if cannot is None and not g.eviction.keeps(1):
        cannot = (
            f"the backend declares {g.eviction.describe()}: even the entry just written may "
            "be evicted at once, so no read is promised a hit"
        )
    return cannot


def _strategies(target: Target) -> Strategies:
    chosen = target.strategies
    return chosen if isinstance(chosen, Strategies) else Strategies()


def _callers(
    prop_id: str,
    promise: str,
    build_machine: Callable[[str, Target, Strategies], type[RuleBasedStateMachine]],
    examples: int,
) -> Property:
    """A property run by a machine of scheduled callers over the strategies under test."""
    class_name = "".join(part.title() for part in prop_id.replace(".", "_").split("_"))

    def build(target: Target, g: Guarantees) -> Check:
        return MachineCheck(build_machine(class_name, target, _strategies(target)))

    return Property(
        prop_id, promise, guarded_fills, build, needs_clock=True, examples=examples, cost=0.06
    )


def _staleness(prop_id: str, promise: str, plan: Plan, examples: int) -> Property:
    def build(name: str, target: Target, strategies: Strategies) -> type[RuleBasedStateMachine]:
        return build_staleness_machine(name, target, plan, strategies)

    prop = _callers(prop_id, promise, build, examples)
    if plan.efficacy:
        return replace(prop, applies=caches_what_it_keeps)
    return prop


def _forged_payload(target: Target, g: Guarantees) -> Check:
    strategies = _strategies(target)
    return ThreadCheck(lambda trial: check_forged_payload(target, strategies, trial))


PROPERTIES.extend(
    [
        _staleness(
            "staleness.ttl",
            "with TTL only, a read is at most the TTL (plus the resolution) stale",
            Plan("source"),
            200,
        ),
        _staleness(
            "staleness.invalidation",
            "a read that starts after an invalidation returned is fresh",
            Plan("invalidate", sequential=True),
            30,
        ),
        _staleness(
            "staleness.cache_aside",
            "cache-aside reads are never stale after an invalidation, whatever the "
            "interleaving (no stale-set race)",
            Plan("invalidate"),
            230,
        ),
        _staleness(
            "staleness.write_through",
            "a read that starts after a write-through returned sees it or newer, whatever "
            "the interleaving",
            Plan("write_through"),
            220,
        ),
        _staleness(
            "staleness.events",
            "event invalidation: fresh once an event is handled; stale at most the "
            "safety-net TTL when one is lost",
            Plan("event"),
            170,
        ),
        _staleness(
            "faults.cache_aside",
            "when the cache fails, cache-aside reads fall through to the source and the "
            "bounds still hold",
            Plan("invalidate", cache_faults=True),
            40,
        ),
        _staleness(
            "faults.write_through",
            "when the cache fails under write-through, the staleness bound still holds",
            Plan("write_through", cache_faults=True),
            90,
        ),
        _staleness(
            "faults.source",
            "when the source fails, nothing it never held reaches the cache",
            Plan("invalidate", source_faults=True),
            80,
        ),
        Property(
            "faults.forged_payload",
            "a payload nobody signed reads as a counted miss and is never unpickled",
            guarded_fills,
            _forged_payload,
            examples=20,
            cost=0.002,
        ),
        # Efficacy: the twins of the staleness properties. A strategy that is safe because
        # it never caches passes those; it fails these (docs/design.md, "Efficacy").
        _staleness(
            "efficacy.cache_aside",
            "after a cache-aside read, the reads of that key hit until a write, an "
            "invalidation or the TTL, without calling the source",
            Plan("invalidate", sequential=True, efficacy=True),
            30,
        ),
        _staleness(
            "efficacy.write_through",
            "after a write-through returned, reads of that key hit, without calling the "
            "source, until a later write or the TTL (an absent key too)",
            Plan("write_through", sequential=True, efficacy=True),
            40,
        ),
        _staleness(
            "efficacy.events",
            "after a change event is handled, the next read refills once and the reads "
            "after it hit, until the next event or the TTL",
            Plan("event", sequential=True, efficacy=True),
            60,
        ),
    ]
)


# ------------------------------------------------------------ single-flight, early refresh
def _flights(prop_id: str, promise: str, plan: FlightPlan, examples: int) -> Property:
    def build(name: str, target: Target, strategies: Strategies) -> type[RuleBasedStateMachine]:
        return build_flight_machine(name, target, plan, strategies)

    return _callers(prop_id, promise, build, examples)


def _herd(target: Target, g: Guarantees) -> Check:
    strategies = _strategies(target)
    # Each trial costs a quarter second: the first compute waits for a second one that
    # must never come.
    return ThreadCheck(lambda trial: check_herd(target, strategies, trial))


def _processes(target: Target, g: Guarantees) -> Check:
    strategies = _strategies(target)
    # One set of processes runs every trial (starting interpreters is the cost), each
    # trial paying PROCESS_BESIDE once.
    return BatchCheck(lambda trials: check_processes(target, strategies, trials))


def _xfetch(target: Target, g: Guarantees) -> Check:
    strategies = _strategies(target)
    return GivenCheck(
        "early_refresh_xfetch", XFETCH_CASES, lambda case: check_xfetch(target, strategies, case)
    )


PROPERTIES.extend(
    [
        _flights(
            "single_flight.one_compute",
            "concurrent misses on a key in one process run one compute; the next miss "
            "after it starts a new one",
            FlightPlan("one_compute"),
            50,
        ),
        _flights(
            "single_flight.shared_outcome",
            "every caller that waited gets the leader's value or the leader's very exception",
            FlightPlan("shared_outcome"),
            30,
        ),
        _flights(
            "single_flight.no_hang",
            "every caller returns (a bounded wait): a failed compute never leaves the key locked",
            FlightPlan("no_hang"),
            90,
        ),
        _flights(
            "single_flight.one_owner",
            "a fill lease has one owner at a time on the harness's clock; only it releases it",
            FlightPlan("one_owner", processes=2, moves_time=True),
            600,
        ),
        _flights(
            "single_flight.takeover",
            "a dead holder's lease stops blocking the key within the lease time",
            FlightPlan("takeover", processes=2, crashes=True, moves_time=True),
            160,
        ),
        Property(
            "single_flight.threads",
            f"{HERD} real threads missing one key at once run one compute and all get its value",
            lambda g: thread_safe(g) or guarded_fills(g),
            _herd,
            examples=10,
            cost=0.26,
        ),
        Property(
            "single_flight.processes",
            f"{PROCESSES} processes x {THREADS_PER_PROCESS} threads missing one key on a "
            "shared server run one compute and all get its value",
            guarded_fills,
            _processes,
            needs_processes=True,
            examples=2,
            cost=3.0,
        ),
        Property(
            "early_refresh.xfetch",
            "a hit refreshes early exactly when now - delta * beta * ln(rand) >= expiry",
            guarded_fills,
            _xfetch,
            needs_clock=True,
            examples=100,
            cost=0.005,
        ),
    ]
)

PROPERTIES.sort(key=lambda p: p.id)
BY_ID: dict[str, Property] = {p.id: p for p in PROPERTIES}
