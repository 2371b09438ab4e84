"""A failing cache never fails get_or_compute: whichever call fails, in whichever state and
configuration, the caller gets the cached value or the source's (backends/tolerant.py)."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
from typing import Any

import pytest
from herds import Herd

from cachespec.backends import NO_VALUE, BackendUnavailable, MemoryBackend
from cachespec.backends.cache import Cache, frame_refreshable, new_lease
from cachespec.backends.entries import Refreshable, parse
from cachespec.backends.serializers import JSONSerializer
from cachespec.conformance import ManualClock

CALLS = ("get", "add", "set", "compare_and_set", "compare_and_delete")


class Failing(MemoryBackend):
    """A memory backend whose named calls raise, as a cache that went down would."""

    def __init__(self, failing: tuple[str, ...], **options: Any) -> None:
        super().__init__(**options)
        self.failing = failing

    def _fail(self, call: str) -> None:
        if call in self.failing:
            raise BackendUnavailable(f"{call}: the cache went down (injected)")

    def get(self, key: str) -> Any:
        self._fail("get")
        return super().get(key)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        self._fail("add")
        return super().add(key, value, ttl)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._fail("set")
        super().set(key, value, ttl)

    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        self._fail("compare_and_set")
        return super().compare_and_set(key, expected, value, ttl)

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        self._fail("compare_and_delete")
        return super().compare_and_delete(key, expected)


CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "guarded": {},
    "unguarded": {"guarded": False},
    "xfetch": {"early_refresh": True, "random": lambda: 1e-300},  # always due
    "soft ttl": {"refresh_before": 59.0},
    "no single-flight": {"single_flight": False},
    "no lease waits": {"wait_for_lease": False},
}

SOURCE, CACHED = "from the source", "cached"


def _state(name: str, clock: ManualClock) -> bytes | None:
    """The entry under the key before the call: what the cache may have to get past."""
    payload = JSONSerializer().dumps(CACHED)
    return {
        "absent": None,
        "a fill": frame_refreshable(clock() + 60, 0.0, payload),
        "a fill due for refresh": frame_refreshable(clock() + 0.5, 0.0, payload),
        "a corrupt entry": b"?not an entry this cache wrote",
        "another's lease": new_lease(),
    }[name]


STATES = ("absent", "a fill", "a fill due for refresh", "a corrupt entry", "another's lease")
FAILURES = [(call,) for call in CALLS] + [CALLS]


@pytest.mark.parametrize("failing", FAILURES, ids=["+".join(f) for f in FAILURES])
@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
@pytest.mark.parametrize("state", STATES)
def test_get_or_compute_answers_whatever_call_fails(
    failing: tuple[str, ...], configuration: str, state: str
) -> None:
    clock = ManualClock()
    backend = Failing(failing, clock=clock)
    entry = _state(state, clock)
    if entry is not None:
        MemoryBackend.set(backend, "k", entry, 60)  # put in place before anything fails
    cache = Cache(
        backend,
        clock=clock,
        lease_ttl=1.0,
        sleep=clock.advance,  # a wait for another's lease moves the harness's clock
        **CONFIGURATIONS[configuration],
    )
    assert cache.get_or_compute("k", lambda: SOURCE, ttl=60) in (SOURCE, CACHED)
    assert cache.stats.errors + cache.stats.computes + cache.stats.hits >= 1


def test_every_failure_of_a_read_is_counted_and_falls_through() -> None:
    clock = ManualClock()
    cache = Cache(Failing(CALLS, clock=clock), clock=clock, guarded=False)
    values = [cache.get_or_compute("k", lambda: SOURCE) for _ in range(3)]
    assert values == [SOURCE] * 3
    assert (cache.stats.errors, cache.stats.computes, cache.stats.fills) == (3, 3, 0)


def test_a_swallowed_error_is_logged_once_per_quiet_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    cache = Cache(Failing(("get",), clock=clock), clock=clock)
    with caplog.at_level(logging.WARNING, logger="cachespec.backends.tolerant"):
        for _ in itertools.repeat(None, 5):
            cache.get_or_compute("k", lambda: SOURCE)
        clock.advance(60)
        cache.get_or_compute("k", lambda: SOURCE)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Failing: get failed, falling through to the source")
    assert "BackendUnavailable" in lines[0]
    assert "(4 more since the last report)" in lines[1]
    assert cache.stats.errors == 6


def test_nothing_is_logged_while_the_cache_works(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    cache = Cache(MemoryBackend(clock=clock), clock=clock)
    with caplog.at_level(logging.DEBUG, logger="cachespec"):
        for _ in range(3):
            assert cache.get_or_compute("k", lambda: SOURCE) == SOURCE
    assert caplog.records == []


def test_a_lease_without_a_ttl_is_taken_over_once_and_the_key_filled_again() -> None:
    """A forged lease (or one whose TTL a backend dropped) never expires on the backend: the
    first caller waits out the lease time, takes it over and fills; the next one hits."""
    clock = ManualClock()
    backend = MemoryBackend(clock=clock)
    backend.set("k", new_lease())  # no TTL
    cache = Cache(backend, clock=clock, lease_ttl=5.0, sleep=clock.advance)
    assert cache.get_or_compute("k", lambda: SOURCE) == SOURCE
    assert (cache.stats.fills, cache.stats.lease_takeovers) == (1, 1)
    waited = clock()
    assert cache.get_or_compute("k", lambda: "again") == SOURCE  # a hit: no wait, no compute
    assert clock() == waited
    assert cache.stats.computes == 1


@pytest.mark.parametrize("configuration", ["guarded", "unguarded", "soft ttl"])
def test_a_computed_value_that_cannot_be_stored_is_returned_and_counted(
    configuration: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    cache = Cache(MemoryBackend(clock=clock), clock=clock, **CONFIGURATIONS[configuration])
    if configuration == "soft ttl":  # a live fill due for refresh: the refresh is refused
        cache.get_or_compute("k", lambda: CACHED, ttl=60)
        clock.advance(30)
    unstorable = object()
    with caplog.at_level(logging.WARNING, logger="cachespec.backends.tolerant"):
        assert cache.get_or_compute("k", lambda: unstorable, ttl=60) is unstorable
    assert cache.stats.fills_failed == 1
    assert "not cached" in caplog.records[0].getMessage()
    # Nothing of the attempt is left: no lease holds the key, no claim hides the old value.
    raw = cache.backend.get("k")
    if configuration == "soft ttl":
        assert isinstance(raw, bytes)
        assert isinstance(parse(raw), Refreshable)  # the old fill, unclaimed
        assert cache.get("k") == CACHED
    else:
        assert raw is NO_VALUE


def test_a_fill_the_cache_refuses_releases_its_lease() -> None:
    """compare_and_set failed (a value too large, a full or lost cache): the lease goes, so
    the next caller computes at once instead of waiting out the lease time."""
    clock = ManualClock()
    backend = Failing(("compare_and_set",), clock=clock)
    cache = Cache(backend, clock=clock, sleep=clock.advance)
    assert cache.get_or_compute("k", lambda: SOURCE) == SOURCE
    assert MemoryBackend.get(backend, "k") is NO_VALUE
    waited = clock()
    assert cache.get_or_compute("k", lambda: SOURCE) == SOURCE
    assert clock() == waited  # nobody slept on a lease
    assert (cache.stats.errors, cache.stats.fills_dropped) == (2, 0)


def test_a_forged_claim_nested_deep_is_a_corrupt_entry_not_a_recursion() -> None:
    clock = ManualClock()
    backend = MemoryBackend(clock=clock)
    backend.set("k", (b"r" + b"\x00" * 16) * 5000 + b"v1")
    cache = Cache(backend, clock=clock)
    assert cache.get_or_compute("k", lambda: SOURCE) == SOURCE
    assert cache.stats.decode_failures == 1


def test_callers_that_meet_a_failed_cache_together_compute_once() -> None:
    """The cache is down: concurrent callers of one key still share one compute."""
    herd = Herd(SOURCE)
    cache = Cache(Failing(CALLS), flight_wait=herd.wait)
    assert herd.run(lambda: cache.get_or_compute("k", herd.compute), others=3) == [SOURCE] * 4
    assert herd.computes == 1


def test_a_backend_whose_add_and_get_disagree_cannot_hang_a_read() -> None:
    """add says the key is taken, get says it is absent, every time: after a few rounds
    the source answers (it used to loop for ever)."""

    class AtOdds(MemoryBackend):
        def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
            return False

    clock = ManualClock()
    cache = Cache(AtOdds(clock=clock), clock=clock, sleep=clock.advance)
    assert cache.get_or_compute("k", lambda: SOURCE) == SOURCE


def test_nothing_reaches_stderr_until_the_application_configures_logging() -> None:
    """The library's advice: only a NullHandler, so Python's last-resort handler does not
    print a cache's warnings (the suite's deliberately failing caches among them)."""
    program = (
        "from cachespec.backends import BackendUnavailable, Cache, MemoryBackend\n"
        "class Down(MemoryBackend):\n"
        "    def get(self, key):\n"
        "        raise BackendUnavailable('down')\n"
        "print(Cache(Down()).get_or_compute('k', lambda: 'v'))\n"
        "import logging; logging.basicConfig()\n"
        "Cache(Down()).get_or_compute('k', lambda: 'v')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout == "v\n"
    assert done.stderr.count("falling through to the source") == 1  # the configured one
