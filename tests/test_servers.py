"""The server harness: throwaway servers on free ports, a clock the harness moves, no leftovers.

Tests that need a server fail when its binary is missing (CI has them), unless
``CACHESPEC_ALLOW_NO_SERVERS=1`` is set, in which case they skip with the reason.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pymemcache  # type: ignore[import-untyped]
import pytest
import redis
from server_processes import home_of, start_check, wait_for_servers, wait_gone

from cachespec.conformance.clock import HarnessClock, just_before
from cachespec.conformance.servers import (
    MEMCACHED,
    START_TIME,
    FaketimeClock,
    HarnessUnavailable,
    Kind,
    ManagedServer,
    harness_available,
    managed,
    running_servers,
    start_memcached,
    start_redis,
)

pytestmark = [pytest.mark.redis, pytest.mark.memcached]

START = int(START_TIME)


def require(kind: Kind, *, fake_time: bool = True) -> None:
    """Fail (or, when allowed, skip) when this machine cannot run the server."""
    reason = harness_available(kind, fake_time=fake_time)
    if reason is None:
        return
    if os.environ.get("CACHESPEC_ALLOW_NO_SERVERS") == "1":
        pytest.skip(reason)
    pytest.fail(f"{reason} (set CACHESPEC_ALLOW_NO_SERVERS=1 to skip)")


def assert_gone(server: ManagedServer) -> None:
    """The process is reaped, no pid answers, and the server's files are removed."""
    assert server.process.poll() is not None
    assert not server.is_running()
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)
    assert not server.temp_dir.exists()
    assert server not in running_servers()
    # libfaketime's per-process names in /dev/shm are not left behind either.
    for name in (f"faketime_shm_{server.pid}", f"sem.faketime_sem_{server.pid}"):
        assert not (Path("/dev/shm") / name).exists()


