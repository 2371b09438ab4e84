"""``RedisInvalidationListener`` through outages (issue #13; docs/design.md, "Outages").

Every test subscribes to a real redis-server the harness starts (``conformance/servers/``)
and publishes to it. The cache behind the listener is a ``MemoryBackend`` on a
``ManualClock``, wrapped where a test needs it to fail with ``CacheError``; the listener's
retry clock is that ``ManualClock`` too, and its sleep before a new connection is injected,
so the tests own time. Nothing sleeps: a test waits, bounded, for a condition
(:func:`until`). The connection is lost by ``CLIENT KILL TYPE pubsub`` and by restarting
the server (:meth:`ManagedServer.restart`).

Each check has a mutant below that it rejects: the listener as it was (its thread ends on
the first cache error), one that never gives a key up, and one blind to gaps.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cachespec.backends import (
    NO_VALUE,
    BackendUnavailable,
    Cache,
    CacheError,
    ConfigurationError,
    EventInvalidator,
    ListenerHealth,
    MemoryBackend,
    RedisInvalidationListener,
    strategies,
)
from cachespec.backends import listener as listener_module
from cachespec.conformance.clock import ManualClock
from cachespec.conformance.servers import ManagedServer, start_redis

pytestmark = pytest.mark.redis

CHANNEL = "invalidate"
RETRY_DELAYS = (1.0, 2.0, 4.0)
PATIENCE = 10.0  # seconds of real time a condition may take to hold (a loaded CI machine)


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until ``condition()`` holds: the listener's thread gets there."""
    settled = threading.Event()
    for _ in range(int(PATIENCE / 0.005)):
        if condition():
            return
        settled.wait(0.005)  # a poll interval, not a wait for an outcome
    pytest.fail(f"not within {PATIENCE:g} s: {what}")


class Flaky(MemoryBackend):
    """A memory backend whose deletes raise ``CacheError`` while ``failures`` lasts
    (``None``: forever)."""

    def __init__(self, clock: ManualClock, failures: int | None) -> None:
        super().__init__(clock=clock, capacity=None)
        self.failures = failures

    def delete_many(self, keys: Any) -> None:
        if self.failures is None or self.failures > 0:
            if self.failures is not None:
                self.failures -= 1
            raise CacheError("the cache is down")
        super().delete_many(keys)


@pytest.fixture(scope="module")
def server() -> Iterator[ManagedServer]:
    with start_redis() as started:
        yield started


@pytest.fixture
def raw(server: ManagedServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host=server.host, port=server.port, socket_timeout=5)
    yield client
    client.close()


class Rig:
    """A cache, its invalidator and a listener on the harness's Redis, with a record of
    every health report, gap and reconnect delay."""

    def __init__(
        self,
        server: ManagedServer,
        *,
        failures: int | None = 0,
        on_gap: bool = True,
        listener: type[RedisInvalidationListener] = RedisInvalidationListener,
        sleep: Callable[[float], object] | None = None,
        client_retries: bool = False,
    ) -> None:
        self.clock = ManualClock()
        self.backend = Flaky(self.clock, failures)
        self.cache = Cache(self.backend, default_ttl=60, clock=self.clock)
        self.reports: list[ListenerHealth] = []
        self.gaps = 0
        self.delays: list[float] = []
        # Without redis-py's own retries the listener sees every loss; with them (the
        # default client) redis-py reconnects behind its back, and it must still notice.
        options: dict[str, Any] = {} if client_retries else {"retry": Retry(NoBackoff(), 0)}
        self.client = redis.Redis(host=server.host, port=server.port, socket_timeout=5, **options)
        self.listener = listener(
            self.client,
            CHANNEL,
            EventInvalidator(self.cache),
            on_gap=self.gap if on_gap else None,
            on_health=self.reports.append,
            clock=self.clock,
            sleep=sleep if sleep is not None else self.delays.append,
            retry_delays=RETRY_DELAYS,
        )

    def gap(self) -> None:
        self.gaps += 1

    def health(self) -> ListenerHealth:
        return self.listener.health()

    def publish(self, raw: redis.Redis, key: str | bytes) -> None:
        assert raw.publish(CHANNEL, key) == 1  # the listener is subscribed

    def close(self) -> None:
        self.listener.stop()
        self.client.close()


