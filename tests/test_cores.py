"""A worker keeps to one core, and a check that races real threads gets every core back.

On one core a check-then-act race never shows (conformance/cores.py): before, a
``cachespec check`` worker let a non-atomic ``add`` pass ``ops.add_atomic`` at every run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cachespec.conformance import cores

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity (Linux) and two CPUs; CI's machine has both",
)

TESTS = Path(__file__).resolve().parent


def test_every_core_gives_new_threads_the_cpus_the_process_started_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = os.sched_getaffinity(0)
    monkeypatch.setattr(cores, "_STARTED_WITH", None)
    try:
        cores.keep_to_one_core(1)
        assert len(os.sched_getaffinity(0)) == 1
        seen: list[set[int]] = []
        with cores.every_core():
            thread = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
            thread.start()
            thread.join()
        assert seen == [started]
        assert len(os.sched_getaffinity(0)) == 1
    finally:
        os.sched_setaffinity(0, started)


def test_a_worker_on_one_core_still_catches_a_non_atomic_add() -> None:
    program = (
        "from cachespec.conformance import Target, run_suite\n"
        "from cachespec.conformance.cores import keep_to_one_core\n"
        "from mutants import NonAtomicAdd\n"
        "keep_to_one_core(0)\n"
        "report = run_suite(Target('mutants:non_atomic_add', NonAtomicAdd), seed=1,\n"
        "                   only=['ops.add_atomic'])\n"
        "print(report.result('ops.add_atomic').status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        check=False,
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fail"