def assert_pid_gone(pid: int) -> None:
    """No server runs under ``pid`` (one left behind is killed, then the test fails)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return
    if b"redis-server" in command or b"memcached" in command:
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"server pid {pid} was left running: {command!r}")


@pytest.fixture
def fake_redis() -> Iterator[ManagedServer]:
    require("redis")
    with start_redis() as server:
        yield server
    assert_gone(server)


@pytest.fixture
def fake_memcached() -> Iterator[ManagedServer]:
    require("memcached")
    with start_memcached() as server:
        yield server
    assert_gone(server)


def redis_client(server: ManagedServer) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, socket_timeout=2)


def memcached_client(server: ManagedServer) -> pymemcache.Client:
    # Replies on every call: with noreply a set can be applied after the next clock move.
    return pymemcache.Client(
        (server.host, server.port), default_noreply=False, connect_timeout=2, timeout=2
    )


def clock_of(server: ManagedServer) -> FaketimeClock:
    assert server.clock is not None
    return server.clock


# --- the clock on its own -------------------------------------------------------------------


def test_clock_is_a_harness_clock_starting_at_a_round_instant(tmp_path: Path) -> None:
    clock: HarnessClock = FaketimeClock(tmp_path / "ts")
    assert clock.tick == 0.001
    assert clock.now() == START_TIME == 1_767_225_600.0  # 2026-01-01T00:00:00Z
    assert just_before(clock, START_TIME + 10) == START_TIME + 9.999


def test_clock_writes_a_frozen_time_with_a_guard_half_nanosecond(tmp_path: Path) -> None:
    # libfaketime truncates atof(fraction) * 1e9: ".001" alone would read as 999,999 ns.
    clock = FaketimeClock(tmp_path / "ts")
    assert (tmp_path / "ts").read_text() == "2026-01-01 00:00:00.0000000005\n"
    clock.advance_to(START_TIME + 0.001)
    assert (tmp_path / "ts").read_text() == "2026-01-01 00:00:00.0010000005\n"
    clock.advance_to(START_TIME + 86_400 + 59.999999)
    assert (tmp_path / "ts").read_text() == "2026-01-02 00:00:59.9999990005\n"
    assert not (tmp_path / "ts.next").exists()


def test_clock_rounds_to_the_microsecond_and_never_goes_back(tmp_path: Path) -> None:
    clock = FaketimeClock(tmp_path / "ts")
    assert clock.advance_to(START_TIME + 0.1 + 0.2) == START_TIME + 0.3
    assert clock.now_us() == START * 1_000_000 + 300_000
    assert clock.advance_to(START_TIME + 0.3000004) == START_TIME + 0.3  # rounds to the same us
    with pytest.raises(ValueError, match="never goes backwards"):
        clock.advance_to(START_TIME + 0.299)
    with pytest.raises(ValueError, match="never goes backwards"):
        clock.advance(-1)
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="finite"):
            clock.advance_to(bad)
    assert clock.now() == START_TIME + 0.3


def test_a_whole_second_clock_shows_the_server_only_whole_seconds(tmp_path: Path) -> None:
    seen: list[int] = []
    clock = FaketimeClock(tmp_path / "ts", step_us=1_000_000, barrier=seen.append)
    clock.advance_to(START_TIME + 0.75)  # the server is shown nothing new: no write, no barrier
    assert clock.now() == START_TIME + 0.75
    assert (tmp_path / "ts").read_text() == "2026-01-01 00:00:00.0000000005\n"
    clock.advance_to(START_TIME + 1.5)
    assert (tmp_path / "ts").read_text() == "2026-01-01 00:00:01.0000000005\n"
    assert seen == [(START + 1) * 1_000_000]


# --- Redis under the fake clock -------------------------------------------------------------


def test_redis_expires_on_the_millisecond_the_harness_chooses(fake_redis: ManagedServer) -> None:
    clock = clock_of(fake_redis)
    client = redis_client(fake_redis)
    assert client.time() == (START, 0)
    assert client.set("k", "v", px=10_000)
    clock.advance_to(START_TIME + 10)
    assert client.pttl("k") == 0  # docs/facts.md: live at exactly +10 s, PTTL 0
    assert client.get("k") == b"v"
    clock.advance_to(START_TIME + 10.001)
    assert client.get("k") is None
    assert client.time() == (START + 10, 1_000)  # exact: the half-nanosecond guard at work
    client.close()


def test_redis_time_follows_every_microsecond(fake_redis: ManagedServer) -> None:
    clock = clock_of(fake_redis)
    client = redis_client(fake_redis)
    for offset_us in (1, 999, 1_000, 123_456, 999_999, 1_000_001):
        clock.advance_to(START_TIME + offset_us / 1_000_000)
        assert client.time() == divmod(START * 1_000_000 + offset_us, 1_000_000)
    client.close()


def test_redis_stop_leaves_nothing(fake_redis: ManagedServer) -> None:
    fake_redis.stop()
    assert_gone(fake_redis)
    assert fake_redis.process.returncode == 0  # it shut down on SIGTERM, not SIGKILL
    fake_redis.stop()  # idempotent
    with pytest.raises(RuntimeError, match="stopped"):
        clock_of(fake_redis).advance(1)


def test_a_killed_server_leaves_no_libfaketime_names(fake_redis: ManagedServer) -> None:
    os.kill(fake_redis.pid, signal.SIGKILL)  # no exit handler runs: libfaketime cannot clean up
    fake_redis.process.wait()
    fake_redis.stop()
    assert_gone(fake_redis)


# --- memcached under the fake clock ---------------------------------------------------------


def memcached_stats_time(server: ManagedServer) -> int:
    client = memcached_client(server)
    stats = client.stats()
    client.close()
    return int(stats[b"time"])


def test_memcached_expiry_on_its_whole_second_clock(fake_memcached: ManagedServer) -> None:
    """exptime N lives between N-1 and N seconds, depending on where in its second it was set.

    Observed: set at +0 s with exptime 10 it is present at +9.999 s and gone at +10 s (it lived
    exactly 10 s); set at +20.999 s (memcached sees second 20) it is gone at +30 s (9.001 s).
    """
    clock = clock_of(fake_memcached)
    client = memcached_client(fake_memcached)
    assert client.set("k", b"v", expire=10)
    clock.advance_to(START_TIME + 9.5)
    assert client.get("k") == b"v"
    clock.advance_to(START_TIME + 9.999)
    assert client.get("k") == b"v"
    clock.advance_to(START_TIME + 10)
    assert client.get("k") is None

    clock.advance_to(START_TIME + 20.999)
    assert client.set("late", b"v", expire=10)
    clock.advance_to(START_TIME + 29.999)
    assert client.get("late") == b"v"
    clock.advance_to(START_TIME + 30)
    assert client.get("late") is None
    clock.advance_to(START_TIME + 31)
    assert memcached_stats_time(fake_memcached) == START + 31
    client.close()


def test_memcached_clock_survives_fractional_moves(fake_memcached: ManagedServer) -> None:
    # Unquantised, these moves left memcached a second behind (its timer fired at x.2 and was
    # not due again before x+1.2); shown whole seconds, it keeps up with every move.
    clock = clock_of(fake_memcached)
    for offset in (0.5, 1.2, 2.1, 2.3, 3.0, 3.999, 4.0, 61.7, 62.05):
        clock.advance_to(START_TIME + offset)
        assert memcached_stats_time(fake_memcached) == START + math.floor(offset)


def test_memcached_clock_survives_a_burst_of_concurrent_connections(
    fake_memcached: ManagedServer,
) -> None:
    """Under the single-threaded libfaketime build memcached's clock stopped for good after
    this (``STAT time`` stuck while the harness moved on); the harness uses the MT build."""

    def hammer() -> None:
        for _ in range(60):
            with socket.create_connection((fake_memcached.host, fake_memcached.port)) as conn:
                conn.sendall(b"set k 0 0 1\r\nx\r\n")
                conn.recv(64)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    clock = fake_memcached.clock
    assert clock is not None
    for step in (5, 60, 3600):
        clock.advance(step)  # raises HarnessUnavailable if memcached's clock is stuck


def test_memcached_stops_with_a_frozen_clock(fake_memcached: ManagedServer) -> None:
    assert memcached_stats_time(fake_memcached) == START
    fake_memcached.stop()  # SIGTERM alone waits for a wake: the harness connects to wake it
    assert_gone(fake_memcached)
    assert fake_memcached.process.returncode == 0  # woken and shut down, not SIGKILLed


# --- flush, ports, stop, the registry -------------------------------------------------------


def test_flush_empties_redis(fake_redis: ManagedServer) -> None:
    client = redis_client(fake_redis)
    client.mset({"a": "1", "b": "2"})
    fake_redis.flush()
    assert client.dbsize() == 0
    assert client.set("a", "3")
    assert client.get("a") == b"3"
    client.close()


def test_flush_empties_memcached_and_later_sets_survive(fake_memcached: ManagedServer) -> None:
    client = memcached_client(fake_memcached)
    client.set_many({"a": b"1", "b": b"2"})
    fake_memcached.flush()
    assert client.get_many(["a", "b"]) == {}
    # Same frozen second as the flush: memcached must still keep what is set after it.
    assert client.set("a", b"3")
    assert client.get("a") == b"3"
    client.close()


def test_two_servers_get_different_ports_and_stop_cleanly() -> None:
    require("memcached", fake_time=False)
    first = start_memcached(fake_time=False)
    second = start_memcached(fake_time=False)
    try:
        assert first.port != second.port
        assert first.url == f"memcached://127.0.0.1:{first.port}"
        assert first.clock is None
        assert {first, second} <= set(running_servers())
    finally:
        first.stop()
        second.stop()
    first.stop()
    assert_gone(first)
    assert_gone(second)
    assert running_servers() == ()
    with pytest.raises(RuntimeError, match="not running"):
        first.flush()


def test_a_port_lost_to_a_race_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    require("memcached", fake_time=False)
    with start_memcached(fake_time=False) as squatter:
        offered = [squatter.port]
        free_port = managed.free_port
        monkeypatch.setattr(managed, "free_port", lambda: offered.pop() if offered else free_port())
        with start_memcached(fake_time=False) as server:
            # The squatter answered on the first port, but with its own pid: not mistaken for ours.
            assert not offered
            assert server.port != squatter.port
            assert MEMCACHED.answering_pid(server.port) == server.pid
        assert_gone(server)


def test_ctrl_c_inside_a_with_block_stops_the_server() -> None:
    require("memcached")
    with pytest.raises(KeyboardInterrupt), start_memcached() as server:  # noqa: PT012
        assert server.is_running()
        raise KeyboardInterrupt
    assert_gone(server)


def test_interpreter_exit_stops_forgotten_servers(tmp_path: Path) -> None:
    require("redis")
    require("memcached")
    script = textwrap.dedent(
        """
        from cachespec.conformance.servers import start_memcached, start_redis
        print(start_memcached().pid, start_redis().pid, flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    for pid in result.stdout.split():
        assert_pid_gone(int(pid))


def test_sigint_to_a_process_in_a_with_block_stops_its_server() -> None:
    require("memcached")
    script = textwrap.dedent(
        """
        import signal
        import time
        from cachespec.conformance.servers import start_memcached
        # As in a terminal. A process started in the background by a shell without job
        # control inherits SIGINT ignored, and Python then leaves it ignored: a CI script run
        # with `&` would see this child ignore the Ctrl-C the test sends.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with start_memcached() as server:
            print(server.pid, flush=True)
            # Until Ctrl-C. Not signal.pause(): a SIGINT that lands after the interpreter's
            # last check for signals but before pause() starts would wait for a second one.
            while True:
                time.sleep(0.05)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        child.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends
        _, stderr = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "KeyboardInterrupt" in stderr
    assert_pid_gone(pid)


def test_sigterm_to_cachespec_check_stops_the_server_it_started() -> None:
    require("memcached")
    check = subprocess.Popen(
        [sys.executable, "-m", "cachespec", "check", "memcached", "--only", "ttl.*"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        servers = wait_for_servers(check, 1)
        check.send_signal(signal.SIGTERM)  # what kill, a CI timeout or a container stop send
        _, stderr = check.communicate(timeout=60)
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()
    assert check.returncode == 128 + signal.SIGTERM, stderr
    for pid in servers:
        assert_pid_gone(pid)


@pytest.mark.parametrize("kind", ["redis", "memcached"])
def test_sigkill_to_cachespec_check_still_stops_its_server_and_removes_its_files(
    kind: Kind,
) -> None:
    """SIGKILL runs no finally block and no atexit hook: the server's reaper stops it."""
    require(kind)
    check = start_check(kind, "--only", "ttl.*")
    try:
        found = wait_for_servers(check, 1)
        homes = {home_of(pid) for pid in found}  # its temp dir
        check.kill()
        check.wait()
        wait_gone(found, homes)
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()
    assert all(h.name.startswith(f"cachespec-{kind}-") for h in homes), homes


def test_redis_real_time_mode_has_no_clock() -> None:
    require("redis", fake_time=False)
    with start_redis(fake_time=False, maxmemory="8mb", maxmemory_policy="allkeys-lru") as server:
        assert server.clock is None
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis_client(server)
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        assert client.config_get("maxmemory") == {"maxmemory": str(8 * 1024 * 1024)}
        client.close()
    assert_gone(server)


# --- memcached facts the adapter relies on --------------------------------------------------


def test_memcached_reads_exptime_over_30_days_as_a_unix_time() -> None:
    require("memcached", fake_time=False)
    with start_memcached(fake_time=False) as server:
        client = memcached_client(server)
        assert client.set("relative", b"v", expire=2_592_000)  # 30 days: still relative
        assert client.get("relative") == b"v"
        assert client.set("absolute", b"v", expire=2_592_001)  # a Unix time in 1970
        assert client.get("absolute") is None
        client.close()


# --- HarnessUnavailable ---------------------------------------------------------------------


def test_a_missing_binary_is_a_clear_harness_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert harness_available("memcached") is not None
    with pytest.raises(HarnessUnavailable, match=r"^memcached not found on PATH"):
        start_memcached()
    with pytest.raises(HarnessUnavailable, match=r"^redis-server not found on PATH"):
        start_redis(fake_time=False)
    assert running_servers() == ()


def test_missing_libfaketime_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    require("memcached", fake_time=False)
    monkeypatch.setenv("CACHESPEC_LIBFAKETIME", str(tmp_path / "nope.so"))
    reason = harness_available("memcached")
    assert reason is not None
    assert "libfaketime not found" in reason
    with pytest.raises(HarnessUnavailable, match="libfaketime not found"):
        start_memcached()
    assert harness_available("memcached", fake_time=False) is None


def test_redis_without_a_compiler_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    require("redis")
    only_redis = tmp_path / "bin"
    only_redis.mkdir()
    (only_redis / "redis-server").symlink_to(harness_binary("redis-server"))
    monkeypatch.setenv("PATH", str(only_redis))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no shim compiled yet
    reason = harness_available("redis")
    assert reason is not None
    assert "needs a C compiler for the jemalloc shim" in reason
    with pytest.raises(HarnessUnavailable, match="needs a C compiler for the jemalloc shim"):
        start_redis()


def harness_binary(name: str) -> str:
    found = shutil.which(name)
    assert found is not None
    return found


def fake_binary(directory: Path, name: str, body: str) -> None:
    directory.mkdir(exist_ok=True)
    script = directory / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)


def test_a_server_that_dies_at_start_reports_its_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_binary(tmp_path / "bin", "memcached", "echo 'boom: cannot start' >&2; exit 3")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    with pytest.raises(HarnessUnavailable, match=r"exited at start \(status 3\).*boom"):
        start_memcached(fake_time=False)
    assert running_servers() == ()


def test_a_server_that_never_answers_times_out_and_is_killed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    never_answers = (
        f"echo 'still thinking'; exec '{sys.executable}' -c 'import time; time.sleep(60)'"
    )
    fake_binary(tmp_path / "bin", "redis-server", never_answers)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    with pytest.raises(HarnessUnavailable, match=r"did not answer within 0.3 s.*still thinking"):
        start_redis(fake_time=False, ready_timeout=0.3)
    assert running_servers() == ()
