"""ttl.never and ttl.long on a server you run: uncapped, and never left behind.

The suite writes there as a guest whose TTLs are capped at an hour; for these two properties
the cap is lifted, each key registered with the guest reaper first (conformance/
guest_reaper.py). These tests run against harness-started servers on the real clock,
treated as a user's (``UserServerTarget``), and check that the real adapters pass, that the
arguments reach the adapter uncapped, and that nothing of the suite's is left on the
server: after a completed run, after the harness closed the reaper's pipe with keys still
registered, and after a harness killed with SIGKILL in the middle of ttl.never.
docs/design.md, "Uncapped TTLs on a server you run".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from test_server_conformance import SECRET, SECRET_IN_URL, SECRET_PIECES, _server_keys

from cachespec.backends import Backend, open_backend
from cachespec.backends.memory import MemoryBackend
from cachespec.conformance import servers
from cachespec.conformance.checks import CannotCheck
from cachespec.conformance.guest_reaper import GuestReaper
from cachespec.conformance.properties import BY_ID
from cachespec.conformance.realtime import BOUNDARY_TTLS, CLOCK
from cachespec.conformance.runner import Budget, run_property
from cachespec.conformance.target import UserServerTarget
from cachespec.conformance.tenant import GUEST_TTL, Tenant

PREFIX = "cachespec-check-"
# Real-time examples cost seconds on memcached (a whole-second clock): 2 there, 10 on Redis.
BUDGETS = {"redis": Budget("rt", 1.0, 100), "memcached": Budget("rt", 0.3, 100)}
KINDS = [pytest.param(kind, marks=getattr(pytest.mark, kind)) for kind in ("redis", "memcached")]
# How long a poll of the server may go on before the test gives up (never a sleep to wait
# for something: each poll asks the server or /proc).
POLL_DEADLINE = 120.0


def _until(condition: Callable[[], Any], what: str, deadline: float = POLL_DEADLINE) -> Any:
    """Poll ``condition`` until it returns something true; fail naming ``what``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = condition()
        if found:
            return found
        time.sleep(0.002)  # between polls: the wait is the condition's, not this sleep's
    pytest.fail(f"gave up after {deadline}s waiting for {what}")


def _suite_keys(server: servers.ManagedServer, pid: int | None = None) -> dict[str, float | None]:
    """The suite's keys on ``server`` (of the run in process ``pid``, if given)."""
    prefix = PREFIX if pid is None else f"{PREFIX}{pid}-"
    return {k: v for k, v in _server_keys(server).items() if _under(prefix, k)}


def _under(prefix: str, key: str) -> bool:
    """Whether the server's ``key`` belongs to a namespace starting with ``prefix`` (Redis
    wraps the namespace in a hash tag: ``{namespace}:key``)."""
    return key.removeprefix("{").startswith(prefix)


def _forever(keys: dict[str, float | None]) -> list[str]:
    """The data keys without expiry (memcached's generation counter is not a data key)."""
    return [k for k, expiry in keys.items() if expiry is None and not k.endswith(":generation")]


@pytest.fixture
def server(request: pytest.FixtureRequest) -> servers.ManagedServer:
    running = request.getfixturevalue(f"real_time_{request.param}")
    assert isinstance(running, servers.ManagedServer)
    return running


# ---------------------------------------------------------------------------- the Tenant


class _Ledger:
    """A reaper's interface that records what it is told, beside the backend's writes, so
    that the order of the two can be checked (no process, no server)."""

    def __init__(self, log: list[tuple[str, object]]) -> None:
        self.log = log

    def register(self, namespace: str, keys: list[str]) -> None:
        self.log.append(("register", (namespace, tuple(keys))))

    def forget(self, namespace: str) -> None:
        self.log.append(("forget", namespace))


class _LoggedMemory(MemoryBackend):
    log: list[tuple[str, object]]

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.log.append(("set", (key, ttl)))
        super().set(key, value, ttl)


def _logged_tenant(lifted: bool) -> tuple[Tenant, list[tuple[str, object]]]:
    log: list[tuple[str, object]] = []
    inner = _LoggedMemory()
    inner.log = log
    reaper: Any = _Ledger(log)
    tenant = Tenant(inner, reaper=reaper, namespace="ns")
    if lifted:
        tenant.lift_cap()
    return tenant, log