@pytest.fixture
def rigs(server: ManagedServer) -> Iterator[Callable[..., Rig]]:
    built: list[Rig] = []

    def build(**options: Any) -> Rig:
        rig = Rig(server, **options)
        built.append(rig)
        return rig

    yield build
    for rig in built:
        rig.close()


# ----------------------------------------------------------------------------------- events
def test_an_event_invalidates_its_key(rigs: Callable[..., Rig], raw: redis.Redis) -> None:
    rig = rigs()
    rig.cache.set("k", "v")
    rig.publish(raw, "k")
    until(lambda: rig.health().handled == 1, "the event was handled")
    assert rig.cache.get("k") is NO_VALUE
    health = rig.health()
    assert (health.alive, health.subscribed, health.failed, health.reconnects) == (
        True,
        True,
        0,
        0,
    )


def test_a_message_that_is_no_key_is_counted_as_failed_and_reading_goes_on(
    rigs: Callable[..., Rig], raw: redis.Redis
) -> None:
    rig = rigs()
    rig.publish(raw, b"\xff\xfe")  # not UTF-8: no key of ours
    until(lambda: rig.health().failed == 1, "the message was counted")
    rig.cache.set("k", "v")
    rig.publish(raw, "k")
    until(lambda: rig.health().handled == 1, "the next event")
    health = rig.health()
    assert (health.alive, health.disconnects, health.reconnects, health.retried) == (
        True,
        0,
        0,
        0,
    )
    assert (health.last_error or "").startswith("UnicodeDecodeError")


def check_survives_cache_errors(rigs: Callable[..., Rig], raw: redis.Redis) -> None:
    """The first two attempts at ``k`` raise CacheError: the key is tried again after each
    retry delay on the listener's clock, and events keep being handled meanwhile."""
    rig = rigs(failures=2)
    rig.cache.set("k", "v")
    rig.publish(raw, "k")
    until(lambda: rig.health().retried == 1, "the failed key was scheduled again")
    assert rig.health().pending == 1
    assert rig.health().last_error == "CacheError: the cache is down"
    assert rig.reports[-1].retried == 1  # on_health heard of it
    rig.clock.advance(RETRY_DELAYS[0] - 0.001)
    rig.cache.set("other", "v")
    rig.publish(raw, "other")  # not due yet: this one is the second failure
    until(lambda: rig.health().retried == 2, "the next event failed and was scheduled")
    rig.clock.advance(0.001)  # the first retry is due: the cache is back by now
    until(lambda: rig.health().handled == 1, "the first retry invalidated k")
    assert rig.cache.get("k") is NO_VALUE
    rig.clock.advance(RETRY_DELAYS[0])
    until(lambda: rig.health().handled == 2, "the retry of 'other'")
    assert rig.cache.get("other") is NO_VALUE
    rig.publish(raw, "later")
    until(lambda: rig.health().handled == 3, "a later event")
    health = rig.health()
    assert (health.alive, health.failed, health.pending) == (True, 0, 0)


def test_a_cache_error_is_retried_and_the_listener_goes_on(
    rigs: Callable[..., Rig], raw: redis.Redis
) -> None:
    check_survives_cache_errors(rigs, raw)


def check_gives_up_after_the_last_retry(rigs: Callable[..., Rig], raw: redis.Redis) -> None:
    """A key that keeps failing is tried ``1 + len(RETRY_DELAYS)`` times, then counted as
    failed: the safety TTL bounds it from there."""
    rig = rigs(failures=None)
    rig.publish(raw, "k")
    for tries, delay in enumerate(RETRY_DELAYS, start=1):

        def scheduled(tries: int = tries) -> bool:
            return rig.health().retried == tries

        until(scheduled, f"retry {tries} scheduled")
        rig.clock.advance(delay)
    until(lambda: rig.health().failed == 1, "the key was given up")
    health = rig.health()
    assert (health.alive, health.pending, health.retried, health.handled) == (
        True,
        0,
        len(RETRY_DELAYS),
        0,
    )
    assert rig.reports[-1].failed == 1


