"""The scheduler: tasks run one call at a time, in the order the driver steps them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from cachespec.backends import Cache
from cachespec.conformance import run_suite
from cachespec.conformance.interleave import CannotInterleave, Scheduled, Scheduler, TaskHung
from cachespec.conformance.staleness import Strategies


class Store:
    def __init__(self) -> None:
        self.data: dict[str, int] = {}

    def get(self, key: str) -> int | None:
        return self.data.get(key)

    def set(self, key: str, value: int) -> None:
        self.data[key] = value


def test_tasks_stop_at_every_call_and_run_in_the_chosen_order() -> None:
    scheduler = Scheduler(patience=5)
    store = Scheduled(Store(), scheduler, "store")

    def reader() -> int | None:
        seen: int | None = store.get("x")
        store.set("seen", seen or 0)
        return seen

    r = scheduler.spawn("R", reader)
    w = scheduler.spawn("W", lambda: store.set("x", 1))
    assert [t.waiting_at for t in scheduler.tasks] == ["store.get('x')", "store.set('x', 1)"]
    scheduler.step(w)
    assert w.done
    scheduler.finish()
    assert r.result == 1
    assert scheduler.log == ["W: store.set('x', 1)", "R: store.get('x')", "R: store.set('seen', 1)"]


def test_the_driver_notes_interleave_with_the_calls() -> None:
    scheduler = Scheduler(patience=5)
    store = Scheduled(Store(), scheduler, "store")
    task = scheduler.spawn("T", lambda: store.get("a"))
    assert scheduler.note("something happened") == 1
    scheduler.finish()
    assert scheduler.log == ["something happened", "T: store.get('a')"]
    assert task.done


def test_calls_outside_a_task_are_not_scheduled() -> None:
    scheduler = Scheduler(patience=5)
    store = Scheduled(Store(), scheduler, "store")
    store.set("a", 1)
    assert store.get("a") == 1
    assert scheduler.log == []


def test_a_task_that_raises_reports_its_error() -> None:
    scheduler = Scheduler(patience=5)
    store = Scheduled(Store(), scheduler, "store")

    def boom() -> None:
        store.get("a")
        raise RuntimeError("boom")

    task = scheduler.spawn("B", boom)
    scheduler.finish()
    assert isinstance(task.error, RuntimeError)


def test_a_hang_is_caught_by_a_bounded_wait() -> None:
    release = threading.Event()
    scheduler = Scheduler(patience=0.2)
    with pytest.raises(TaskHung, match="neither reached its next call nor finished"):
        scheduler.spawn("H", release.wait)
    release.set()


def test_a_real_lock_held_across_a_scheduled_call_is_told_from_a_hang() -> None:
    """The second caller blocks on a lock the first holds while the first waits for its
    turn at a store call: a design the scheduler cannot interleave, not a hang."""
    lock = threading.Lock()
    scheduler = Scheduler(patience=0.2)
    store = Scheduled(Store(), scheduler, "store")

    def locked_read() -> object:
        with lock:
            return store.get("x")

    first = scheduler.spawn("A", locked_read)
    assert first.waiting_at == "store.get('x')"
    with pytest.raises(CannotInterleave, match=r"A \(stopped before store.get\('x'\)\)"):
        scheduler.spawn("B", locked_read)
    scheduler.close()  # A unwinds and lets go of the lock; B then unwinds too
    assert first.done


class LockedCacheAside(Strategies):
    """Cache-aside with every read under one real lock, held across the cache calls: the
    callers take turns, which is correct, and which the scheduler cannot interleave."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def read(self, cache: Cache, key: str, compute: Callable[[], Any], ttl: float | None) -> Any:
        with self._lock:
            return cache.get_or_compute(key, compute, ttl)


def test_a_strategy_under_a_real_lock_is_a_check_the_harness_cannot_make() -> None:
    report = run_suite(
        "memory://", seed=1, only=["staleness.cache_aside"], strategy=LockedCacheAside()
    )
    result = report.result("staleness.cache_aside")
    assert (result.status, result.skip) == ("skip", "cannot check here"), result.reason
    assert "most likely a real lock held across a cache call" in result.reason


