"""On a server the user runs, the suite clears only its own namespace.

A backend that declares its ``clear`` store-wide (``Guarantees(clear_store_wide=True)``)
would wipe the owner's data there: every property that clears is "cannot check here", with
the reason (conformance/guest.py), and the tenant refuses such a clear should anything ask.
The clears that do run are not helped by deletes before them: the mutants of
tests/realtime_mutants.py (a clear that skips expiring keys, one that never reaches
memcached) fail ops.clear on such a server (tests/test_realtime_servers.py).
docs/design.md, "A user's server keeps only its own data".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import redis
from adapter_mutants import FlushdbRedis
from realtime_mutants import NoopClearMemcached
from test_server_conformance import _server_keys

from cachespec.backends import Backend, Unsupported, open_backend
from cachespec.conformance import run_suite, servers
from cachespec.conformance.guest import STORE_WIDE
from cachespec.conformance.properties import BY_ID
from cachespec.conformance.runner import CANNOT_CHECK_HERE, why_skipped
from cachespec.conformance.servers import RunningServer
from cachespec.conformance.servers.ring import start_ring
from cachespec.conformance.target import Target, UserServerTarget
from cachespec.conformance.tenant import Tenant
from cachespec.spec import Guarantees

CLEARING = ("ops.clear", "ops.mixed", "ops.clear_namespace")


def _store_wide(url: str, namespace: str) -> Backend:
    """A Redis whose clear is ``FLUSHDB``, declared so: a clear that empties the store."""
    backend = open_backend(url, namespace=namespace)
    backend.__class__ = FlushdbRedis
    backend.guarantees = dataclasses.replace(backend.guarantees, clear_store_wide=True)
    return backend


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with servers.start_redis(fake_time=False) as running:
        owner = redis.Redis.from_url(running.url)
        owner.set("theirs", b"keep")
        owner.close()
        yield running


def _keys(server: RunningServer) -> list[str]:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        return sorted(str(key) for key in client.keys("*"))
    finally:
        client.close()


def test_every_property_that_clears_says_why_it_cannot_run_as_a_guest() -> None:
    guest = UserServerTarget("redis://127.0.0.1:1/0")  # never connected: nothing runs
    g = Guarantees(ttl_resolution=0.002, compare_and_set=True, clear_store_wide=True)
    for prop_id in CLEARING:
        assert why_skipped(BY_ID[prop_id], guest, g) == (CANNOT_CHECK_HERE, STORE_WIDE)
    # Only as a guest: a store the harness or the caller owns is cleared as declared.
    owned = Target("memory://", lambda clock: open_backend("memory://", clock=clock))
    assert why_skipped(BY_ID["ops.clear"], owned, g) is None
    assert why_skipped(BY_ID["ops.get_set"], guest, g) is None


@pytest.mark.redis
def test_a_store_wide_clear_is_never_run_on_a_users_server(server: RunningServer) -> None:
    target = UserServerTarget(server.url, name="store-wide redis", opener=_store_wide)
    report = run_suite(target, size="quick", seed=1, only=[*CLEARING, "ops.get_set"])
    for prop_id in CLEARING:
        result = report.result(prop_id)
        assert (result.status, result.skip, result.reason) == (
            "skip",
            CANNOT_CHECK_HERE,
            STORE_WIDE,
        )
    assert report.result("ops.get_set").status == "pass"
    # The owner's key is there, and nothing of the suite's: it deleted its own keys, one
    # by one, instead of the discard (whose default is the store-wide clear).
    assert _keys(server) == ["theirs"]


@pytest.mark.redis
def test_the_tenant_refuses_a_store_wide_clear_before_deleting_anything(
    server: RunningServer,
) -> None:
    tenant = Tenant(_store_wide(server.url, "cachespec-check-guest"))
    try:
        tenant.set("mine", b"v", 60)
        with pytest.raises(Unsupported, match="clear_store_wide=True"):
            tenant.clear()
        assert tenant.get("mine") == b"v"  # nothing deleted: the refusal came first
        tenant.discard()
        assert _keys(server) == ["theirs"]
    finally:
        tenant.close()


def _memcached_keys(server: RunningServer) -> list[str]:
    """Every item on the server's memcached nodes (one, or a ring's three)."""
    nodes = getattr(server, "nodes", None) or [server]
    return sorted(key for node in nodes for key in _server_keys(node))


@pytest.mark.memcached
@pytest.mark.parametrize("kind", ["memcached", "memcached-ring"])
def test_a_guests_clear_on_memcached_leaves_only_the_counter(kind: str) -> None:
    """memcached's clear only moves to a new generation; as a guest it also deletes the old
    generation's entries by name (Backend.clear_as_guest), and only when the generation
    moved: a clear that moved nothing still shows (the twin below)."""
    start = servers.start_memcached if kind == "memcached" else start_ring
    with start(fake_time=False) as server:
        tenant = Tenant(open_backend(server.url, namespace="cachespec-check-guest"))
        try:
            tenant.set_many({"a": b"1", "b": b"2"}, 60)
            tenant.set("c", b"3", 60)
            tenant.clear()
            assert tenant.get_many(["a", "b", "c"]) == {}
            (counter,) = _memcached_keys(server)  # the generation counter alone
            assert "cachespec-check-guest" in counter
            tenant.discard()
            assert _memcached_keys(server) == []
        finally:
            tenant.close()


@pytest.mark.memcached
def test_a_clear_that_moved_nothing_is_not_hidden_by_the_guests_deletes() -> None:
    with servers.start_memcached(fake_time=False) as server:
        backend = open_backend(server.url, namespace="cachespec-check-guest")
        backend.__class__ = NoopClearMemcached
        tenant = Tenant(backend)
        try:
            tenant.set("a", b"1", 60)
            tenant.clear()
            assert tenant.get("a") == b"1"  # what ops.clear then catches
        finally:
            tenant.discard()
            tenant.close()
