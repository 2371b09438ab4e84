"""The scheduler: tasks run one call at a time, in the order the driver steps them."""

from __future__ import annotations

import threading

import pytest

from cachespec.conformance.interleave import Scheduled, Scheduler, TaskHung


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


def test_close_unwinds_stopped_tasks() -> None:
    scheduler = Scheduler(patience=5)
    store = Scheduled(Store(), scheduler, "store")
    task = scheduler.spawn("A", lambda: (store.get("a"), store.get("b")))
    scheduler.close()
    assert task.done
    assert task.error is None
