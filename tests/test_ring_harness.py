"""The memcached-ring harness: three nodes that start together on one clock and are all gone
again, whatever ends the process that started them (a finished run, a failed start, Ctrl-C,
SIGKILL); and ``cachespec check memcached-ring`` end to end.

The waits here are bounded polls on processes and files, never a sleep for an outcome.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from server_processes import stop_check_and_wait_for_its_nodes

from cachespec.conformance import run_suite
from cachespec.conformance.runner import NOT_DECLARED
from cachespec.conformance.servers import HarnessUnavailable, harness_available, running_servers
from cachespec.conformance.servers.ring import NODES, start_ring
from cachespec.conformance.target import ServerTarget, resolve_target

pytestmark = pytest.mark.memcached

KIND = "memcached-ring"


def _require() -> None:
    reason = harness_available("memcached-ring")
    if reason is not None:
        pytest.fail(f"the ring harness cannot run here: {reason}")


def test_sigkill_to_cachespec_check_still_stops_every_node_and_removes_its_files() -> None:
    """SIGKILL runs no finally block and no atexit hook: each node's reaper stops it."""
    _require()
    folders = stop_check_and_wait_for_its_nodes(KIND, NODES, b"memcached", signal.SIGKILL)
    assert len(folders) == 1
    assert next(iter(folders)).name.startswith("cachespec-memcached-ring-")


def test_ctrl_c_to_cachespec_check_stops_every_node() -> None:
    _require()
    stop_check_and_wait_for_its_nodes(KIND, NODES, b"memcached", signal.SIGINT)


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
