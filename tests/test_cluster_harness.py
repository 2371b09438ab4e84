"""The redis-cluster harness: six nodes that start together and are all gone again, whatever
ends the process that started them (a finished run, a failed start, Ctrl-C, SIGKILL).

The waits here are bounded polls on processes and files, never a sleep for an outcome.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

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
#: Real seconds any wait below may take: a bound for a loaded machine, not an expected time.
PATIENCE = 90.0


def _require() -> None:
    reason = harness_available("redis-cluster")
    if reason is not None:
        pytest.fail(f"the cluster harness cannot run here: {reason}")


def _redis_servers_under(pid: int) -> list[int]:
    """The redis-server processes descending from ``pid``."""
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

    return [candidate for candidate in parent_of if descends(candidate) and _is_redis(candidate)]


def _is_redis(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # redis-server rewrites its title in place: "/usr/bin/redis-server 127.0.0.1:6379".
    return os.path.basename(command.split(b"\0", 1)[0].split(b" ", 1)[0]) == b"redis-server"


def _wait_for_nodes(check: subprocess.Popen[bytes]) -> list[int]:
    """Every node ``check`` started, once all six run (bounded)."""
    found: list[int] = []
    deadline = time.monotonic() + PATIENCE
    while len(found) < NODES and check.poll() is None and time.monotonic() < deadline:
        found = _redis_servers_under(check.pid)
        time.sleep(0.05)  # polling a starting process, not waiting for an outcome
    assert len(found) == NODES, f"the check started {len(found)} nodes, not {NODES}"
    return found


def _cluster_folder(pid: int) -> Path:
    """A node's folder is node-<i> inside the cluster's own (its working directory)."""
    return Path(os.readlink(f"/proc/{pid}/cwd")).parent


def _wait_gone(pids: list[int], folders: set[Path]) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline and (
        any(_is_redis(pid) for pid in pids) or any(folder.exists() for folder in folders)
    ):
        time.sleep(0.05)  # polling the reapers' work, bounded
    left = [pid for pid in pids if _is_redis(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # never leave one running, then fail
    assert left == []
    assert [folder for folder in folders if folder.exists()] == []


def _check(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cachespec", "check", "redis-cluster", "--jobs", "1", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_to_cachespec_check_still_stops_every_node_and_removes_its_files() -> None:
    """SIGKILL runs no finally block and no atexit hook: each node's reaper stops it."""
    _require()
    check = _check("--only", "ttl.*")
    try:
        nodes = _wait_for_nodes(check)
        folders = {_cluster_folder(pid) for pid in nodes}
        check.kill()
        check.wait()
        _wait_gone(nodes, folders)
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()
    assert len(folders) == 1
    assert next(iter(folders)).name.startswith("cachespec-redis-cluster-")


def test_ctrl_c_to_cachespec_check_stops_every_node() -> None:
    _require()
    check = _check("--only", "ttl.*")
    try:
        nodes = _wait_for_nodes(check)
        folders = {_cluster_folder(pid) for pid in nodes}
        check.send_signal(signal.SIGINT)
        assert check.wait(timeout=PATIENCE) == 130
        _wait_gone(nodes, folders)
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()


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
