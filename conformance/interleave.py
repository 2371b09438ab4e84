"""Deterministic interleavings of concurrent callers, chosen step by step.

Each caller (a *task*) runs ordinary synchronous code on a thread of its own. Every call it
makes on a *scheduled* object (a backend, a source of truth) is a scheduling point: the
task stops there until the scheduler lets exactly it go on, so only one task runs at a time
and the order of their calls is exactly the order the scheduler chose. The code under test
needs no change: the strategies call ``backend.get(...)`` as they would in production.

A state machine drives the scheduler one step at a time (``step(task)``), so Hypothesis
chooses the interleaving, shrinks it, and prints it as the program that replays it. A task
that neither reaches its next point nor finishes within ``patience`` seconds is reported as
hung: a bounded wait catches a hang, nothing sleeps to "make sure".

A hand-off is a pair of raw locks (a baton: exactly one side runs), and a task's thread
comes from a pool and goes back to it: a scheduled call used to cost about 150 us in
``threading.Condition`` and ``Event`` machinery and every task a new thread, which was a
third of a single-flight check's time (docs/cost.md, "The scheduler").
"""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .checks import CannotCheck

T = TypeVar("T")

DEFAULT_PATIENCE = 10.0

# run_to_end and finish: after this many rounds in which a task waited and no time passed,
# the tasks are each stepped on to their next wait (at most SETTLE_STEPS calls) before the
# scheduler decides whether every task waits. Below it, one call each per round, as always;
# only a run that would otherwise spin (pollers out of step) is changed.
SETTLE_AFTER = 16
SETTLE_STEPS = 50


class TaskHung(AssertionError):
    """A task did not reach its next scheduling point, nor finish, within the patience."""


class CannotInterleave(CannotCheck):
    """A task stopped making scheduled calls while another task sat at one: it is blocked on
    something the scheduler does not control, most likely a real lock that the other task
    holds across a cache call. That is a design the harness cannot interleave, not a hang
    (a real lock serializes the callers, and with real threads they would all return).

    A BaseException, so that Hypothesis does not shrink it (each replay would wait out the
    patience again) and the runner reports it at once as a check it cannot make."""


class Abandoned(BaseException):
    """Raised inside a task stopped at a point when its scheduler is closed, so that its
    thread ends. A BaseException: the code under test must not swallow it."""


def _held() -> _thread.LockType:
    lock = _thread.allocate_lock()
    lock.acquire()
    return lock


def _pass(lock: _thread.LockType) -> None:
    """Release ``lock`` unless a release is already pending: after a task was reported hung,
    the driver and the task no longer take turns, and a second release would raise."""
    try:  # noqa: SIM105 (two calls per scheduled call: no context manager on this path)
        lock.release()
    except RuntimeError:
        pass


@dataclass
class Task:
    """One caller: its name, the call it is stopped at, and how it ended."""

    name: str
    # Written only by the side that holds the baton: the task between ``_go`` and ``_back``,
    # the driver otherwise. The locks' release and acquire order every read after the write.
    waiting_at: str | None = None  # the call it is stopped before; None while running/done
    blocked: bool = False  # stopped while waiting for another task (a wait or a sleep)
    abandoned: bool = False  # killed by the driver: it makes no further call
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    trace: list[str] = field(default_factory=list)  # every call it made, in order
    # The baton: the driver releases ``_go`` to let the task run, and the task releases
    # ``_back`` when it stops at its next point or ends. Both start held.
    _go: _thread.LockType = field(default_factory=_held)
    _back: _thread.LockType = field(default_factory=_held)


class _Workers:
    """Threads that run tasks and then wait for the next one, instead of a new thread per
    task (starting one costs about 100 us, and a check starts tens of thousands)."""

    def __init__(self) -> None:
        # Idle threads, each waiting on its lock for a job in its slot. list.append and
        # list.pop are atomic, so the pool needs no lock of its own.
        self._idle: list[tuple[_thread.LockType, list[tuple[str, Callable[[], None]]]]] = []

    def run(self, name: str, job: Callable[[], None]) -> None:
        try:
            wake, slot = self._idle.pop()
        except IndexError:
            wake, slot = _held(), []
            threading.Thread(target=self._serve, args=(wake, slot), daemon=True).start()
        slot.append((name, job))
        wake.release()

    def _serve(self, wake: _thread.LockType, slot: list[tuple[str, Callable[[], None]]]) -> None:
        while True:
            wake.acquire()
            name, job = slot.pop()
            threading.current_thread().name = name  # what a thread dump shows
            job()
            self._idle.append((wake, slot))


