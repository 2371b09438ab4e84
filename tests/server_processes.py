"""The servers a ``cachespec check`` started, found in /proc, and the waits for them to go.

Shared by the harness tests of one server, a cluster and a ring (test_servers.py,
test_cluster_harness.py, test_ring_harness.py): each starts a check in a subprocess, finds
the servers under it, stops it (SIGKILL, Ctrl-C) and waits, bounded, for the reapers to stop
every server and remove its files. The waits are polls on processes and files, never a
sleep for an outcome.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SERVERS = (b"redis-server", b"memcached")
# Real seconds any wait below may take: a bound for a loaded machine, not an expected time.
PATIENCE = 90.0


def program_of(pid: int) -> bytes | None:
    """The program ``pid`` runs, by name, or None once it is gone."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # redis-server rewrites its title in place: "/usr/bin/redis-server 127.0.0.1:6379".
    return os.path.basename(command.split(b"\0", 1)[0].split(b" ", 1)[0])


def is_server(pid: int, programs: tuple[bytes, ...] = SERVERS) -> bool:
    """Whether ``pid`` runs one of ``programs`` (not, say, the reaper that names its folder)."""
    return program_of(pid) in programs


def servers_under(pid: int, programs: tuple[bytes, ...] = SERVERS) -> list[int]:
    """The processes running one of ``programs`` that descend from ``pid``."""
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

    return [found for found in parent_of if descends(found) and is_server(found, programs)]


def start_check(kind: str, *args: str) -> subprocess.Popen[bytes]:
    """``cachespec check kind`` in one worker (its servers are its children)."""
    return subprocess.Popen(
        [sys.executable, "-m", "cachespec", "check", kind, "--jobs", "1", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for_servers(
    check: subprocess.Popen[Any], count: int, programs: tuple[bytes, ...] = SERVERS
) -> list[int]:
    """The servers ``check`` started, once ``count`` of them run (bounded)."""
    found: list[int] = []
    deadline = time.monotonic() + PATIENCE
    while len(found) < count and check.poll() is None and time.monotonic() < deadline:
        found = servers_under(check.pid, programs)
        time.sleep(0.05)  # polling a starting process, not waiting for an outcome
    assert len(found) >= count, f"the check started {len(found)} servers, not {count}"
    return found


def home_of(pid: int) -> Path:
    """A server's working directory: the folder the harness made for it."""
    return Path(os.readlink(f"/proc/{pid}/cwd"))


def wait_gone(pids: list[int], folders: set[Path], programs: tuple[bytes, ...] = SERVERS) -> None:
    """Every one of ``pids`` stopped and every folder removed, within PATIENCE; a server
    still running then is killed, and the test fails."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline and (
        any(is_server(pid, programs) for pid in pids) or any(f.exists() for f in folders)
    ):
        time.sleep(0.05)  # polling the reapers' work, bounded
    left = [pid for pid in pids if is_server(pid, programs)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # never leave one running, then fail
    assert left == []
    assert [folder for folder in folders if folder.exists()] == []


def stop_check_and_wait_for_its_nodes(
    kind: str, nodes: int, program: bytes, how: signal.Signals
) -> set[Path]:
    """Start ``cachespec check kind``, wait for its ``nodes`` servers, send it ``how``, and
    wait until every node is stopped and the group's folder (each node's home's parent) is
    gone. Returns that folder's set, for the caller to name. Ctrl-C must end the check with
    its exit status 130; SIGKILL runs no finally block and no atexit hook, so the nodes'
    reapers must do it."""
    check = start_check(kind, "--only", "ttl.*")
    try:
        found = wait_for_servers(check, nodes, (program,))
        folders = {home_of(pid).parent for pid in found}
        check.send_signal(how)
        status = check.wait(timeout=PATIENCE)
        if how == signal.SIGINT:
            assert status == 130
        wait_gone(found, folders, (program,))
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()
    return folders
