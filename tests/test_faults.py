"""The harness side of the server faults (conformance/outages.py) and where the
``faults.server_*`` properties run.

Each property's mutant is in tests/adapter_mutants.py or tests/strategy_mutants.py, and
tests/test_server_conformance.py / test_mutants.py check that the suite rejects it; the
correct adapters pass them in the tox envs ``redis`` and ``memcached``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachespec.backends import MemoryBackend
from cachespec.conformance import Target, run_suite, servers
from cachespec.conformance.outages import (
    FAULTS,
    SETTLE_WITHIN,
    Fault,
    Hung,
    bounded,
    connection_count,
    outage,
    settled_count,
)
from cachespec.conformance.properties import PROPERTIES
from cachespec.conformance.runner import CANNOT_CHECK_HERE, NOT_APPLICABLE, why_skipped
from cachespec.conformance.target import resolve_target

FAULT_PROPERTIES = [p for p in PROPERTIES if p.needs_server]


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("memcached", marks=pytest.mark.memcached),
    ]
)
def server(request: pytest.FixtureRequest) -> Iterator[servers.ManagedServer]:
    kind = servers.server_kind(request.param)
    started = kind.start({}, fake_time=True)
    assert isinstance(started, servers.ManagedServer)  # one process, not a cluster
    with started:
        yield started


def _state(pid: int) -> str:
    """The process's state letter from /proc (T: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def _answers(server: servers.ManagedServer) -> bool:
    return server.server_kind.answering_pid(server.port) == server.pid


class Boom(Exception):
    pass


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_an_outage_puts_the_server_back_even_when_the_block_raises(
    server: servers.ManagedServer, fault: Fault
) -> None:
    before = server.pid
    seen: list[object] = []

    def inside() -> None:
        with outage(server, fault):
            if fault is Fault.STOP:
                seen.append(_state(server.pid))
            elif fault is Fault.KILL:
                seen.append(server.is_running())
                try:
                    socket.create_connection((server.host, server.port), timeout=1).close()
                except ConnectionRefusedError:
                    seen.append("refused")
            else:
                seen.extend([server.pid != before, _answers(server)])
            raise Boom

    with pytest.raises(Boom):
        inside()
    assert seen == {Fault.STOP: ["T"], Fault.KILL: [False, "refused"]}.get(fault, [True, True])
    assert _answers(server)
    assert (server.pid == before) is (fault is Fault.STOP)


def test_a_bounded_call_returns_its_value_or_its_exception() -> None:
    assert bounded("value", lambda: 42).value == 42
    outcome = bounded("raises", lambda: 1 / 0)
    assert isinstance(outcome.error, ZeroDivisionError)
    assert outcome.value is None


def test_a_call_that_never_returns_is_a_hang() -> None:
    release = threading.Event()
    try:
        with pytest.raises(Hung, match=r"blocked did not return within .* it hangs"):
            bounded("blocked", release.wait, within=0.05)
    finally:
        release.set()


def test_the_count_of_connections_follows_a_client(server: servers.ManagedServer) -> None:
    base = settled_count(
        server, connection_count(server) - 1, within=0.3
    )  # one left from the probes
    client = socket.create_connection((server.host, server.port))
    try:
        # Polled, with a deadline: the server counts the client once its event loop has
        # accepted it, and an earlier probe's own connection until it has seen that one
        # close (a CI failure: 3 where 2 was due), so the count reaches base + 1 in time.
        deadline = time.monotonic() + SETTLE_WITHIN
        while (count := connection_count(server)) != base + 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # a poll for a condition, not a wait "to make sure"
        assert count == base + 1
    finally:
        client.close()
    assert settled_count(server, base) == base


def test_off_a_harness_server_the_fault_properties_cannot_be_checked() -> None:
    assert len(FAULT_PROPERTIES) == 6
    # A factory's backend may talk to a server, but not one the harness may fail.
    target = Target("mine", lambda clock: MemoryBackend(8, clock=clock))
    report = run_suite(target, seed=1, only=["faults.server_*"])
    assert {r.id: (r.status, r.skip) for r in report.results} == {
        p.id: ("skip", CANNOT_CHECK_HERE) for p in FAULT_PROPERTIES
    }
    assert all("only a server the harness started" in r.reason for r in report.results)


def test_a_backend_without_a_server_has_no_server_faults() -> None:
    report = run_suite("memory://", seed=1, only=["faults.server_*"])
    assert {r.id: (r.status, r.skip) for r in report.results} == {
        p.id: ("skip", NOT_APPLICABLE) for p in FAULT_PROPERTIES
    }
    assert all("there is no server to kill" in r.reason for r in report.results)


@pytest.mark.redis
def test_a_server_you_run_is_not_faulted() -> None:
    """A user's server (here one the harness started, reached by its URL) is never
    killed or stopped: the properties say they cannot check it."""
    with servers.start_redis() as running:
        target = resolve_target(running.url)
        guarantees = target.guarantees()
        for prop in FAULT_PROPERTIES:
            skipped = why_skipped(prop, target, guarantees)
            assert skipped is not None, prop.id
            assert skipped[0] == CANNOT_CHECK_HERE, prop.id
        target.close()
        assert running.is_running()


def test_a_stopped_server_accepts_buffers_and_answers_once_continued(
    server: servers.ManagedServer,
) -> None:
    """The fact the stop rests on (docs/facts.md): connections complete from the kernel's
    backlog, requests wait unanswered (a client times out, it is not refused), and the
    server executes them once continued, answering on the same connection."""
    request = b"PING\r\n" if server.kind == "redis" else b"version\r\n"
    with outage(server, Fault.STOP):
        client = socket.create_connection((server.host, server.port), timeout=1)
        client.sendall(request)
        client.settimeout(0.1)
        with pytest.raises(TimeoutError):
            client.recv(100)
    client.settimeout(5)
    try:
        reply = client.recv(100)
    finally:
        client.close()
    assert reply.startswith((b"+PONG", b"VERSION "))
