"""follow_clock: a library that reads time.monotonic() itself runs on the harness's clock."""

from __future__ import annotations

import time
import types

import pytest

from cachespec.backends import Backend, MemoryBackend
from cachespec.conformance import ManualClock, follow_clock
from cachespec.conformance.properties import PROPERTIES
from cachespec.conformance.runner import SIZES, run_property
from cachespec.conformance.target import Target

LIBRARY = """
import time
from time import monotonic, time_ns

def now():
    return time.monotonic()

def now_imported():
    return monotonic()

def wall_ns():
    return time_ns()
"""


def _library() -> types.ModuleType:
    module = types.ModuleType("third_party_cache")
    exec(LIBRARY, module.__dict__)
    return module


def test_every_way_a_module_reads_the_time_follows_the_clock_until_undone() -> None:
    lib, clock = _library(), ManualClock(start=5.0)
    undo = follow_clock(clock, lib)
    assert (lib.now(), lib.now_imported(), lib.wall_ns()) == (5.0, 5.0, 5_000_000_000)
    clock.advance(2.5)
    assert (lib.now(), lib.now_imported()) == (7.5, 7.5)
    assert lib.time.sleep is time.sleep  # everything else is the real module's
    undo_next = follow_clock(ManualClock(start=100.0), lib)  # the next session's clock
    assert lib.now() == 100.0
    undo()  # the first's undo leaves the next session's binding
    assert lib.now() == 100.0
    undo_next()
    assert lib.time is time
    assert lib.monotonic is time.monotonic


def test_a_module_that_reads_no_time_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing to point"):
        follow_clock(ManualClock(), types.ModuleType("no_time_here"))
    with pytest.raises(TypeError):
        follow_clock(ManualClock(), "not a module")  # type: ignore[arg-type]


def _ttl_results(patch: bool) -> dict[str, str]:
    """The TTL properties on a backend whose clock is a library reading time.monotonic()."""
    lib = _library()

    def make_backend(clock: ManualClock) -> Backend:
        if patch:
            follow_clock(clock, lib)
        return MemoryBackend(clock=lib.now)

    target = Target("third_party_cache", make_backend)
    guarantees = target.guarantees()
    wanted = [p for p in PROPERTIES if p.id in ("ttl.expires", "ttl.lives")]
    return {
        p.id: run_property(p, target, guarantees, SIZES["quick"], seed=1).status for p in wanted
    }


def test_the_ttl_properties_pass_once_the_library_follows_the_clock() -> None:
    assert _ttl_results(patch=True) == {"ttl.expires": "pass", "ttl.lives": "pass"}
    # The control: on its own clock the library never sees the harness move time.
    assert _ttl_results(patch=False)["ttl.expires"] == "fail"


def test_a_refusal_changes_nothing_and_an_old_undo_keeps_a_newer_binding() -> None:
    lib = _library()
    with pytest.raises(ValueError, match="nothing to point"):
        follow_clock(ManualClock(), lib, types.ModuleType("no_time_here"))
    assert lib.time is time  # checked before anything was changed
    first = follow_clock(ManualClock(start=1.0), lib)
    follow_clock(ManualClock(start=2.0), lib)  # the next session's clock
    first()
    assert lib.now() == 2.0
