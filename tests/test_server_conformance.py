"""The suite's teeth on real servers: each broken adapter fails the property named for it.

The servers are throwaway ones the harness starts under libfaketime (the same harness
``cachespec check redis`` uses). Correct adapters are checked by the tox envs ``redis``,
``memcached`` and ``fakeredis``, which run ``cachespec check`` on each at the default size.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import pytest
import redis
from adapter_mutants import ADAPTER_MUTANTS, mutant_target
from pymemcache.client.base import Client  # type: ignore[import-untyped]

from cachespec.conformance import TargetError, rthangs, rtleases, rtrefresh, run_suite, servers
from cachespec.conformance.realtime import REAL_TIME
from cachespec.conformance.runner import CANNOT_CHECK_HERE
from cachespec.conformance.target import ServerTarget, UserServerTarget, resolve_target

SEED = 20261127


def _mark(kind: str) -> str:
    # A cluster's nodes are redis-servers, a ring's memcacheds: they carry those marks.
    return {"redis-cluster": "redis", "memcached-ring": "memcached"}.get(kind, kind)


def _cases() -> list[object]:
    return [
        # A cluster's nodes are redis-servers: its mutants carry the redis mark.
        pytest.param(name, marks=getattr(pytest.mark, _mark(ADAPTER_MUTANTS[name][0])), id=name)
        for name in sorted(ADAPTER_MUTANTS)
    ]


@pytest.mark.usefixtures("unshrunk")  # rejected is the point, not how short (conftest.py)
@pytest.mark.parametrize("name", _cases())
def test_the_suite_rejects_the_broken_adapter(name: str) -> None:
    prop, why = ADAPTER_MUTANTS[name][3:]
    target = mutant_target(name)
    report = run_suite(target, seed=SEED, only=[prop])
    result = report.result(prop)
    assert result.status == "fail", f"{name} passed {prop} at the default size, seed {SEED}"
    assert re.search(why, result.reason), result.reason


@pytest.mark.redis
def test_without_libfaketime_the_harness_falls_back_to_real_time_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CACHESPEC_LIBFAKETIME", "/nonexistent/libfaketime.so.1")
    monkeypatch.delenv("CACHESPEC_REQUIRE_FAKETIME", raising=False)
    only = ["ttl.lives", "ops.get_set", "ttl.never", "faults.server_bounds"]
    report = run_suite("redis", size="quick", seed=1, only=only)
    assert report.clock.startswith("real time, the harness cannot control the clock")
    assert "libfaketime not found" in report.clock
    assert report.result("ops.get_set").status == "pass"
    # The TTL properties run in real time there (docs/design.md, "Real time"); the others
    # that move the clock say why they cannot.
    for prop_id in ("ttl.lives", "ttl.never"):
        ran = report.result(prop_id)
        assert (ran.status, ran.clock) == ("pass", "real time")
    skipped = report.result("faults.server_bounds")
    assert (skipped.status, skipped.skip) == ("skip", CANNOT_CHECK_HERE)
    assert "needs the harness's clock" in skipped.reason


@pytest.mark.redis
def test_ci_refuses_the_real_time_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHESPEC_LIBFAKETIME", "/nonexistent/libfaketime.so.1")
    monkeypatch.setenv("CACHESPEC_REQUIRE_FAKETIME", "1")
    with pytest.raises(TargetError, match="CACHESPEC_REQUIRE_FAKETIME is set"):
        run_suite("redis", size="quick", seed=1, only=["ops.get_set"])


@pytest.mark.redis
@pytest.mark.memcached
@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_a_server_you_run_is_checked_in_real_time_and_left_clean(kind: str) -> None:
    start = servers.start_redis if kind == "redis" else servers.start_memcached
    with start(fake_time=False) as server:
        report = run_suite(server.url, size="quick", seed=3)
        assert report.passed, report.failed()
        assert report.clock == UserServerTarget.clock_note
        # The TTL properties run in real time (docs/design.md, "Real time"), ttl.never and
        # ttl.long with the guest's cap lifted (test_guest_reaper.py checks what they leave).
        # staleness.ttl by rtstaleness.py, the leases by rtleases.py, no_hang by rthangs.py,
        # early refresh by rtrefresh.py
        for prop_id in (
            *REAL_TIME,
            "staleness.ttl",
            *rtleases.PROPERTIES,
            *rthangs.PROPERTIES,
            *rtrefresh.PROPERTIES,
        ):
            assert (report.result(prop_id).status, report.result(prop_id).clock) == (
                "pass",
                "real time",
            )
        assert report.result("keys.distinct").status == "pass"
        if kind == "redis":
            leftover = redis.Redis(host=server.host, port=server.port).dbsize()
            assert leftover == 0, f"the suite left {leftover} keys behind"


# The parts of a password with every character a URL gives a meaning to.
SECRET_PIECES = ("Xq7k", "Zr9m", "Wt3p")
SECRET = "Xq7k@Zr9m#Wt3p/?:"
SECRET_IN_URL = "Xq7k%40Zr9m%23Wt3p%2F%3F%3A"


def _check_outputs(tmp_path: Path, name: str, url: str, env: dict[str, str]) -> list[str]:
    """Everything a `cachespec check` of ``url`` writes: stdout, stderr and both reports."""
    report, junit = tmp_path / f"{name}.json", tmp_path / f"{name}.xml"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "cachespec", "check", url, "--size", "quick", "--seed", "1"),
            *("--only", "ops.get_set", "ttl.expires", "single_flight.processes"),
            *("--report", str(report), "--junit", str(junit)),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
        check=False,
    )
    written = [p.read_text(encoding="utf-8") for p in (report, junit) if p.exists()]
    return [f"exit {run.returncode}", run.stdout, run.stderr, *written]


@pytest.mark.redis
def test_no_output_of_a_run_shows_the_password(tmp_path: Path) -> None:
    with servers.start_redis(fake_time=False) as server:
        admin = redis.Redis(host=server.host, port=server.port)
        admin.acl_setuser(
            "alice", enabled=True, passwords=[f"+{SECRET}"], keys=["*"], commands=["+@all"]
        )
        at = f"{server.host}:{server.port}/0"
        runs = {
            "in the url": (f"redis://alice:{SECRET_IN_URL}@{at}", {}),
            "from the environment": (
                f"redis://alice@{at}?password_env=CACHESPEC_SECRET",
                {"CACHESPEC_SECRET": SECRET},
            ),
            "refused": (f"redis://alice:{SECRET_IN_URL}x@{at}", {}),
            "unreachable": (f"redis://alice:{SECRET_IN_URL}@127.0.0.1:1/0", {}),
            "unencoded": (f"redis://alice:{SECRET}@{at}", {}),
        }
        outputs = {name: _check_outputs(tmp_path, name, *run) for name, run in runs.items()}
        admin.close()
    for name in ("in the url", "from the environment"):
        assert outputs[name][0] == "exit 0", outputs[name]
        assert "ttl.expires" in outputs[name][1]  # skipped, with the backend named
        assert len(outputs[name]) == 5  # both reports were written
    for name in ("refused", "unreachable", "unencoded"):
        assert outputs[name][0] == "exit 2", outputs[name]
    shown = {
        name: [piece for piece in SECRET_PIECES for text in texts if piece in text]
        for name, texts in outputs.items()
    }
    assert shown == {name: [] for name in runs}, outputs


def _server_keys(server: servers.ManagedServer) -> dict[str, float | None]:
    """Every key on ``server``, with its expiry (None: never)."""
    if server.kind == "redis":
        client = redis.Redis(host=server.host, port=server.port, decode_responses=True)
        try:
            keys = [str(key) for key in client.keys("*")]
            ttls = [client.pttl(key) for key in keys]
            return {k: (None if t == -1 else float(t)) for k, t in zip(keys, ttls, strict=True)}
        finally:
            client.close()
    with socket.create_connection((server.host, server.port), timeout=10) as conn:
        conn.sendall(b"lru_crawler metadump all\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = conn.recv(65536)
            assert chunk, data
            data += chunk
    found: dict[str, float | None] = {}
    for line in data.decode().splitlines():
        if line.startswith("key="):
            fields = dict(part.split("=", 1) for part in line.split())
            found[unquote(fields["key"])] = None if fields["exp"] == "-1" else float(fields["exp"])
    return found


def _write_theirs(server: servers.ManagedServer) -> None:
    """A key of the server's owner, with no expiry, that the suite must leave as it is."""
    if server.kind == "redis":
        client = redis.Redis(host=server.host, port=server.port)
        client.set("theirs", b"keep")
        client.close()
    else:
        client = Client((server.host, server.port))
        client.set("theirs", b"keep", expire=0, noreply=False)
        client.close()


