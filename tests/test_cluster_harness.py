"""The redis-cluster harness: six nodes that start together and are all gone again, whatever
ends the process that started them (a finished run, a failed start, Ctrl-C, SIGKILL).

The waits here are bounded polls on processes and files, never a sleep for an outcome.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from server_processes import stop_check_and_wait_for_its_nodes

from cachespec.conformance.properties import BY_ID
from cachespec.conformance.runner import NOT_APPLICABLE, why_skipped
from cachespec.conformance.servers import (
    FaketimeClock,
    HarnessUnavailable,
    harness_available,
    running_servers,
)
from cachespec.conformance.servers import cluster as cluster_module
from cachespec.conformance.servers.cluster import start_redis_cluster
from cachespec.conformance.target import ServerTarget, resolve_target
from cachespec.spec import Guarantees

pytestmark = pytest.mark.redis

NODES = 6
KIND = "redis-cluster"


def _require() -> None:
    reason = harness_available("redis-cluster")
    if reason is not None:
        pytest.fail(f"the cluster harness cannot run here: {reason}")


def test_sigkill_to_cachespec_check_still_stops_every_node_and_removes_its_files() -> None:
    """SIGKILL runs no finally block and no atexit hook: each node's reaper stops it."""
    _require()
    folders = stop_check_and_wait_for_its_nodes(KIND, NODES, b"redis-server", signal.SIGKILL)
    assert len(folders) == 1
    assert next(iter(folders)).name.startswith("cachespec-redis-cluster-")


def test_ctrl_c_to_cachespec_check_stops_every_node() -> None:
    _require()
    stop_check_and_wait_for_its_nodes(KIND, NODES, b"redis-server", signal.SIGINT)


def test_a_cluster_that_cannot_be_created_leaves_nothing_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _require()
    refusing = tmp_path / "redis-cli"
    refusing.write_text("#!/bin/sh\necho '[ERR] Node is not empty.'\nexit 1\n")
    refusing.chmod(0o755)
    monkeypatch.setenv("CACHESPEC_REDIS_CLI", str(refusing))
    folders = tmp_path / "tmp"
    folders.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folders))  # where the cluster's folder goes
    with pytest.raises(HarnessUnavailable, match=r"--cluster create failed: \[ERR\] Node is not"):
        start_redis_cluster()
    assert running_servers() == ()
    assert list(folders.iterdir()) == []


def test_without_redis_cli_the_harness_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CACHESPEC_REDIS_CLI", "no-such-redis-cli")
    reason = harness_available("redis-cluster")
    assert reason is not None
    assert "no-such-redis-cli not found" in reason
    assert "redis-tools" in reason


def test_the_cli_checks_a_cluster_at_quick_size(tmp_path: Path) -> None:
    """The whole path: the harness starts the cluster, the suite runs on it, the report says
    so, and the cluster is gone afterwards. A few properties, one per kind of operation the
    cluster changes (batches split by slot, clear on every master, TTLs on the one clock,
    another process on the same cluster); `tox -e redis-cluster` runs them all."""
    _require()
    report = tmp_path / "report.json"
    only = [
        "ops.get_many",
        "ops.set_many",
        "ops.delete_many",
        "ops.clear_namespace",
        "ttl.expires",
        "single_flight.processes",
    ]
    command = [
        sys.executable, "-m", "cachespec", "check", "redis-cluster",
        "--size", "quick", "--seed", "16", "--jobs", "1", "--quiet",
        "--only", *only, "--report", str(report),
    ]  # fmt: skip
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(report.read_text())
    statuses = {result["id"]: result["status"] for result in data["properties"]}
    assert statuses == dict.fromkeys(only, "pass")
    assert data["clock"] == "the harness's clock"


def test_on_a_frozen_clock_no_master_ever_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/facts.md: a cluster master serves only once its clock has moved 2 s past its
    first cluster check. Without the harness's moves during the wait, the masters stay
    ``fail`` (the replicas, which serve no slot, report ``ok``) and the bounded wait ends
    with the states in its message."""
    _require()
    monkeypatch.setattr(cluster_module, "CLUSTER_READY_TIMEOUT", 5.0)
    monkeypatch.setattr(FaketimeClock, "advance", lambda self, seconds: self.now())
    with pytest.raises(HarnessUnavailable, match="did not reach cluster_state:ok") as raised:
        start_redis_cluster()
    states = re.findall(r"\d+: '(\w+)'", str(raised.value))
    assert sorted(states) == ["fail"] * 3 + ["ok"] * 3
    assert running_servers() == ()


def test_the_single_server_fault_properties_say_why_they_skip_on_a_cluster() -> None:
    """faults.server_* kill, stop and restart one process: on a cluster they do not apply
    (its node faults are the faults.cluster_* properties), with the kind's reason, not a
    run that errors or a silent skip, and not a failure under --require-all."""
    target = resolve_target("redis-cluster")
    assert isinstance(target, ServerTarget)
    assert not target.owns_server
    assert target.server_faults_note is not None
    assert "faults.cluster_* properties" in target.server_faults_note
    skipped = why_skipped(BY_ID["faults.server_calls"], target, Guarantees(compare_and_set=True))
    assert skipped == (NOT_APPLICABLE, target.server_faults_note)
    single = resolve_target("redis")
    assert single.owns_server
    assert single.server_faults_note is None
