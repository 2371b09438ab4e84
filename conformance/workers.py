"""Properties spread over worker processes (``cachespec check --jobs N``).

Properties are independent: each derives its Hypothesis seed from the run's, and every
example opens a session of its own. So a run can hand them to N processes, each resolving
the backend itself (its own throwaway server, its own client), and get the report one
process would have written, sooner. The costliest properties go out first (longest
processing time first), so that the workers end at about the same time.

Stopping: Ctrl-C reaches the whole process group, so a worker ignores SIGINT and leaves the
decision to the parent. The parent, stopped, sends each worker SIGTERM, on which the worker
unwinds through its finally blocks (its servers stop), and waits at most ``STOP_GRACE``
seconds before it kills what is left. See docs/cost.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis.configuration import set_hypothesis_home_dir, storage_directory

from .cores import keep_to_one_core
from .properties import BY_ID, Property
from .runner import (
    SIZES,
    STOP,
    Listener,
    Outcomes,
    Result,
    run_property,
    signal_name,
    ticking,
)
from .staleness import resolve_strategies
from .target import TargetError, resolve_target

STOP_GRACE = 10.0
# How often the parent looks for a worker that died without a word (killed -9, say).
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Job:
    """What a worker needs to rebuild the run: text only, so that it crosses processes."""

    backend: str | None
    strategy: str | None
    size: str
    seed: int
    hypothesis_home: str | None


class _Stopped(KeyboardInterrupt):
    """SIGTERM in a worker: unwind as Ctrl-C would (Hypothesis stops at once on it)."""


def _unwind(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one unwinding, not a second mid-cleanup
    STOP.ask(_Stopped)  # raised at the next example or property (runner.StopRequest)


class _Forward(Listener):
    """A worker's listener: progress goes to the parent."""

    def __init__(self, results: Any) -> None:
        self._results = results

    def ticked(self, prop_id: str, done: int, examples: int, seconds: float) -> None:
        self._results.put(("tick", prop_id, done, examples, seconds))


def _die_with_parent() -> None:
    """Have the kernel send this worker SIGTERM if its parent dies, however it dies (a
    SIGKILL runs no finally block there): the worker then unwinds and stops its servers.
    Linux only (prctl); elsewhere a worker outlives a killed parent until its queue ends."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _work(job: Job, tasks: Any, results: Any, index: int) -> None:
    """A worker's life: resolve the target, run properties until told to stop, clean up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _unwind)
    _die_with_parent()
    keep_to_one_core(index)
    if job.hypothesis_home is not None:
        set_hypothesis_home_dir(job.hypothesis_home)
    target = None
    try:
        target = resolve_target(job.backend)
        if job.strategy is not None:
            target.strategies = resolve_strategies(job.strategy)
            target.strategy_spec = job.strategy
        guarantees = target.guarantees()
        budget = SIZES[job.size]
        forward = _Forward(results)
        while (prop_id := tasks.get()) is not None:
            STOP.check()
            prop = BY_ID[prop_id]
            with ticking(target, prop, budget.examples(prop), forward):
                result = run_property(prop, target, guarantees, budget, job.seed)
            results.put(("done", result))
    except _Stopped:
        pass
    except TargetError as exc:
        results.put(("target-error", str(exc)))
    except BaseException:  # a bug of ours: the parent reports it whole
        results.put(("crash", traceback.format_exc()))
    finally:
        try:
            if target is not None:
                target.close()
        finally:
            results.put(("exit", os.getpid()))


def run_in_workers(
    spec: tuple[str | None, str | None],
    chosen: Sequence[Property],
    *,
    size: str,
    seed: int,
    jobs: int,
    listener: Listener,
) -> Outcomes:
    """Run ``chosen`` on ``jobs`` worker processes; results as they come, by id."""
    backend, strategy = spec
    home = str(storage_directory(intent_to_write=False).path)
    job = Job(backend, strategy, size, seed, home)
    # spawn, not fork: the caller may have threads (a pytest run, a server's reader), and a
    # forked copy of a lock held by one of them would never be released.
    context = multiprocessing.get_context("spawn")
    tasks: Any = context.Queue()
    results: Any = context.Queue()
    budget = SIZES[size]
    for prop in sorted(chosen, key=lambda p: p.cost * budget.examples(p), reverse=True):
        tasks.put(prop.id)
    for _ in range(jobs):
        tasks.put(None)
    workers = [
        context.Process(target=_work, args=(job, tasks, results, n), name=f"cachespec-worker-{n}")
        for n in range(jobs)
    ]
    outcomes = Outcomes()
    try:
        for worker in workers:  # inside the try: a Ctrl-C now still stops those started
            worker.start()
        _collect(workers, results, outcomes, len(chosen), listener)
        for worker in workers:  # each said it is leaving; let it finish flushing
            worker.join(STOP_GRACE)
    except KeyboardInterrupt as stop:
        outcomes.interrupted = signal_name(stop)
    finally:
        _stop(workers)
    return outcomes


def _collect(
    workers: list[Any], results: Any, outcomes: Outcomes, total: int, listener: Listener
) -> None:
    exited: set[int] = set()
    while len(exited) < len(workers):
        STOP.check()  # Ctrl-C or SIGTERM to the parent: stop the workers (the caller's finally)
        try:
            message = results.get(timeout=POLL_SECONDS)
        except queue.Empty:
            dead = [w for w in workers if w.exitcode is not None and w.pid not in exited]
            if dead and results.empty():
                codes = ", ".join(f"{w.name} exit code {w.exitcode}" for w in dead)
                raise RuntimeError(f"a worker process died without a word ({codes})") from None
            continue
        kind = message[0]
        if kind == "done":
            result: Result = message[1]
            outcomes[result.id] = result
            listener.finished(result, len(outcomes), total)
        elif kind == "tick":
            listener.ticked(*message[1:])
        elif kind == "exit":
            exited.add(message[1])
        elif kind == "target-error":
            raise TargetError(message[1])
        else:
            raise RuntimeError(f"a worker process failed:\n{message[1]}")


def _stop(workers: list[Any]) -> None:
    """Ask every live worker to unwind, wait a little, then kill what is left.

    A stop can come while the workers are still being started: those never started have no
    pid and nothing to stop (joining one would raise)."""
    started = [w for w in workers if w.pid is not None]
    for worker in started:
        if worker.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
    for worker in started:
        worker.join(STOP_GRACE)
        if worker.exitcode is None:
            worker.kill()
            worker.join()
