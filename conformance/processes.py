"""``single_flight.processes``: a herd of real processes misses one key on a real server.

The interleaved machines (:mod:`.flights`) model two "processes" as two cache objects in
this interpreter; this check runs the real thing. ``PROCESSES`` fresh interpreters
(``spawn``: nothing inherited, as separate services would be) each open their own backend
from the target's URL and their own cache, and ``THREADS_PER_PROCESS`` threads in each miss
one key at once. The compute counts its runs in shared memory, across processes; the first
one waits up to ``PROCESS_BESIDE`` seconds for a second to start beside it, which a correct
lease never lets happen, so that a missing one shows every time rather than when
scheduling happens to line up. The check holds when the compute ran once and every caller got its
value. A caller that never returns is caught by a bounded wait for its result.

Only targets another process can reach take part (a server: ``cachespec check redis``,
``memcached``, or a URL); an in-process backend (``memory://``, ``fakeredis://``, a factory)
has nothing to share across processes, and the property is skipped for it with that reason.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cachespec.backends import open_backend
from cachespec.backends.cache import Cache

from .checks import CheckFailed
from .flights import FILL_TTL, LEASE_TTL
from .staleness import Strategies, resolve_strategies
from .target import Target

PROCESSES = 3
THREADS_PER_PROCESS = 4
# Bounded waits: for a barrier to fill, and for every caller's result. A caller still
# running after RESULT_SECONDS is hung (a correct herd takes about PROCESS_BESIDE).
BARRIER_SECONDS = 60.0
RESULT_SECONDS = 60.0

# How long the first compute waits for a second to start beside it. Longer than the threads'
# BESIDE: a caller in another process reaches the server through its own client, and on a
# busy machine a process may be scheduled late; a correct lease pays it once per trial.
PROCESS_BESIDE = 1.0
# A caller whose barrier broke (another process failed or was late) reports this.
BROKEN = "<barrier broken>"

# What a process reports per key: (task, [each caller's value repr, or its error], error
# text of the process or "").
Outcome = tuple[int, list[str], str]


@dataclass(frozen=True)
class _Shared:
    """What every process of a herd gets (picklable: it crosses to each new interpreter)."""

    url: str
    namespace: str
    strategy_ref: str | bytes  # a strategy's name or module:callable, or a pickled instance
    tasks: Sequence[tuple[str, str]]  # (key, the value its compute returns), one per trial
    computes: Any  # multiprocessing.Array of int: computes run per task, by every process
    seconds: Sequence[Any]  # multiprocessing.Event per task: a second compute started
    barrier: Any  # multiprocessing.Barrier with a party for every thread everywhere
    results: Any  # multiprocessing.Queue of Outcome


def _herd_process(shared: _Shared) -> None:
    """One process of the herd: its own backend and cache, one herd of threads per task."""
    task = -1
    try:
        ref = shared.strategy_ref
        strategies = resolve_strategies(ref if isinstance(ref, str) else pickle.loads(ref))
        backend = open_backend(shared.url, namespace=shared.namespace)
        try:
            # Fills expire: on a server you run, what the other processes wrote (not through
            # the session's Tenant) must not outlive the run (conformance/tenant.py).
            cache = strategies.make_cache(backend, lease_ttl=LEASE_TTL, default_ttl=FILL_TTL)
            for task in range(len(shared.tasks)):
                shared.results.put((task, _herd(shared, task, strategies, cache), ""))
        finally:
            backend.close()
    except BaseException:
        shared.barrier.abort()  # release the other processes' threads, not leave them waiting
        shared.results.put((task, [], traceback.format_exc(limit=8)))


def _herd(shared: _Shared, task: int, strategies: Strategies, cache: Cache) -> list[str]:
    """This process's threads of one herd; each caller's value (repr) or error."""
    key, value = shared.tasks[task]
    second = shared.seconds[task]

    def compute() -> str:
        with shared.computes.get_lock():
            shared.computes[task] += 1
            first = shared.computes[task] == 1
        if first:
            second.wait(PROCESS_BESIDE)
        else:
            second.set()
        return value

    got = [""] * THREADS_PER_PROCESS

    def caller(index: int) -> None:
        try:
            shared.barrier.wait(BARRIER_SECONDS)
        except threading.BrokenBarrierError:
            got[index] = BROKEN  # another process failed, or did not start in time
            return
        try:
            got[index] = repr(strategies.read(cache, key, compute, FILL_TTL))
        except BaseException as exc:  # reported with the others
            got[index] = f"raised {exc!r}"

    threads = [
        threading.Thread(target=caller, args=(i,), daemon=True) for i in range(THREADS_PER_PROCESS)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + RESULT_SECONDS
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"a caller of {key!r} did not return within {RESULT_SECONDS:g} s")
    if BROKEN in got:
        raise RuntimeError("the herd's barrier broke: another process failed or was late")
    return got


def check_processes(target: Target, strategies: Strategies, trials: int) -> None:
    """``trials`` herds, one fresh key each, in one set of processes."""
    session = target.session()
    try:
        shared = session.shared_url("processes")
        if shared is None:  # the runner skips such targets; a direct call gets a clear error
            raise CheckFailed(f"{target.name} cannot be reached from another process")
        url, namespace = shared
        session.backend("processes")  # so that a user's server is cleared of it afterwards
        ref: str | bytes
        try:
            ref = target.strategy_spec or pickle.dumps(strategies)
        except Exception as exc:
            raise CheckFailed(
                f"the strategies {strategies.name!r} cannot be sent to another process: {exc}"
            ) from None
        tasks = [(f"herd-processes-{t}", f"herd-processes-{t}-value") for t in range(trials)]
        _run(url, namespace, ref, tasks)
    finally:
        session.close()


def _run(url: str, namespace: str, ref: str | bytes, tasks: list[tuple[str, str]]) -> None:
    context = multiprocessing.get_context("spawn")
    computes = context.Array("i", len(tasks))
    seconds = [context.Event() for _ in tasks]
    barrier = context.Barrier(PROCESSES * THREADS_PER_PROCESS)
    results = context.Queue()
    shared = _Shared(url, namespace, ref, tasks, computes, seconds, barrier, results)
    processes = [
        context.Process(
            target=_herd_process, args=(shared,), name=f"cachespec-herd-{i}", daemon=True
        )
        for i in range(PROCESSES)
    ]
    got: dict[int, list[str]] = {t: [] for t in range(len(tasks))}
    try:
        for process in processes:
            process.start()
        for _ in range(len(tasks) * PROCESSES):
            task, values, error = _next_outcome(results, processes)
            if error:
                where = "while starting" if task < 0 else f"in the herd on {tasks[task][0]!r}"
                raise CheckFailed(f"a herd process failed {where}:\n{error}")
            got[task].extend(values)
    finally:
        barrier.abort()  # no thread anywhere waits for a herd that will not come
        for process in processes:  # never leave one behind; a clean run has them done
            if process.pid is None:
                continue  # never started
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
    _judge(tasks, computes, got)


def _next_outcome(results: Any, processes: list[Any]) -> Outcome:
    """The next process report, within RESULT_SECONDS; a process that died without one
    (killed, crashed, or failed to start) is named at once instead of waited out."""
    deadline = time.monotonic() + RESULT_SECONDS
    while True:
        try:
            outcome: Outcome = results.get(timeout=0.5)
            return outcome
        except queue.Empty:
            pass
        dead = [p for p in processes if p.exitcode not in (None, 0)]
        if dead:
            raise CheckFailed(
                f"herd process {dead[0].name} exited with code {dead[0].exitcode} before "
                "reporting (killed, crashed, or it could not start: a script that runs the "
                "suite needs an `if __name__ == '__main__':` guard)"
            )
        if time.monotonic() >= deadline:
            raise CheckFailed(
                f"{PROCESSES * THREADS_PER_PROCESS} callers in {PROCESSES} processes missed "
                f"one key at once and not all of them returned within {RESULT_SECONDS:g} s "
                "(a hang)"
            )


def _judge(tasks: list[tuple[str, str]], computes: Any, got: dict[int, list[str]]) -> None:
    callers = PROCESSES * THREADS_PER_PROCESS
    for task, (key, value) in enumerate(tasks):
        if computes[task] != 1:
            raise CheckFailed(
                f"{callers} callers in {PROCESSES} processes ({THREADS_PER_PROCESS} threads "
                f"each) missed {key!r} at once and the compute ran {computes[task]} times; "
                "the lease lets one caller compute, the others wait for its value"
            )
        wrong = [v for v in got[task] if v != repr(value)]
        if wrong:
            raise CheckFailed(
                f"{len(wrong)} of {callers} callers in {PROCESSES} processes did not get the "
                f"one compute's value {value!r} for {key!r} (one got {wrong[0]})"
            )
