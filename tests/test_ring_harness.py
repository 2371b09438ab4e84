"""The memcached-ring harness: three nodes that start together on one clock and are all gone
again, whatever ends the process that started them (a finished run, a failed start, Ctrl-C,
SIGKILL); and ``cachespec check memcached-ring`` end to end.

The waits here are bounded polls on processes and files, never a sleep for an outcome.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cachespec.conformance import run_suite
from cachespec.conformance.runner import NOT_DECLARED
from cachespec.conformance.servers import HarnessUnavailable, harness_available, running_servers
from cachespec.conformance.servers.ring import NODES, start_ring
from cachespec.conformance.target import ServerTarget, resolve_target

pytestmark = pytest.mark.memcached

#: Real seconds any wait below may take: a bound for a loaded machine, not an expected time.
PATIENCE = 90.0


def _require() -> None:
    reason = harness_available("memcached-ring")
    if reason is not None:
        pytest.fail(f"the ring harness cannot run here: {reason}")


def _memcacheds_under(pid: int) -> list[int]:
    """The memcached processes descending from ``pid``."""
    parent_of: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent_of[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # it ended while we looked

    def descends(child: int) -> bool:
        while child > 1:
            child = parent_of.get(child, 0)
            if child == pid:
                return True
        return False

    return [
        candidate for candidate in parent_of if descends(candidate) and _is_memcached(candidate)
    ]


def _is_memcached(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return os.path.basename(command.split(b"\0", 1)[0]) == b"memcached"


def _wait_for_nodes(check: subprocess.Popen[bytes]) -> list[int]:
    found: list[int] = []
    deadline = time.monotonic() + PATIENCE
    while len(found) < NODES and check.poll() is None and time.monotonic() < deadline:
        found = _memcacheds_under(check.pid)
        time.sleep(0.05)  # polling a starting process, not waiting for an outcome
    assert len(found) == NODES, f"the check started {len(found)} nodes, not {NODES}"
    return found


def _ring_folder(pid: int) -> Path:
    """A node's folder is node-<i> inside the ring's own (its working directory)."""
    return Path(os.readlink(f"/proc/{pid}/cwd")).parent


def _wait_gone(pids: list[int], folders: set[Path]) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline and (
        any(_is_memcached(pid) for pid in pids) or any(folder.exists() for folder in folders)
    ):
        time.sleep(0.05)  # polling the reapers' work, bounded
    left = [pid for pid in pids if _is_memcached(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # never leave one running, then fail
    assert left == []
    assert [folder for folder in folders if folder.exists()] == []


def _check(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cachespec", "check", "memcached-ring", "--jobs", "1", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_to_cachespec_check_still_stops_every_node_and_removes_its_files() -> None:
    """SIGKILL runs no finally block and no atexit hook: each node's reaper stops it."""
    _require()
    check = _check("--only", "ttl.*")
    try:
        nodes = _wait_for_nodes(check)
        folders = {_ring_folder(pid) for pid in nodes}
        check.kill()
        check.wait()
        _wait_gone(nodes, folders)
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()
    assert len(folders) == 1
    assert next(iter(folders)).name.startswith("cachespec-memcached-ring-")


def test_ctrl_c_to_cachespec_check_stops_every_node() -> None:
    _require()
    check = _check("--only", "ttl.*")
    try:
        nodes = _wait_for_nodes(check)
        folders = {_ring_folder(pid) for pid in nodes}
        check.send_signal(signal.SIGINT)
        assert check.wait(timeout=PATIENCE) == 130
        _wait_gone(nodes, folders)
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()


def test_a_ring_that_cannot_start_fails_and_leaves_nothing_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A node that exits at start fails the start (never a skip), and the nodes that did
    start are stopped, their folder removed."""
    _require()
    failing = tmp_path / "memcached"
    failing.write_text("#!/bin/sh\necho 'failed to listen' >&2\nexit 71\n")
    failing.chmod(0o755)
    monkeypatch.setenv("CACHESPEC_MEMCACHED", str(failing))
    folders = tmp_path / "tmp"
    folders.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folders))  # where the ring's folder goes
    before = set(running_servers())
    with pytest.raises(HarnessUnavailable, match="exited at start"):
        start_ring(fake_time=False)
    assert set(running_servers()) == before
    assert list(folders.iterdir()) == []


def test_every_node_reads_the_one_clock() -> None:
    _require()
    with start_ring() as ring:
        assert ring.clock is not None
        ring.clock.advance(1000.0)
        shown = int(ring.clock.now())
        assert [node.server_kind.read_clock(node.port) for node in ring.nodes] == [shown] * NODES
        nodes = set(ring.nodes)
        assert nodes <= set(running_servers())
        assert len(nodes) == NODES
    assert nodes.isdisjoint(running_servers())
    assert not any(node.is_running() for node in nodes)


def test_the_cli_checks_a_ring_at_quick_size(tmp_path: Path) -> None:
    """The whole path: the harness starts the ring, the suite runs on it (a property per
    kind of operation the ring changes, and the ring's faults), the report says so, and the
    ring is gone afterwards; `tox -e memcached-ring` runs them all."""
    _require()
    report = tmp_path / "report.json"
    only = [
        "ops.get_many",
        "ops.set_many",
        "ops.clear_namespace",
        "ttl.expires",
        "single_flight.processes",
        "faults.ring_returning",
    ]
    command = [
        sys.executable, "-m", "cachespec", "check", "memcached-ring",
        "--size", "quick", "--seed", "16", "--jobs", "1", "--quiet",
        "--only", *only, "--report", str(report),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(report.read_text())
    statuses = {result["id"]: result["status"] for result in data["properties"]}
    assert statuses == dict.fromkeys(only, "pass")
    assert data["clock"] == "the harness's clock"


def test_the_ring_faults_are_not_declared_elsewhere_and_the_single_server_ones_not_here() -> None:
    ring = resolve_target("memcached-ring")
    assert isinstance(ring, ServerTarget)
    assert not ring.owns_server
    assert ring.server_faults_note is not None
    assert "faults.ring_*" in ring.server_faults_note
    report = run_suite("memory://", seed=1, only=["faults.ring_*"])
    assert len(report.results) == 6
    for result in report.results:  # one server declares no ring (Guarantees.failover)
        assert (result.status, result.skip) == ("skip", NOT_DECLARED)
        assert "faults.ring_* check another kind" in result.reason