def test_the_cap_stays_unless_lifted_and_a_guest_without_a_reaper_keeps_it() -> None:
    tenant, log = _logged_tenant(lifted=False)
    tenant.set("k", b"v", None)
    tenant.set("j", b"v", 31_536_000)
    assert log == [("set", ("k", GUEST_TTL)), ("set", ("j", GUEST_TTL))]
    with pytest.raises(RuntimeError, match="without a reaper"):
        Tenant(MemoryBackend()).lift_cap()


def test_a_lifted_cap_registers_each_key_before_its_write_and_forgets_once_deleted() -> None:
    tenant, log = _logged_tenant(lifted=True)
    tenant.set("k", b"v", None)
    tenant.set("j", b"v", 2_592_001)
    tenant.set("short", b"v", 1.0)  # nothing the cap would change: nothing to register
    tenant.discard()
    assert log == [
        ("register", ("ns", ("k",))),
        ("set", ("k", None)),
        ("register", ("ns", ("j",))),
        ("set", ("j", 2_592_001)),
        ("set", ("short", 1.0)),
        ("forget", "ns"),
    ]


# ------------------------------------------------------------------- the reaper's process


def _metadump_names(server: servers.ManagedServer, namespace: str) -> list[str]:
    return [k for k in _server_keys(server) if _under(namespace, k)]


@pytest.mark.parametrize("server", KINDS, indirect=True)
def test_keys_still_registered_at_end_of_file_are_deleted_in_their_generation(
    server: servers.ManagedServer,
) -> None:
    # The same path as a harness's death: end of file with keys registered, never
    # forgotten. On memcached a clear in between moves the generation, so the reaper must
    # find the keys under the names the writer used, opening the namespace afresh.
    namespace = f"{PREFIX}{os.getpid()}-reaper-test"
    reaper = GuestReaper(server.url)
    tenant = Tenant(
        open_backend(server.url, namespace=namespace), reaper=reaper, namespace=namespace
    )
    try:
        tenant.lift_cap()
        tenant.set("before", b"v", None)
        tenant.clear()  # a new generation on memcached; the old one's "before" is deleted
        tenant.set("after", b"v", None)
        tenant.set("long", b"v", 31_536_000)
        written = _metadump_names(server, namespace)
        assert len([k for k in written if not k.endswith(":generation")]) == 2, written
        assert reaper.pid is not None
    finally:
        tenant.close()  # no discard: the keys stay registered
    reaper.close()
    assert _metadump_names(server, namespace) == []


def test_a_reaper_gone_stops_the_uncapped_write_before_it_is_made() -> None:
    reaper = GuestReaper("redis://127.0.0.1:1/0")  # never reached: nothing is reaped
    reaper.register("ns", ["k"])
    process = reaper._process
    assert process is not None
    process.kill()  # as the OOM killer might
    process.wait()
    log: list[tuple[str, object]] = []
    inner = _LoggedMemory()
    inner.log = log
    tenant = Tenant(inner, reaper=reaper, namespace="ns")
    tenant.lift_cap()
    with pytest.raises(CannotCheck, match="guest reaper"):
        tenant.set("k", b"v", None)
    assert log == []  # nothing reached the backend
    tenant.discard()  # the keys it did write go as ever; a gone reaper forgets nothing
    reaper.close()


def test_a_reaper_that_cannot_start_stops_the_uncapped_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An interpreter that cannot import the reaper (here: none at all) never says ready.
    monkeypatch.setattr(sys, "executable", "/bin/false")
    reaper = GuestReaper("redis://127.0.0.1:1/0")
    with pytest.raises(CannotCheck, match="did not start"):
        reaper.register("ns", ["k"])
    assert reaper.pid is None
    reaper.close()


