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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

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


class Abandoned(BaseException):
    """Raised inside a task stopped at a point when its scheduler is closed, so that its
    thread ends. A BaseException: the code under test must not swallow it."""


@dataclass
class Task:
    """One caller: its name, the call it is stopped at, and how it ended."""

    name: str
    # Guarded by Scheduler._lock:
    waiting_at: str | None = None  # the call it is stopped before; None while running/done
    blocked: bool = False  # stopped while waiting for another task (a wait or a sleep)
    abandoned: bool = False  # killed by the driver: it makes no further call
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    trace: list[str] = field(default_factory=list)  # every call it made, in order
    _go: threading.Event = field(default_factory=threading.Event)


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
        self._lock = threading.Condition()
        self._local = threading.local()
        self.tasks: list[Task] = []
        self.log: list[str] = []  # every scheduled call of every task, in the order made
        self._closed = False  # guarded by _lock

    # ---------------------------------------------------------------- the driver's side
    def spawn(self, name: str, work: Callable[[], object]) -> Task:
        """Start ``work`` on a thread; it runs up to its first scheduling point (or its end)."""
        task = Task(name)

        def run() -> None:
            self._local.task = task
            task._go.wait()
            try:
                task.result = work()
            except Abandoned:
                pass
            except BaseException as exc:  # the driver reports whatever the task raised
                task.error = exc
            with self._lock:
                task.done = True
                task.waiting_at = None
                self._lock.notify_all()

        self.tasks.append(task)
        thread = threading.Thread(target=run, name=f"task {name}", daemon=True)
        thread.start()
        self._release(task)
        return task

    def note(self, event: str) -> int:
        """Record something the driver did (a task started, an event delivered) in the log,
        between the tasks' calls; return its position, which later steps come after."""
        with self._lock:
            self.log.append(event)
            return len(self.log)

    def runnable(self) -> list[Task]:
        with self._lock:
            return [t for t in self.tasks if not t.done]

    def step(self, task: Task) -> None:
        """Let ``task`` make the call it is stopped at, and run on to its next point."""
        with self._lock:
            if task.done:
                return
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
        with self._lock:
            if task.done:
                return
            task.abandoned = True
            task._go.set()
            self._lock.wait_for(lambda: task.done, timeout=self._patience)
        if not task.done:
            raise TaskHung(f"task {task.name} did not unwind within {self._patience} s")

    def current(self) -> Task | None:
        """The task the calling thread runs, or None for the driver."""
        task: Task | None = getattr(self._local, "task", None)
        return task

    def close(self) -> None:
        """Unwind every unfinished task (each raises :class:`Abandoned` at its point)."""
        with self._lock:
            self._closed = True
            pending = [t for t in self.tasks if not t.done]
            for task in pending:
                task._go.set()
            self._lock.wait_for(lambda: all(t.done for t in pending), timeout=self._patience)

    def _release(self, task: Task) -> None:
        with self._lock:
            task.waiting_at = None
            task._go.set()
            hung = not self._lock.wait_for(
                lambda: task.done or task.waiting_at is not None, timeout=self._patience
            )
        if hung:
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
        with self._lock:
            task._go.clear()
            task.waiting_at = call
            task.blocked = blocked
            self._lock.notify_all()
        task._go.wait()
        with self._lock:
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
