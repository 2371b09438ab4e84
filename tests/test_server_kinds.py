"""A server kind is one record in one registry (docs/design.md, "Server kinds").

A kind registered here, in the test, and nowhere else (redis-server under another name, with
a harness option of its own) is a ``cachespec check NAME?...`` target end to end: started
with its own options, on the harness's clock, emptied, checked and stopped. And the
kind-independent modules hold no kind's name: every kind-specific decision is read from the
record.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import redis

from cachespec.conformance import TargetError, resolve_target, run_suite, servers
from cachespec.conformance.servers import (
    REDIS,
    START_TIME,
    ManagedServer,
    ServerKind,
    managed,
    running_servers,
)
from cachespec.conformance.servers.redis import RedisKind
from cachespec.conformance.target import ServerTarget

CONFORMANCE = Path(servers.__file__).resolve().parent.parent
#: The modules that must work for any kind: they read every kind-specific decision from the
#: record (the kind modules, redis.py and memcached.py, are the records).
KIND_INDEPENDENT = ("base.py", "faketime.py", "kind.py", "managed.py", "registry.py")


class RedisAlikeKind(RedisKind):
    """redis-server under another name, whose one harness option is ``databases``."""

    def start(self, options: Mapping[str, str], *, fake_time: bool) -> ManagedServer:
        """``databases``, passed to redis-server as given."""
        argv = ["--databases", options["databases"]] if "databases" in options else []
        return managed.start(self, argv, fake_time=fake_time)


ALIKE = RedisAlikeKind(
    name="redis-alike",
    binary="redis-server",
    binary_env="CACHESPEC_TEST_REDIS_ALIKE_SERVER",
    package="redis-server",
    schemes=("redis-alike",),
    harness_options=("databases",),
    clock_step_us=1,
    clock_unit="us",
    flush_request=b"FLUSHALL\r\n",
    flush_reply=b"+OK\r\n",
    fake_monotonic=False,
)


@pytest.fixture
def alike() -> Iterator[ServerKind]:
    """ALIKE, registered for the test only."""
    servers.register(ALIKE)
    try:
        yield ALIKE
    finally:
        servers.unregister(ALIKE.name)


def _require(kind: str) -> None:
    reason = servers.harness_available(kind)
    if reason is None:
        return
    if os.environ.get("CACHESPEC_ALLOW_NO_SERVERS") == "1":
        pytest.skip(reason)
    pytest.fail(f"{reason} (set CACHESPEC_ALLOW_NO_SERVERS=1 to skip)")


def test_an_unregistered_name_is_not_a_server_kind() -> None:
    assert servers.find_kind(ALIKE.name) is None
    with pytest.raises(TargetError, match="not a backend"):
        resolve_target(ALIKE.name)
    with pytest.raises(ValueError, match=r"unknown server kind 'redis-alike' \(expected 'redis'"):
        servers.harness_available(ALIKE.name)


def test_registering_a_kind_adds_its_name_and_schemes_and_forgetting_it_removes_them() -> None:
    assert servers.kind_names() == ("redis", "memcached", "redis-cluster", "memcached-ring")
    assert servers.user_server_schemes() == {
        "redis",
        "rediss",
        "unix",
        "memcached",
        "redis+cluster",
        "rediss+cluster",
        "memcached+ring",
    }
    servers.register(ALIKE)
    try:
        assert servers.server_kind(ALIKE.name) is ALIKE
        assert servers.kind_names() == (
            "redis",
            "memcached",
            "redis-cluster",
            "memcached-ring",
            "redis-alike",
        )
        assert "redis-alike" in servers.user_server_schemes()
        with pytest.raises(ValueError, match="registered already"):
            servers.register(ALIKE)
        with pytest.raises(ValueError, match="registered already"):
            servers.register(REDIS)
    finally:
        servers.unregister(ALIKE.name)
    assert servers.find_kind(ALIKE.name) is None
    assert "redis-alike" not in servers.user_server_schemes()


@pytest.mark.redis
def test_a_kind_registered_in_a_test_is_a_checked_target_end_to_end(alike: ServerKind) -> None:
    _require(alike.name)
    target = resolve_target("redis-alike?databases=3&capacity=8")
    assert isinstance(target, ServerTarget)
    assert target.server_kind is alike
    try:
        # The record's harness option reached the server; the rest went to the adapter.
        url = target.url()
        assert url.startswith("redis://127.0.0.1:")
        assert url.endswith("/0?capacity=8")
        (server,) = [s for s in running_servers() if s.kind == alike.name]
        assert server.server_kind is alike
        assert server.temp_dir.name.startswith("cachespec-redis-alike-")
        client = redis.Redis(host=server.host, port=server.port)
        assert client.config_get("databases") == {"databases": "3"}
        # On the harness's clock, shown every microsecond as the record says.
        assert server.clock is not None
        assert server.clock.step_us == 1
        assert client.time() == (int(START_TIME), 0)
        server.clock.advance(1.25)  # returns once the record's read_clock saw it
        assert client.time() == (int(START_TIME) + 1, 250_000)
        # A session empties the server (the record's flush) and starts on a whole second.
        client.set("left-over", b"x")
        target.session().close()
        assert client.exists("left-over") == 0
        assert client.time() == (int(START_TIME) + 2, 0)
        client.close()
        # The suite runs on it, and stops it when done. The TTL property, which needs the
        # harness's clock, is checked, not skipped.
        report = run_suite(target, size="quick", seed=20261205, only=["ops.get_set", "ttl.*"])
        assert report.passed, report.failed()
        assert report.clock == "the harness's clock"
        assert report.result("ttl.expires").status == "pass"
    finally:
        target.close()
    assert not server.is_running()
    assert not server.temp_dir.exists()
    assert [s for s in running_servers() if s.kind == alike.name] == []


def _literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant in ``path`` with its line, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


@pytest.mark.parametrize("module", KIND_INDEPENDENT)
def test_the_kind_independent_modules_name_no_kind(module: str) -> None:
    found = [
        (line, text)
        for line, text in _literals(CONFORMANCE / "servers" / module)
        if any(name in text.lower() for name in ("redis", "memcached"))
    ]
    assert found == [], f"servers/{module} decides something per kind: {found}"


def test_the_targets_name_no_server_kind() -> None:
    """target.py tells kinds apart only through the registry (the user-facing hint that
    mentions ``memcached?clear=none`` in a message is text, not a decision)."""
    names = set(servers.kind_names())
    found = [(line, text) for line, text in _literals(CONFORMANCE / "target.py") if text in names]
    assert found == [], f"target.py decides something per kind: {found}"


def test_the_kind_modules_stay_small() -> None:
    sizes = {
        path.name: len(path.read_text(encoding="utf-8").splitlines())
        for path in (CONFORMANCE / "servers").glob("*.py")
    }
    assert set(KIND_INDEPENDENT) <= set(sizes)
    assert max(sizes.values()) <= 600, sizes
