"""A herd of callers on one key, with a leader held inside its compute until every other
caller waits in its flight: how a test shows single-flight without a race of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Herd:
    """``run(call, others)``: ``call()`` on one thread, held in ``compute`` until ``others``
    more callers wait in its flight (the cache's ``flight_wait`` is :meth:`wait`); then
    every result, and how many times ``compute`` ran."""

    def __init__(self, value: object) -> None:
        self.value = value
        self.computes = 0
        self._started, self._release = threading.Event(), threading.Event()
        self._waiting = threading.Semaphore(0)

    def wait(self, done: threading.Event, timeout: float | None) -> bool:
        """A Cache's ``flight_wait``: counts the callers that joined a flight."""
        self._waiting.release()
        return done.wait(timeout)

    def compute(self) -> object:
        self.computes += 1
        self._started.set()
        self._release.wait(30)
        return self.value

    def run(self, call: Callable[[], object], others: int) -> list[object]:
        results: list[object] = []
        first = threading.Thread(target=lambda: results.append(call()))
        first.start()
        assert self._started.wait(30)
        threads = [threading.Thread(target=lambda: results.append(call())) for _ in range(others)]
        for thread in threads:
            thread.start()
        for _ in threads:
            assert self._waiting.acquire(timeout=30)  # every other caller waits in the flight
        self._release.set()
        for thread in [first, *threads]:
            thread.join(30)
        return results