def test_a_key_that_keeps_failing_is_given_up_and_counted(
    rigs: Callable[..., Rig], raw: redis.Redis
) -> None:
    check_gives_up_after_the_last_retry(rigs, raw)


# ------------------------------------------------------------------------- lost connections
def kill_pubsub_connections(raw: redis.Redis) -> None:
    killed = raw.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]
    assert killed >= 1


def check_reconnects_and_reports_the_gap(
    rigs: Callable[..., Rig], raw: redis.Redis, *, client_retries: bool
) -> None:
    rig = rigs(client_retries=client_retries)
    kill_pubsub_connections(raw)
    until(lambda: rig.health().reconnects == 1, "subscribed again")
    until(lambda: rig.gaps == 1, "on_gap was called")
    assert rig.health().gaps_handled == 1
    rig.cache.set("k", "v")
    rig.publish(raw, "k")
    until(lambda: rig.health().handled == 1, "an event after the reconnect")
    assert rig.cache.get("k") is NO_VALUE
    health = rig.health()
    assert (health.alive, health.subscribed) == (True, True)
    if not client_retries:  # the listener itself saw the loss and waited before reconnecting
        assert health.disconnects == 1
        assert rig.delays == [listener_module.DEFAULT_RECONNECT_DELAYS[0]]


@pytest.mark.parametrize("client_retries", [False, True], ids=["listener", "redis-py"])
def test_after_client_kill_it_subscribes_again_and_calls_on_gap(
    rigs: Callable[..., Rig], raw: redis.Redis, client_retries: bool
) -> None:
    check_reconnects_and_reports_the_gap(rigs, raw, client_retries=client_retries)


def test_after_a_server_restart_it_subscribes_again_with_bounded_backoff(
    rigs: Callable[..., Rig], server: ManagedServer
) -> None:
    restarted = threading.Event()
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        restarted.wait(PATIENCE)  # bounded: until the test has restarted the server

    rig = rigs(sleep=sleep)
    server.restart()
    restarted.set()
    raw = redis.Redis(host=server.host, port=server.port, socket_timeout=5)
    try:
        until(lambda: rig.health().reconnects == 1, "subscribed to the new server")
        assert rig.gaps == 1
        rig.cache.set("k", "v")
        rig.publish(raw, "k")
        until(lambda: rig.health().handled == 1, "an event after the restart")
    finally:
        raw.close()
    assert rig.cache.get("k") is NO_VALUE
    assert delays
    assert all(delay in listener_module.DEFAULT_RECONNECT_DELAYS for delay in delays)
    assert rig.health().disconnects == 1


def test_while_the_server_refuses_the_waits_grow_to_the_last_delay_and_stay_there(
    rigs: Callable[..., Rig], raw: redis.Redis
) -> None:
    delays: list[float] = []
    rig: Rig | None = None
    nowhere = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    schedule = listener_module.DEFAULT_RECONNECT_DELAYS
    tries = len(schedule) + 3

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == tries and rig is not None:
            rig.listener._client = rig.client  # the server is back

    rig = rigs(sleep=sleep)
    rig.listener._client = nowhere  # every new connection is refused
    kill_pubsub_connections(raw)
    until(lambda: rig.health().reconnects == 1, "subscribed once the server was back")
    assert delays == [*schedule, schedule[-1], schedule[-1], schedule[-1]]
    assert "ConnectionError" in (rig.health().last_error or "")
    kill_pubsub_connections(raw)  # a confirmed subscription starts the delays afresh
    until(lambda: rig.health().reconnects == 2, "subscribed again")
    assert delays[tries:] == [schedule[0]]
    nowhere.close()


def test_without_on_gap_a_gap_is_counted_and_the_safety_ttl_bounds_it(
    rigs: Callable[..., Rig], raw: redis.Redis
) -> None:
    away = threading.Event()
    rig = rigs(on_gap=False, sleep=lambda seconds: away.wait(PATIENCE))
    rig.cache.set("k", "v")
    kill_pubsub_connections(raw)
    until(lambda: rig.health().disconnects == 1, "the loss was seen")
    assert raw.publish(CHANNEL, "k") == 0  # while the listener waits: nobody hears it
    away.set()
    until(lambda: rig.health().reconnects == 1, "subscribed again")
    assert rig.health().gaps_handled == 1  # counted, nothing else done
    # The event published while away is lost: the entry stays until its safety TTL.
    assert rig.cache.get("k") == "v"
    rig.clock.advance(60)
    assert rig.cache.get("k") is NO_VALUE


