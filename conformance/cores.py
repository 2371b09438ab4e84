"""Which CPUs a worker runs on: one for the scheduler's hand-offs, all of them for races.

A worker process keeps to one core (:func:`keep_to_one_core`), because handing control
from thread to thread at every scheduled call is four times faster there (docs/cost.md,
"The scheduler"). A property that races real threads needs the opposite: on one core only
one thread runs at a time, no other thread asks for the GIL while it runs, and a
check-then-act race never shows (measured: a non-atomic ``add`` survived 300 trials at
each of 12 runs). :func:`every_core` gives such a check back the CPUs the process started
with. Linux only; elsewhere both do nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# The CPUs this process could use before keep_to_one_core narrowed them (None: never did).
_STARTED_WITH: set[int] | None = None


def keep_to_one_core(index: int) -> None:
    """Keep this process on one CPU, the ``index``-th it may use (round robin), so that
    workers spread over the cores. The servers a worker starts inherit the core, so that
    each request and its reply also stay on it."""
    global _STARTED_WITH  # noqa: PLW0603 - set once per worker process, at its start
    if not hasattr(os, "sched_setaffinity"):
        return
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) > 1:
        _STARTED_WITH = set(allowed)
        os.sched_setaffinity(0, {allowed[index % len(allowed)]})


@contextlib.contextmanager
def every_core() -> Iterator[None]:
    """Run the block, and the threads it starts, on every CPU the process started with.

    Linux sets affinity per thread, and a new thread inherits its creator's: so the threads
    the block starts get every core, and this thread gets its one core back afterwards.
    """
    if _STARTED_WITH is None:
        yield
        return
    narrowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, _STARTED_WITH)
    try:
        yield
    finally:
        os.sched_setaffinity(0, narrowed)
