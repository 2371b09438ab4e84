"""open_backend(url, lazy=True): an application starts while its cache is down, reads from
the source meanwhile, and uses the cache once it can be reached."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from cachespec import Cache, ConfigurationError, MemoryBackend, open_backend
from cachespec.backends import NO_VALUE, Backend, BackendUnavailable
from cachespec.backends.lazy import LazyBackend
from cachespec.conformance import ManualClock
from cachespec.conformance.servers import start_memcached, start_redis
from cachespec.spec import Guarantees


class Opener:
    """Fails while ``down``; counts its attempts."""

    def __init__(self) -> None:
        self.down = True
        self.attempts = 0
        self.backend = MemoryBackend()

    def __call__(self) -> Backend:
        self.attempts += 1
        if self.down:
            raise BackendUnavailable("connection refused (injected)")
        return self.backend


def _lazy(opener: Opener, clock: ManualClock) -> LazyBackend:
    return LazyBackend(
        opener,
        name="test://",
        declared=Guarantees(compare_and_set=True),
        retry_after=5.0,
        clock=clock,
    )


def test_while_down_reads_come_from_the_source_and_opening_is_retried_once_a_period() -> None:
    opener, clock = Opener(), ManualClock()
    lazy = _lazy(opener, clock)
    cache = Cache(lazy, clock=clock)
    for _ in range(3):
        assert cache.get_or_compute("k", lambda: "source") == "source"
    assert opener.attempts == 1  # one attempt in the period, not one per read
    assert not lazy.opened
    with pytest.raises(BackendUnavailable, match=r"not open yet.*connection refused"):
        lazy.get("k")
    clock.advance(5.0)
    opener.down = False
    assert cache.get_or_compute("k", lambda: "source") == "source"  # opens, then fills
    assert lazy.opened
    assert opener.attempts == 2
    assert cache.get_or_compute("k", lambda: "other") == "source"  # a hit
    assert lazy.guarantees is opener.backend.guarantees  # the backend's own, once open


def test_a_configuration_error_at_open_is_not_retried_but_said_every_time() -> None:
    attempts = []

    def misconfigured() -> Backend:
        attempts.append(1)
        raise ConfigurationError("database 99 is out of range")

    lazy = LazyBackend(misconfigured, name="test://", declared=Guarantees())
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="out of range"):
            lazy.get("k")
    assert attempts == [1]


def test_a_closed_lazy_backend_stays_closed() -> None:
    opener, clock = Opener(), ManualClock()
    opener.down = False
    lazy = _lazy(opener, clock)
    assert lazy.try_open()
    lazy.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        lazy.get("k")
    assert opener.attempts == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.redis
@pytest.mark.memcached
@pytest.mark.parametrize("scheme", ["redis", "memcached"])
def test_a_server_that_is_down_at_startup_does_not_fail_the_app(scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{_free_port()}" + ("/0" if scheme == "redis" else "")
    with pytest.raises(BackendUnavailable):
        open_backend(url)  # what an app met at startup before
    lazy = open_backend(url, lazy=True)
    assert isinstance(lazy, LazyBackend)
    assert not lazy.opened
    cache = Cache(lazy)  # guarded: every server of the scheme offers compare_and_set
    assert cache.get_or_compute("k", lambda: "source") == "source"
    assert cache.stats.errors == 1
    lazy.close()


@pytest.mark.redis
@pytest.mark.memcached
@pytest.mark.parametrize("start", [start_redis, start_memcached])
def test_a_server_that_is_up_opens_at_once(start: object) -> None:
    with start() as server:  # type: ignore[operator]
        lazy = open_backend(server.url, lazy=True, namespace="lazy")
        assert isinstance(lazy, LazyBackend)
        assert lazy.opened
        cache = Cache(lazy)
        assert cache.get_or_compute("k", lambda: "source") == "source"
        assert cache.get_or_compute("k", lambda: "other") == "source"
        assert lazy.get("absent") is NO_VALUE
        lazy.discard()
        lazy.close()


def test_a_bad_url_or_an_unknown_scheme_fails_at_once_even_when_lazy() -> None:
    with pytest.raises(ConfigurationError):
        open_backend("nosuch://host", lazy=True)
    with pytest.raises(ConfigurationError):
        open_backend("redis://host:0", lazy=True)
    with pytest.raises(ConfigurationError, match="lazy=True opens"):
        open_backend("memory://", lazy=True)  # what it promises is known only once open


def test_while_one_caller_opens_the_others_do_not_wait_for_it() -> None:
    clock = ManualClock()
    seen: list[str] = []

    def opening() -> Backend:
        with pytest.raises(BackendUnavailable, match="opening") as other:
            lazy.get("k")  # another caller, while this one connects: answered at once
        seen.append(str(other.value))
        raise OSError("a driver's own error")

    lazy = LazyBackend(opening, name="test://", declared=Guarantees(), clock=clock)
    with pytest.raises(BackendUnavailable, match="OSError"):
        lazy.get("k")  # any exception of an open is an unreachable cache, tried later
    assert len(seen) == 1
    with pytest.raises(BackendUnavailable, match="not open yet"):
        lazy.get("k")  # within the period: no second attempt
    assert len(seen) == 1


def test_a_backend_without_what_was_declared_is_refused_when_it_opens() -> None:
    class WithoutCompare(MemoryBackend):
        def __init__(self) -> None:
            super().__init__()
            self.guarantees = dataclasses.replace(self.guarantees, compare_and_set=False)

    lazy = LazyBackend(WithoutCompare, name="test://", declared=Guarantees(compare_and_set=True))
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="does not run compare_and_set"):
            lazy.get("k")