# A run stopped by: nothing (it completes), Ctrl-C, SIGKILL (no cleanup can run).
STOPS = [None, signal.SIGINT, signal.SIGKILL]


@pytest.mark.redis
@pytest.mark.memcached
@pytest.mark.parametrize("stop", STOPS, ids=["completed", "sigint", "sigkill"])
@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_a_server_you_run_keeps_only_its_own_data(kind: str, stop: signal.Signals | None) -> None:
    start = servers.start_redis if kind == "redis" else servers.start_memcached
    with start(fake_time=False) as server:
        _write_theirs(server)
        script = (
            "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from cachespec.conformance.cli import main; sys.exit(main(sys.argv[1:]))"
        )
        args = [server.url, "--size", "quick", "--seed", "3", "--jobs", "1"]
        args += ["--only", "ops.*", "keys.*", "values.*"]
        with subprocess.Popen(
            [sys.executable, "-c", script, "check", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ) as check:
            assert check.stderr is not None
            if stop is not None:
                for line in check.stderr:  # a bounded wait: the run ends by itself anyway
                    if line.startswith("[ 2/"):  # mid-run, the suite's keys on the server
                        check.send_signal(stop)
                        break
            _, stderr = check.communicate(timeout=600)
        left = _server_keys(server)
    assert left.pop("theirs") is None  # untouched: still there, still without expiry
    if stop is signal.SIGKILL:  # nothing could clean up: what is left expires
        assert [k for k, expiry in left.items() if expiry is None] == [], left
    else:
        assert check.returncode in (0, 130), stderr
        assert left == {}, left


EVICTING_REDIS = "redis?maxmemory=4mb&maxmemory_policy=allkeys-lru&eviction=server"
EVICTING_MEMCACHED = "memcached?memory_mb=2&eviction=server"


def _redis_evictions(server: servers.ManagedServer) -> int:
    client = redis.Redis.from_url(server.url)
    try:
        return int(client.info("stats")["evicted_keys"])
    finally:
        client.close()


def _memcached_evictions(server: servers.ManagedServer) -> int:
    client = Client((server.host, server.port))
    try:
        return int(client.stats()[b"evictions"])
    finally:
        client.close()


@pytest.mark.parametrize(
    ("url", "evictions"),
    [
        pytest.param(EVICTING_REDIS, _redis_evictions, marks=pytest.mark.redis, id="redis"),
        # 12804 evictions (and 292 writes refused for want of memory, a number that varies
        # with memcached's background threads) in the run that set the bound below.
        pytest.param(
            EVICTING_MEMCACHED, _memcached_evictions, marks=pytest.mark.memcached, id="memcached"
        ),
    ],
)
def test_a_server_own_eviction_holds_its_promise_while_it_evicts(
    url: str, evictions: Callable[[servers.ManagedServer], int]
) -> None:
    # lru.recent_survive would pass vacuously on a server that never filled up: the run must
    # have made the server evict, many times. Counted just before the harness stops it.
    target = resolve_target(url)
    assert isinstance(target, ServerTarget)
    counted: list[int] = []
    stop = target.close

    def count_then_stop() -> None:
        if isinstance(target._server, servers.ManagedServer):  # one server, not a cluster
            counted.append(evictions(target._server))
        stop()

    target.close = count_then_stop  # type: ignore[method-assign]
    report = run_suite(target, seed=SEED, only=["lru.*"])
    result = report.result("lru.recent_survive")
    assert result.status == "pass", result.reason
    assert counted, "the server was stopped before its evictions were counted"
    assert counted[0] > 100, counted
    # The exact-LRU properties are not claimed by a server that evicts by memory.
    assert report.result("lru.evicts_lru").status == "skip"


@pytest.mark.redis
@pytest.mark.memcached
def test_a_url_at_the_other_protocol_is_a_one_line_usage_error() -> None:
    with (
        servers.start_memcached(fake_time=False) as memcached,
        servers.start_redis(fake_time=False) as redis_server,
    ):
        urls = {
            f"redis://127.0.0.1:{memcached.port}/0": "redis",
            f"memcached://127.0.0.1:{redis_server.port}": "memcached",
        }
        for url, scheme in urls.items():
            run = subprocess.run(
                [sys.executable, "-m", "cachespec", "check", url, "--only", "ops.get_set"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert run.returncode == 2, run.stderr
            assert f"did not answer as a {scheme} server would" in run.stderr
            assert "Traceback" not in run.stderr
            assert len(run.stderr.strip().splitlines()) == 1, run.stderr
