"""The memcached ring adapter (``memcached+ring://``) against rings the harness starts.

One ring (3 memcached nodes on the harness's clock) serves the module; it is flushed between
tests, and a test that stops a node continues it before it ends (``outage``). The node-failure
timeouts run on a :class:`ManualClock` the tests move: nothing waits on the wall clock. Round
trips are counted on the client (each node's ``fetch`` and ``pipeline``), entries on the nodes
(``stats``' ``curr_items``).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cachespec.backends import (
    NO_VALUE,
    BackendUnavailable,
    ConfigurationError,
    open_backend,
)
from cachespec.backends.memcached import MemcachedRingBackend, RingOptions
from cachespec.conformance import run_suite
from cachespec.conformance.clock import ManualClock
from cachespec.conformance.outages import Fault, outage
from cachespec.conformance.runner import NOT_DECLARED
from cachespec.conformance.servers import ManagedServer, harness_available
from cachespec.conformance.servers.base import HOST, exchange
from cachespec.conformance.servers.ring import MemcachedRingServer, start_ring
from cachespec.spec import RingRemap
from cachespec.spec.failover import declared_for

pytestmark = pytest.mark.memcached


@pytest.fixture(scope="module")
def ring() -> Iterator[MemcachedRingServer]:
    reason = harness_available("memcached-ring")
    if reason is not None:
        pytest.fail(f"the ring harness cannot run here: {reason}")
    with start_ring() as started:
        yield started


@pytest.fixture
def fresh(ring: MemcachedRingServer) -> MemcachedRingServer:
    ring.flush()
    return ring


def servers(ring: MemcachedRingServer) -> list[tuple[str, int]]:
    return [(HOST, node.port) for node in ring.nodes]


def items(node: ManagedServer) -> int:
    reply = exchange(node.port, b"stats\r\n", lambda r: r.endswith(b"END\r\n"))
    for line in reply.split(b"\r\n"):
        if line.startswith(b"STAT curr_items "):
            return int(line.split()[2])
    raise AssertionError("no curr_items in stats")


def node_named(ring: MemcachedRingServer, name: str) -> ManagedServer:
    (node,) = [node for node in ring.nodes if f"{HOST}:{node.port}" == name]
    return node


def ring_backend(
    ring: MemcachedRingServer, clock: ManualClock | None = None, **options: Any
) -> MemcachedRingBackend:
    defaults: dict[str, Any] = {"retry_attempts": 1, "retry_timeout": 0.0, "dead_timeout": 10.0}
    return MemcachedRingBackend(
        servers(ring),
        ring=RingOptions(**{**defaults, **options}),
        namespace="ring-test",
        timeout=0.3,
        monotonic=clock or ManualClock(),
    )


def off_counter_key(backend: MemcachedRingBackend) -> tuple[str, str]:
    """A key (of a few) that lives on a node other than the counter's, and that node."""
    for index in range(64):
        key = f"key-{index}"
        node = backend.node_of(key)
        if node != backend.counter_node:
            return key, node
    raise AssertionError("64 keys all on the counter's node")


