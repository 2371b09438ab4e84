"""An interrupted race stops its threads before the caller cleans up: no write of the suite
lands on a user's server after the session is discarded."""

from __future__ import annotations

import signal
import threading

import pytest

from cachespec.backends import Backend, MemoryBackend
from cachespec.conformance.properties.threads import THREADS, _race_on


def _racing() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate() if t.name.startswith("cachespec-race-") and t.is_alive()
    ]


def test_an_interrupted_race_ends_every_thread_before_it_lets_the_interruption_go() -> None:
    backend = MemoryBackend()
    stopping = threading.Event()
    writes = [0] * THREADS
    interrupted = threading.Event()

    def work(backend: Backend, i: int) -> object:
        step = 0
        while not stopping.is_set():
            backend.set(f"k{i}", b"v%d" % step)
            writes[i] += 1
            step += 1
            if i == 0 and step == 50 and not interrupted.is_set():
                interrupted.set()
                # A second Ctrl-C while the threads write: a real signal, which wakes the
                # main thread out of its join (interrupt_main would wait for the join).
                signal.pthread_kill(main, signal.SIGINT)
        return None

    main = threading.get_ident()  # signals are handled in the main thread: this one
    assert main == threading.main_thread().ident
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _race_on(backend, work, stopping)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert _racing() == []  # all ended: none can write after the caller's cleanup
    assert stopping.is_set()
    done = list(writes)
    backend.clear()
    assert writes == done
    assert backend.get_many([f"k{i}" for i in range(THREADS)]) == {}


def test_a_race_that_is_not_interrupted_leaves_stopping_unset() -> None:
    stopping = threading.Event()
    results = _race_on(MemoryBackend(), lambda backend, i: i, stopping)
    assert results == list(range(THREADS))
    assert not stopping.is_set()