def test_close_unwinds_stopped_tasks() -> None:
    scheduler = Scheduler(patience=5)
    store = Scheduled(Store(), scheduler, "store")
    task = scheduler.spawn("A", lambda: (store.get("a"), store.get("b")))
    scheduler.close()
    assert task.done
    assert task.error is None


def test_abandon_kills_a_task_and_every_call_its_cleanup_attempts() -> None:
    scheduler = Scheduler(patience=5)
    plain = Store()
    store = Scheduled(plain, scheduler, "store")

    def holds_then_cleans_up() -> None:
        store.set("lease", 1)
        try:
            store.get("work")
        finally:
            store.set("lease", 0)  # a dead process never gets to run this

    task = scheduler.spawn("A", holds_then_cleans_up)
    scheduler.step(task)  # it takes the lease, and stops before its work
    scheduler.abandon(task)
    assert task.done
    assert task.abandoned
    assert plain.data == {"lease": 1}


def test_run_to_end_lets_the_others_run_while_the_task_waits() -> None:
    scheduler = Scheduler(patience=5)
    store = Scheduled(Store(), scheduler, "store")
    done = threading.Event()
    wait = scheduler.waiter(lambda: 0.0)

    def work() -> None:
        store.set("x", 1)
        done.set()

    waiter = scheduler.spawn("W", lambda: wait(done, None))
    worker = scheduler.spawn("L", work)
    scheduler.run_to_end(waiter)
    assert waiter.result is True
    assert worker.done


def test_when_every_task_waits_time_passes_and_a_wait_that_never_ends_is_reported() -> None:
    now = [0.0]
    scheduler = Scheduler(patience=5, on_stuck=lambda: now.__setitem__(0, now[0] + 1.0))
    wait = scheduler.waiter(lambda: now[0])
    timed = scheduler.spawn("T", lambda: wait(threading.Event(), 3.0))
    scheduler.run_to_end(timed)
    assert timed.result is False  # it gave up after 3 s on the injected clock
    assert now[0] >= 3.0
    forever = scheduler.spawn("F", lambda: wait(threading.Event(), None))
    with pytest.raises(TaskHung, match="still running after 50 calls"):
        scheduler.run_to_end(forever, max_steps=50)
    scheduler.close()


def test_pollers_out_of_step_still_let_time_pass() -> None:
    """Two tasks poll for something only time brings (sleep, look, sleep), out of step, and
    a third waits for one of them: every task waits, though never all at the same call."""
    clock = [0.0]
    scheduler = Scheduler(patience=5, on_stuck=lambda: clock.__setitem__(0, clock[0] + 1))
    store = Scheduled(Store(), scheduler, "store")
    sleep = scheduler.sleeper()
    done = threading.Event()

    def poller(first: bool) -> None:
        if not first:
            store.get("warm-up")  # one call more: out of step with the other poller
        while clock[0] < 3:
            sleep(0.01)
            store.get("lease")
        done.set()

    def waiter() -> bool:
        return scheduler.waiter(lambda: 0.0)(done, None)

    w = scheduler.spawn("W", waiter)
    scheduler.spawn("P1", lambda: poller(True))
    scheduler.spawn("P2", lambda: poller(False))
    scheduler.run_to_end(w, max_steps=300)
    assert w.result is True
    assert clock[0] >= 3


def test_finish_lets_time_pass_for_pollers_out_of_step() -> None:
    """The same two pollers run to their ends by ``finish`` (a state machine's teardown,
    found by faults.write_through on memory://): time must still pass."""
    clock = [0.0]
    scheduler = Scheduler(patience=5, on_stuck=lambda: clock.__setitem__(0, clock[0] + 1))
    store = Scheduled(Store(), scheduler, "store")
    sleep = scheduler.sleeper()

    def poller(first: bool) -> str:
        if not first:
            store.get("warm-up")
        while clock[0] < 3:
            sleep(0.01)
            store.get("lease")
        return "done"

    tasks = [
        scheduler.spawn("P1", lambda: poller(True)),
        scheduler.spawn("P2", lambda: poller(False)),
    ]
    scheduler.finish(max_steps=300)
    assert [t.result for t in tasks] == ["done", "done"]
    assert clock[0] >= 3
