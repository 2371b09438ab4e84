"""Real threads: atomic add and compare-and-set, and reads under concurrent writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from cachespec.backends import NO_VALUE, Backend
from cachespec.spec import Guarantees

from ..checks import Check, CheckFailed, ThreadCheck
from ..target import Target
from .base import (
    PROPERTIES,
    Property,
    atomic_ops,
    fresh_backend,
    offers_add,
    thread_safe,
)

# ------------------------------------------------------------------------ real threads
THREADS = 8
# A call faster than this is in-process: its racers are lined up before each round.
_SPIN_BELOW = 15e-6
_SPIN_AT_MOST = 0.0001  # seconds a thread waits at the start line before it goes on


def _race_on(
    backend: Backend,
    work: Callable[[Backend, int], object],
    stopping: threading.Event,
    on_stop: Callable[[], None] = lambda: None,
) -> list[Any]:
    """Run ``work(backend, i)`` on THREADS threads released at once; return the results.

    ``work`` returns early once ``stopping`` is set. If this thread is interrupted while
    the others run (a second Ctrl-C: the first only asks the run to stop), it sets it,
    calls ``on_stop`` (to break barriers the threads may wait at) and waits for them to end
    before it lets the interruption go: the caller's cleanup then discards the session with
    no write still to come (docs/design.md, "A user's server keeps only its own data").
    """
    start = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = work(backend, i)
        except BaseException as exc:  # a broken start barrier too: stopped before it began
            results[i] = exc

    threads = [
        threading.Thread(target=run, args=(i,), name=f"cachespec-race-{i}", daemon=True)
        for i in range(THREADS)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    except BaseException:
        stopping.set()
        start.abort()
        on_stop()
        for t in threads:
            if t.ident is not None:  # started: at most one backend call (and its timeout) away
                t.join(timeout=60)
        raise
    if any(t.is_alive() for t in threads):
        raise CheckFailed("a thread was still running after 60 s: the backend hangs")
    for result in results:
        if isinstance(result, BaseException):
            raise CheckFailed(f"a thread raised {type(result).__name__}: {result}") from result
    return results


class _StartLine:
    """Lines racing threads up before each round, where their calls are in-process.

    Threads a barrier releases wake one at a time, and on a loaded machine the first can
    finish an in-process call before the last is even running: no race (a non-atomic add
    survived 1 run in 12 so). A thread whose last call was that fast therefore spins here,
    awake, until every thread has arrived. A call over the network overlaps the others
    anyway, and spinning beside it only takes the CPU from the server (it made
    ops.add_atomic on Redis 25 times slower): such a thread only signs in.
    """

    def __init__(self, rounds: int, stopping: threading.Event) -> None:
        self._lock = threading.Lock()
        self._arrived = [0] * rounds  # guarded by _lock for writes; read while spinning
        self._stopping = stopping

    def arrive(self, r: int, *, wait: bool) -> None:
        with self._lock:
            self._arrived[r] += 1
        # At most _SPIN_AT_MOST: eight threads spinning until the last arrives, uncapped,
        # starved it (148 s for ops.add_atomic on memory://, against 0.7 s without a line;
        # 2.7 s with the cap, which still caught every non-atomic add under load). A thread
        # that never comes (it raised) is then reported by the round's barrier.
        deadline = time.monotonic() + _SPIN_AT_MOST
        while wait and self._arrived[r] < THREADS and not self._stopping.is_set():
            if time.monotonic() > deadline:
                break
            # No sleep: the interpreter switches threads every microsecond meanwhile.


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
        session, backend = fresh_backend(target)
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
        stopping = threading.Event()
        line = _StartLine(rounds, stopping)

        def work(backend: Backend, i: int) -> object:
            fast = False  # the last call took less than _SPIN_BELOW seconds
            for r in range(rounds):
                if stopping.is_set():
                    break
                line.arrive(r, wait=fast)
                began = time.perf_counter()
                results[r][i] = attempt(backend, f"thread-{i}/{r}".encode())
                fast = time.perf_counter() - began < _SPIN_BELOW
                barrier.wait(timeout=30)
            return None

        reset(backend)
        try:
            _race_on(backend, work, stopping, on_stop=barrier.abort)
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
    # The count the writers cross and the bound checked after each trial: an exact LRU's
    # capacity only, as before profiles carried their behaviour (an approximate profile's
    # count bound is lru.capacity's to check; this property is about races, not counts).
    room = g.eviction.live_count_bound() if g.eviction.exact_lru_order else None
    steps = 64
    writers = THREADS // 2
    # Fresh keys three times the capacity per trial, so writers cross it together and keep
    # evicting, and expiry bookkeeping turns over.
    batch = 1 if room is None else 3 * room // (writers * steps // 2) + 2

    def fill_key(i: int, step: int, j: int) -> str:
        return f"fill-{i}-{step}-{j}"

    stopping = threading.Event()  # set by _race_on when the run is interrupted

    def read(backend: Backend, i: int, writing: threading.Event) -> list[tuple[str, object]]:
        # Readers keep reading until the last writer is done (bounded all the same), so
        # that every write, and whatever bookkeeping it walks, meets a reader.
        seen: list[tuple[str, object]] = []
        for step in range(steps * 1000):
            if not writing.is_set() or stopping.is_set():
                break
            key = hot[(i + step) % len(hot)]
            seen.append((key, backend.get(key)))
            seen.extend(backend.get_many(hot).items())
        return seen

    def write(backend: Backend, i: int) -> list[tuple[str, object]]:
        for step in range(steps):
            if stopping.is_set():
                break
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
        stopping.clear()
        session, backend = fresh_backend(target)
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

            results = _race_on(backend, churn, stopping)
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


# A race between real threads shows by luck: a thread switch must land inside the
# backend's check-then-act. On a loaded machine (CI runs its envs side by side on two
# cores) the threads waiting for the GIL get less CPU to ask for a switch, and a trial
# catches a non-atomic add about once in 25 (an idle machine: within 9 trials at 16
# seeds). These budgets are set for the loaded machine: docs/cost.md, "Real threads".
PROPERTIES.extend(
    [
        Property(
            "ops.add_atomic",
            "of concurrent adds on one absent key, exactly one wins and its value stays",
            lambda g: thread_safe(g) or offers_add(g),
            _add_atomic,
            examples=100,
            cost=0.015,
        ),
        Property(
            "ops.compare_and_set_atomic",
            "of concurrent compare_and_sets from one value, exactly one wins and its value stays",
            lambda g: thread_safe(g) or atomic_ops(g),
            _compare_and_set_atomic,
            examples=100,
            cost=0.015,
        ),
        Property(
            "ops.threads",
            "under concurrent use no call fails, no read returns another key's value, and "
            "capacity holds",
            thread_safe,
            _threads,
            examples=100,  # a trial keeps 8 threads busy until the writers are done
            cost=0.125,
        ),
    ]
)