@pytest.mark.parametrize("server", KINDS, indirect=True)
def test_the_real_adapters_pass_uncapped_and_leave_nothing(
    server: servers.ManagedServer,
) -> None:
    sent: list[float | None] = []

    def opener(url: str, namespace: str) -> Backend:
        backend = open_backend(url, namespace=namespace)
        base = type(backend)

        class Recording(base):  # type: ignore[valid-type, misc]
            __slots__ = ()

            def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
                sent.append(ttl)
                super().set(key, value, ttl)

        backend.__class__ = Recording
        return backend

    target = UserServerTarget(server.url, opener=opener)
    try:
        for prop_id in ("ttl.never", "ttl.long"):
            result = run_property(
                BY_ID[prop_id], target, target.guarantees(), BUDGETS[server.kind], 1
            )
            assert (result.status, result.clock) == ("pass", CLOCK), result.reason
    finally:
        target.close()
    # The adapter saw what the properties are about, not the guest's hour.
    assert None in sent
    assert set(sent) & set(BOUNDARY_TTLS), sent  # ttl.long's, as they are
    assert GUEST_TTL not in sent
    assert _suite_keys(server, os.getpid()) == {}


# ------------------------------------------------------------------------------- SIGKILL


def _reapers_of(pid: int) -> list[int]:
    """The guest reapers whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"cachespec.conformance.guest_reaper" in cmdline:
            found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        return _state(pid) == "Z"
    except OSError:
        return True


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _stopped_with_a_key_forever(server: servers.ManagedServer, pid: int) -> list[str]:
    """Stop the run ``pid`` (SIGSTOP) at an instant a key of its without expiry is on the
    server, and return those keys: once it is stopped, only its reaper can remove them.
    A key seen before the stop may have been deleted by the run itself meanwhile (its
    example ended): then the run continues, and the search with it."""
    while True:
        _until(lambda: _forever(_suite_keys(server, pid)), "a key without expiry on the server")
        os.kill(pid, signal.SIGSTOP)
        _until(lambda: _state(pid) == "T", "the run to stop")
        forever = _forever(_suite_keys(server, pid))
        if forever:
            return forever
        os.kill(pid, signal.SIGCONT)


def _seconds_left(server: servers.ManagedServer, expiry: float | None) -> float:
    """How long a key of ``_server_keys`` has left (Redis: its PTTL in ms; memcached: its
    Unix expiry time)."""
    if expiry is None:
        return float("inf")
    return expiry / 1000 if server.kind == "redis" else expiry - time.time()


def _secret_user(server: servers.ManagedServer) -> str:
    admin = redis.Redis(host=server.host, port=server.port)
    admin.acl_setuser(
        "alice", enabled=True, passwords=[f"+{SECRET}"], keys=["*"], commands=["+@all"]
    )
    admin.close()
    return f"redis://alice:{SECRET_IN_URL}@{server.host}:{server.port}/0"


@pytest.mark.parametrize("kind", KINDS)
def test_a_harness_killed_in_ttl_never_leaves_no_key(kind: str) -> None:
    start = servers.start_redis if kind == "redis" else servers.start_memcached
    with start(fake_time=False) as server:
        url = _secret_user(server) if kind == "redis" else server.url
        args = [url, "--only", "ttl.never", "--seed", "1", "--jobs", "1"]
        with subprocess.Popen(
            [sys.executable, "-m", "cachespec", "check", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as check:
            try:
                forever = _stopped_with_a_key_forever(server, check.pid)
                reapers = _reapers_of(check.pid)
                assert len(reapers) == 1, reapers
                shown = {
                    part: Path(f"/proc/{reapers[0]}/{part}").read_bytes()
                    for part in ("cmdline", "environ")
                }
            finally:
                check.send_signal(signal.SIGKILL)
            out, err = check.communicate(timeout=60)
        assert check.returncode == -signal.SIGKILL
        _until(lambda: _gone(reapers[0]), "the reaper to finish")
        left = _suite_keys(server)
        assert forever, "the poll returned without a key"
        assert _forever(left) == [], left
        # What else the run wrote expires within seconds (its short TTLs): nothing stays.
        assert all(_seconds_left(server, expiry) < GUEST_TTL for expiry in left.values()), left
        _until(lambda: not _suite_keys(server), "the short TTLs to run out", deadline=30)
    texts = [out, err, *shown.values()]
    assert [p for p in SECRET_PIECES for t in texts if p.encode() in t] == []