def test_a_failing_on_gap_is_retried_like_a_key(rigs: Callable[..., Rig], raw: redis.Redis) -> None:
    rig = rigs()
    calls: list[int] = []

    def on_gap() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise CacheError("clear failed")

    rig.listener._on_gap = on_gap
    kill_pubsub_connections(raw)
    until(lambda: rig.health().retried == 1, "the failed on_gap was scheduled again")
    assert rig.health().gaps_handled == 0
    rig.clock.advance(RETRY_DELAYS[0])
    until(lambda: rig.health().gaps_handled == 1, "the gap handled on its retry")
    assert len(calls) == 2


# --------------------------------------------------------------------------- construction
def test_stop_ends_the_thread_and_health_says_so(rigs: Callable[..., Rig]) -> None:
    rig = rigs()
    rig.listener.stop()
    assert (rig.health().alive, rig.health().subscribed) == (False, False)
    assert rig.reports[-1].alive is False


def test_a_server_it_cannot_reach_is_backend_unavailable() -> None:
    cache = Cache(MemoryBackend(), default_ttl=60)
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises(BackendUnavailable, match="cannot subscribe to 'c'"):
        RedisInvalidationListener(client, "c", EventInvalidator(cache))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"channel": ""}, "channel must be a non-empty str"),
        ({"retry_delays": (1, -1)}, "retry_delays must be finite seconds >= 0"),
        ({"retry_delays": "1"}, "retry_delays must be a sequence"),
        ({"reconnect_delays": ()}, "reconnect_delays must be at least one"),
        ({"reconnect_delays": (float("nan"),)}, "reconnect_delays must be at least one"),
        ({"on_gap": 3}, "on_gap must be callable"),
        ({"subscribe_timeout": 0}, "subscribe_timeout must be finite seconds > 0"),
    ],
)
def test_bad_options_are_configuration_errors(
    raw: redis.Redis, options: dict[str, Any], message: str
) -> None:
    cache = Cache(MemoryBackend(), default_ttl=60)
    arguments: dict[str, Any] = {"channel": CHANNEL, **options}
    channel = arguments.pop("channel")
    with pytest.raises(ConfigurationError, match=message):
        RedisInvalidationListener(raw, channel, EventInvalidator(cache), **arguments)


def test_the_old_import_path_still_works() -> None:
    assert strategies.RedisInvalidationListener is listener_module.RedisInvalidationListener


# ----------------------------------------------------------------------------- the mutants
class DiesOnFirstError(RedisInvalidationListener):
    """The listener before issue #13: the first cache error ends its thread."""

    def _failed(self, item: object, attempts: int, exc: Exception) -> None:
        self._stop.set()  # ends the thread, as the uncaught error used to


class NeverGivesUp(RedisInvalidationListener):
    """Retries a failing key for ever, at the first delay."""

    def _failed(self, item: object, attempts: int, exc: Exception) -> None:
        super()._failed(item, 0, exc)


class BlindToGaps(RedisInvalidationListener):
    """Reconnects, but takes a new subscription for the first one: no on_gap."""

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") != "subscribe":
            super()._dispatch(message)


@pytest.mark.parametrize(
    ("mutant", "check"),
    [
        (DiesOnFirstError, check_survives_cache_errors),
        (NeverGivesUp, check_gives_up_after_the_last_retry),
        (
            BlindToGaps,
            lambda rigs, raw: check_reconnects_and_reports_the_gap(rigs, raw, client_retries=False),
        ),
    ],
)
def test_the_checks_reject_their_mutants(
    rigs: Callable[..., Rig],
    raw: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    mutant: type[RedisInvalidationListener],
    check: Callable[[Callable[..., Rig], redis.Redis], None],
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "PATIENCE", 1.0)  # a mutant waits it out

    def mutated(**options: Any) -> Rig:
        return rigs(listener=mutant, **options)

    with pytest.raises(pytest.fail.Exception):
        check(mutated, raw)