# One pool per process; a thread whose task hangs never comes back, and a new one replaces it.
_WORKERS = _Workers()


class Scheduler:
    """Runs tasks one scheduling point at a time, in the order ``step`` is called."""

    def __init__(
        self, patience: float = DEFAULT_PATIENCE, on_stuck: Callable[[], object] | None = None
    ) -> None:
        """``on_stuck`` runs when every unfinished task is waiting for another one while
        the driver runs them to their end: it should let time pass (a lease held by a
        caller that failed to release it expires only on the clock)."""
        self._patience = patience
        self._on_stuck = on_stuck
        self._local = threading.local()
        # Only one side runs at a time (the driver, or the one task it let go), so these
        # are written by whoever holds the baton and need no lock of their own.
        self.tasks: list[Task] = []
        self.log: list[str] = []  # every scheduled call of every task, in the order made
        self._closed = False
        # Why the tasks cannot be interleaved, once a task was seen blocked outside the
        # scheduling points; every later step then raises at once.
        self._cannot: str | None = None

    # ---------------------------------------------------------------- the driver's side
    def spawn(self, name: str, work: Callable[[], object]) -> Task:
        """Start ``work`` on a thread; it runs up to its first scheduling point (or its end)."""
        task = Task(name)

        def run() -> None:
            self._local.task = task
            task._go.acquire()
            try:
                task.result = work()
            except Abandoned:
                pass
            except BaseException as exc:  # the driver reports whatever the task raised
                task.error = exc
            finally:
                self._local.task = None  # the thread goes back to the pool
            task.done = True
            task.waiting_at = None
            _pass(task._back)

        self.tasks.append(task)
        _WORKERS.run(f"task {name}", run)
        self._release(task)
        return task

    def note(self, event: str) -> int:
        """Record something the driver did (a task started, an event delivered) in the log,
        between the tasks' calls; return its position, which later steps come after."""
        self.log.append(event)
        return len(self.log)

    def runnable(self) -> list[Task]:
        return [t for t in self.tasks if not t.done]

    def returned(self) -> int:
        """How many tasks have ended so far."""
        return sum(t.done for t in self.tasks)

    def step(self, task: Task) -> None:
        """Let ``task`` make the call it is stopped at, and run on to its next point."""
        if not task.done:
            self._release(task)

    def finish(self, max_steps: int = 10_000) -> None:
        """Run every task to its end, one call each in turn (a fixed, reproducible order:
        a task waiting for another keeps polling while the other makes progress).

        Raises :class:`TaskHung` if they are still running after ``max_steps`` calls: some
        task waits for something that will never happen."""
        waited = 0  # rounds in which some task waited, since time last passed
        for _ in range(max_steps):
            pending = self.runnable()
            if not pending:
                return
            if any(t.blocked for t in pending):
                waited += 1
            if waited > SETTLE_AFTER:
                # Pollers out of step (see run_to_end): let each run on to its next wait.
                for task in pending:
                    self._settle(task)
                pending = self.runnable()
                if not pending:
                    return
            if self._unstick(pending):
                waited = 0
            for task in pending:
                self.step(task)
        stuck = {t.name: t.waiting_at for t in self.runnable()}
        raise TaskHung(f"tasks still running after {max_steps} rounds, each at: {stuck}")

    def run_to_end(self, task: Task, max_steps: int = 10_000) -> None:
        """Run ``task`` to its end. While it waits for another task, each of the others
        makes one call in turn (oldest first), so that what it waits for can happen.

        Raises :class:`TaskHung` if it is still running after ``max_steps`` of its calls."""
        waited = 0  # rounds ``task`` has been blocked since time last passed
        for _ in range(max_steps):
            if task.done:
                return
            if task.blocked:
                waited += 1
                pending = self.runnable()
                if waited > SETTLE_AFTER:
                    # Tasks that poll (sleep, try again, sleep) are blocked only part of
                    # the time: two of them out of step are never blocked together, and
                    # time would never pass. After a few rounds, let each run on to its
                    # next wait before deciding.
                    for other in pending:
                        self._settle(other)
                    pending = self.runnable()
                if self._unstick(pending):
                    waited = 0
                for other in pending:
                    if other is not task:
                        self.step(other)
            self.step(task)
        if not task.done:
            raise TaskHung(
                f"task {task.name} still running after {max_steps} calls, at {task.waiting_at}"
            )

    def _unstick(self, pending: list[Task]) -> bool:
        """Let time pass if every task in ``pending`` waits; say whether it did."""
        if self._on_stuck is not None and all(t.blocked for t in pending):
            self._on_stuck()
            return True
        return False

    def _settle(self, task: Task) -> None:
        """Step ``task`` until it waits for another task or ends (at most SETTLE_STEPS)."""
        for _ in range(SETTLE_STEPS):
            if task.done or task.blocked:
                return
            self.step(task)

    def waiter(self, clock: Callable[[], float]) -> Callable[[threading.Event, float | None], bool]:
        """A ``wait(done, timeout)`` for code under test that waits for another task: each
        look at ``done`` is a scheduling point, and the timeout runs on ``clock`` (the
        harness's), so the driver decides both who runs meanwhile and when time is up."""

        def wait(done: threading.Event, timeout: float | None) -> bool:
            deadline = None if timeout is None else clock() + timeout
            while not done.is_set():
                if deadline is not None and clock() >= deadline:
                    return False
                self.point("wait for another caller", blocked=True)
            return True

        return wait

    def sleeper(self) -> Callable[[float], None]:
        """A ``sleep(seconds)`` that is a scheduling point and lets no time pass: time is
        the driver's to move."""

        def sleep(seconds: float) -> None:
            self.point(f"sleep({seconds!r})", blocked=True)

        return sleep

    def abandon(self, task: Task) -> None:
        """Kill ``task`` where it stands, as if its process died: it raises
        :class:`Abandoned` at its point, and any call its unwinding code attempts raises
        :class:`Abandoned` too, so that nothing it would have cleaned up is cleaned up."""
        if task.done:
            return
        task.abandoned = True
        _pass(task._go)
        if not task._back.acquire(timeout=self._patience):
            raise TaskHung(f"task {task.name} did not unwind within {self._patience} s")

    def current(self) -> Task | None:
        """The task the calling thread runs, or None for the driver."""
        task: Task | None = getattr(self._local, "task", None)
        return task

    def close(self) -> None:
        """Unwind every unfinished task (each raises :class:`Abandoned` at its point)."""
        self._closed = True
        deadline = time.monotonic() + self._patience
        for task in [t for t in self.tasks if not t.done]:
            _pass(task._go)
            # A task that does not unwind in time is left behind, as before: its thread
            # never returns to the pool. Real time: this bounds a hang, it orders nothing.
            task._back.acquire(timeout=max(0.0, deadline - time.monotonic()))

    def _release(self, task: Task) -> None:
        if self._cannot is not None:  # one wait of the patience is enough to know
            raise CannotInterleave(self._cannot)
        task.waiting_at = None
        task._go.release()
        if task._back.acquire(timeout=self._patience):
            return
        paused = [t for t in self.tasks if t is not task and not t.done and t.waiting_at]
        if paused:
            holders = ", ".join(f"{t.name} (stopped before {t.waiting_at})" for t in paused)
            self._cannot = (
                f"caller {task.name} made no cache or source call and did not return within "
                f"{self._patience} s while {holders} waited for its turn: it is blocked on "
                "something the harness does not schedule, most likely a real lock held across "
                "a cache call. The harness runs one caller at a time between cache and source "
                "calls, so it cannot interleave these callers (with real threads they would "
                "take turns on the lock)"
            )
            raise CannotInterleave(self._cannot)
        raise TaskHung(
            f"task {task.name} neither reached its next call nor finished within "
            f"{self._patience} s (calls so far: {task.trace or 'none'})"
        )

    # ------------------------------------------------------------------ the task's side
    def point(self, call: str, *, blocked: bool = False) -> None:
        """Stop the calling task before ``call`` until the driver steps it. Outside a task
        (the driver's own reads and writes), run at once. ``blocked``: the task is waiting
        for another one (see :meth:`run_to_end`)."""
        task: Task | None = getattr(self._local, "task", None)
        if task is None:
            return
        if task.abandoned:
            raise Abandoned(task.name)
        task.waiting_at = call
        task.blocked = blocked
        _pass(task._back)
        task._go.acquire()
        if self._closed or task.abandoned:
            raise Abandoned(task.name)
        task.trace.append(call)
        self.log.append(f"{task.name}: {call}")


class Scheduled(Generic[T]):
    """A proxy whose every method call is a scheduling point of ``scheduler``."""

    def __init__(self, target: T, scheduler: Scheduler, label: str) -> None:
        self._target = target
        self._scheduler = scheduler
        self._label = label

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        def scheduled(*args: Any, **kwargs: Any) -> Any:
            named = (f"{k}={_short(v)}" for k, v in kwargs.items())
            shown = ", ".join([*map(_short, args), *named])
            self._scheduler.point(f"{self._label}.{name}({shown})")
            return attribute(*args, **kwargs)

        return scheduled


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