# ----------------------------------------------------------------------------------- URLs
def test_a_url_names_every_node_and_the_failure_options(fresh: MemcachedRingServer) -> None:
    options = "retry_attempts=3&retry_timeout=0.5&dead_timeout=30&on_failure=miss&timeout=2"
    backend = open_backend(f"{fresh.url}?{options}", namespace="urls")
    try:
        assert isinstance(backend, MemcachedRingBackend)
        assert backend.servers == tuple(servers(fresh))
        assert backend.ring == RingOptions(3, 0.5, 30.0, "miss")
        assert backend.guarantees.clear is True
        backend.set("k", b"v")
        assert backend.get("k") == b"v"
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("clear=none", "takes no clear option"),
        ("namespace_refresh=5", "takes no namespace_refresh"),
        ("on_failure=ignore", "on_failure"),
        ("retry_attempts=0", "retry_attempts=0 must be at least 1"),
        ("retry_timeout=-1", "retry_timeout=-1 must be a finite number"),
        ("dead_timeout=inf", "dead_timeout=inf must be a finite number"),
        ("timeout=0", "timeout=0.0 must be greater than 0"),
        ("retries=2", "retries"),
        ("namespace=a:b", "namespace must match"),
    ],
)
def test_a_bad_option_is_a_configuration_error_before_connecting(query: str, message: str) -> None:
    # No server listens on port 1: the URL is refused before anything connects.
    with pytest.raises(ConfigurationError, match=message):
        open_backend(f"memcached+ring://127.0.0.1:1,127.0.0.1:2?{query}")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memcached+ring://127.0.0.1:0,127.0.0.1:2", "port 0"),
        ("memcached+ring://u:secret@127.0.0.1:1,127.0.0.1:2", "no user or password"),
        ("memcached+ring://127.0.0.1:1,127.0.0.1:2/db", "no path"),
        ("memcached+ring://127.0.0.1:1,127.0.0.1:1", "listed twice"),
        ("memcached+ring://127.0.0.1:1,,127.0.0.1:2", "empty host"),
    ],
)
def test_a_bad_node_list_is_a_configuration_error(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        open_backend(url)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"servers": []}, "non-empty list"),
        ({"servers": "127.0.0.1:1"}, "non-empty list"),
        ({"servers": [("127.0.0.1", 0)]}, "port must be an int"),
        ({"servers": [("", 1)]}, "host must be a non-empty str"),
        ({"servers": [("h", 1)], "ring": RingOptions(retry_attempts=0)}, "retry_attempts"),
        ({"servers": [("h", 1)], "ring": RingOptions(dead_timeout=-1.0)}, "dead_timeout"),
        ({"servers": [("h", 1)], "ring": RingOptions(on_failure="skip")}, "on_failure"),
        ({"servers": [("h", 1)], "ring": (2, 1.0, 60.0, "raise")}, "RingOptions"),
        ({"servers": [("h", 1)], "clearable": False}, "needs the clear generation"),
        ({"servers": [("h", 1)], "namespace_refresh": 1.0}, "namespace_refresh refused"),
    ],
)
def test_bad_constructor_arguments_are_configuration_errors(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MemcachedRingBackend(**arguments)


def test_the_driver_is_imported_when_the_first_ring_is_built() -> None:
    code = (
        "import sys, cachespec.backends, cachespec.backends.memcached\n"
        "from cachespec.backends import BackendURL, open_backend\n"
        "assert 'pymemcache' not in sys.modules, 'imported at import time'\n"
        "try:\n"
        "    open_backend('memcached+ring://127.0.0.1:1,127.0.0.1:2?timeout=0.2')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
        "assert 'cachespec.backends.memcached.ring_client' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "BackendUnavailable"


# --------------------------------------------------------------------------- spread, trips
def test_keys_spread_over_every_node(fresh: MemcachedRingServer) -> None:
    backend = ring_backend(fresh)
    try:
        backend.set_many({f"k{i}": b"v" for i in range(300)})
        counts = [items(node) for node in fresh.nodes]
        # The entries and the namespace counter (and what flush_all left: memcached counts
        # a flushed item until something touches it).
        assert sum(counts) >= 301
        assert min(counts) > 60, counts  # rendezvous hashing: about a third each
        assert backend.get_many([f"k{i}" for i in range(300)]) == {
            f"k{i}": b"v" for i in range(300)
        }
    finally:
        backend.close()


def _count_calls(backend: MemcachedRingBackend, method: str) -> Counter[str]:
    """Count ``method`` calls per node on the ring's node clients (``begin`` sends one
    request, whose reply is read once every node's request is sent)."""
    seen: Counter[str] = Counter()
    ring: Any = backend._client  # a RingClient
    for name, client in ring.clients.items():
        plain: Callable[..., Any] = getattr(client, method)

        def counted(*args: Any, _name: str = name, _plain: Callable[..., Any] = plain) -> Any:
            seen[_name] += 1
            return _plain(*args)

        setattr(client, method, counted)
    return seen


def test_get_many_is_one_round_trip_per_node(fresh: MemcachedRingServer) -> None:
    """Every node's request is sent before any reply is read (``begin``): one round trip
    in all, one request per node."""
    backend = ring_backend(fresh)
    try:
        keys = [f"k{i}" for i in range(100)]
        backend.set_many(dict.fromkeys(keys, b"v"))
        sends = _count_calls(backend, "begin")
        assert len(backend.get_many(keys)) == 100
        assert sorted(sends.values()) == [1, 1, 1]  # the counter rides in its node's get
    finally:
        backend.close()


def test_set_many_and_delete_many_are_one_round_trip_per_node(fresh: MemcachedRingServer) -> None:
    backend = ring_backend(fresh)
    try:
        keys = [f"k{i}" for i in range(60)]
        sends = _count_calls(backend, "begin")
        backend.set_many(dict.fromkeys(keys, b"v"))
        # One per node, the counter's get ahead of the writes on its own node.
        assert sorted(sends.values()) == [1, 1, 1]
        sends.clear()
        backend.delete_many(keys)
        assert sorted(sends.values()) == [1, 1, 1]
        assert backend.get_many(keys) == {}
    finally:
        backend.close()


# ---------------------------------------------------------------------- node failures
def test_a_failed_node_is_not_tried_again_within_retry_timeout(fresh: MemcachedRingServer) -> None:
    clock = ManualClock()
    backend = ring_backend(fresh, clock, retry_attempts=3, retry_timeout=2.0)
    try:
        key, name = off_counter_key(backend)
        with outage(node_named(fresh, name), Fault.KILL):
            with pytest.raises(BackendUnavailable, match="refused"):
                backend.get(key)
            with pytest.raises(BackendUnavailable, match="not tried again until retry_timeout"):
                backend.get(key)
            assert name in backend._client.live  # type: ignore[attr-defined]  # 1 of 3
            clock.advance(2.0)
            with pytest.raises(BackendUnavailable, match="refused"):
                backend.get(key)  # tried again: a second failure, still in the ring
        clock.advance(2.0)
        assert backend.get(key) is NO_VALUE  # the new process answers; nothing was lost
    finally:
        backend.close()


def test_a_dropped_node_remaps_its_keys_and_comes_back_after_dead_timeout(
    fresh: MemcachedRingServer,
) -> None:
    clock = ManualClock()
    backend = ring_backend(fresh, clock, retry_attempts=1, dead_timeout=10.0)
    try:
        key, name = off_counter_key(backend)
        backend.set(key, b"before")
        with outage(node_named(fresh, name), Fault.STOP):
            with pytest.raises(BackendUnavailable):
                backend.get(key)  # times out: the node is dropped
            assert name not in backend._client.live  # type: ignore[attr-defined]
            assert backend.get(key) is NO_VALUE  # the namespace moved on: a miss
            backend.set(key, b"during")  # to a stand-in
            assert backend.get(key) == b"during"
        clock.advance(9.0)
        assert name not in backend._client.live  # type: ignore[attr-defined]
        clock.advance(1.0)
        # Back in the ring: its old entry is not served, nor is the stand-in's.
        assert backend.get(key) is NO_VALUE
        assert name in backend._client.live  # type: ignore[attr-defined]
        other = ring_backend(fresh)
        try:
            assert other.get(key) is NO_VALUE  # a client that never saw it go
        finally:
            other.close()
    finally:
        backend.close()


def test_the_efficacy_twin_without_the_discard_the_old_entry_comes_back(
    fresh: MemcachedRingServer,
) -> None:
    """The test above with the ring's discard switched off: the stopped node's entry is read
    again once it is back, so the test above can tell the two apart."""
    clock = ManualClock()
    backend = ring_backend(fresh, clock, retry_attempts=1, dead_timeout=10.0)
    backend._client.on_change(lambda: None)  # type: ignore[attr-defined]
    try:
        key, name = off_counter_key(backend)
        backend.set(key, b"before")
        with outage(node_named(fresh, name), Fault.STOP):
            with pytest.raises(BackendUnavailable):
                backend.get(key)
            backend.set(key, b"during")
        clock.advance(10.0)
        assert backend.get(key) == b"before"
    finally:
        backend.close()


def test_while_the_counters_node_is_away_every_call_raises(fresh: MemcachedRingServer) -> None:
    clock = ManualClock()
    backend = ring_backend(fresh, clock, retry_attempts=1)
    try:
        key, _ = off_counter_key(backend)
        backend.set(key, b"v")
        with outage(node_named(fresh, backend.counter_node), Fault.KILL):
            for call in (
                lambda: backend.get(key),
                lambda: backend.set(key, b"w"),
                backend.clear,
                lambda: backend.get_many([key]),
            ):
                with pytest.raises(BackendUnavailable):
                    call()
        clock.advance(10.0)
        assert backend.get(key) is NO_VALUE  # a new counter: a new generation
        backend.set(key, b"after")
        assert backend.get(key) == b"after"
    finally:
        backend.close()


def test_on_failure_miss_answers_a_failing_nodes_keys_as_misses_and_writes_raise(
    fresh: MemcachedRingServer,
) -> None:
    clock = ManualClock()
    backend = ring_backend(fresh, clock, retry_attempts=3, on_failure="miss")
    try:
        key, name = off_counter_key(backend)
        others = [f"o{i}" for i in range(40) if backend.node_of(f"o{i}") != name]
        backend.set_many(dict.fromkeys([key, *others], b"v"))
        with outage(node_named(fresh, name), Fault.KILL):
            assert backend.get_many([key, *others]) == dict.fromkeys(others, b"v")
            assert backend.get(key) is NO_VALUE
            with pytest.raises(BackendUnavailable):
                backend.set(key, b"w")
    finally:
        backend.close()


def test_a_ring_with_a_node_down_does_not_open(fresh: MemcachedRingServer) -> None:
    node = fresh.nodes[1]
    with outage(node, Fault.KILL), pytest.raises(BackendUnavailable):
        open_backend(f"{fresh.url}?timeout=0.5", namespace="down")


def test_pymemcache_hash_client_answers_a_failing_node_silently(
    fresh: MemcachedRingServer,
) -> None:
    """docs/facts.md: within ``retry_timeout`` after a node failed, pymemcache's own
    ``HashClient`` does not try it and answers its keys with the default (``False`` for a
    ``set``, ``None`` for a ``get``), even with ``ignore_exc`` off: a lost write that looks
    like a refusal. The ring's client raises instead (the tests above)."""
    from pymemcache.client.hash import HashClient  # type: ignore[import-untyped]  # noqa: PLC0415

    client = HashClient(servers(fresh), retry_attempts=2, retry_timeout=60, timeout=0.3)
    try:
        name = "key-on-the-victim"
        victim = node_named(fresh, client.hasher.get_node(name).replace("localhost", HOST))
        with outage(victim, Fault.KILL):
            with pytest.raises(ConnectionRefusedError):
                client.set(name, b"v", noreply=False)
            assert client.set(name, b"v", noreply=False) is False
            assert client.get(name) is None
    finally:
        client.close()


def test_a_guests_counter_expires_on_the_counters_own_node(fresh: MemcachedRingServer) -> None:
    """The suite on a ring you run is a guest: its counter, pinned to one node, gets the
    expiry there (routed as the counter's other calls are, not by pymemcache's hash). Eight
    namespaces: their counters sit on different nodes."""
    pinned: set[int] = set()
    for index in range(8):
        backend = MemcachedRingBackend(
            servers(fresh), namespace=f"guest{index}", timeout=0.3, monotonic=ManualClock()
        )
        try:
            backend.expire_bookkeeping(3600)
            node = node_named(fresh, backend.counter_node)
            pinned.add(node.port)
            command = f"mg {backend._counter_key} t\r\n".encode("ascii")
            reply = exchange(node.port, command, lambda r: r.endswith(b"\r\n"))
            flags = dict((token[:1], token[1:]) for token in reply.split()[1:])
            assert 3590 <= int(flags[b"t"]) <= 3600, (index, reply)
        finally:
            backend.close()
    assert len(pinned) > 1


def test_the_ring_declares_its_failover_and_only_the_ring_faults_apply_to_it(
    fresh: MemcachedRingServer,
) -> None:
    backend = ring_backend(fresh)
    try:
        failover = backend.guarantees.failover
        assert failover == RingRemap()
        assert "any change of the ring empties the namespace" in backend.guarantees.describe()
        assert declared_for("faults.ring_", failover) is None
        assert "faults.cluster_* check another kind" in str(
            declared_for("faults.cluster_", failover)
        )
    finally:
        backend.close()
    # One server declares no failover: the ring faults are not declared there, rather than
    # something it cannot check (which --require-all would turn into a failure).
    report = run_suite("memory://", seed=1, only=["faults.ring_*"])
    assert {r.skip for r in report.results} == {NOT_DECLARED}
