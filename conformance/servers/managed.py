"""Process management: start a server of any kind, know when it is ready, stop it for sure.

Every server this module starts runs on a free loopback port in a folder of its own, is
registered at once (:func:`running_servers`), and is stopped by ``stop()``, the ``with``
block, ``Ctrl-C`` and interpreter exit, and by its reaper if this process is killed. What
differs between kinds (command line, readiness probe, clock probe, flush, environment) is
read from the server's :class:`~cachespec.conformance.servers.kind.ServerKind`; nothing here
names a kind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

from .base import HOST, HarnessUnavailable, line_reply
from .faketime import FaketimeClock, faketime_env, libfaketime

if TYPE_CHECKING:
    from .kind import ServerKind

__all__ = [
    "BARRIER_TIMEOUT",
    "PORT_ATTEMPTS",
    "READY_TIMEOUT",
    "STOP_TIMEOUT",
    "ManagedServer",
    "Reaper",
    "free_port",
    "running_servers",
    "start",
    "stop_all",
]

READY_TIMEOUT: Final = 10.0
BARRIER_TIMEOUT: Final = 2.0
STOP_TIMEOUT: Final = 5.0
PORT_ATTEMPTS: Final = 4

_SHM_DIR: Final = Path("/dev/shm")


# ---------------------------------------------------------------------------------------------
# The registry: every server this process started, stopped at exit

_LIVE: set[ManagedServer] = set()
_LIVE_LOCK = threading.Lock()


def running_servers() -> tuple[ManagedServer, ...]:
    """The servers started here and not stopped yet."""
    with _LIVE_LOCK:
        return tuple(_LIVE)


def stop_all() -> None:
    """Stop every server this process started (registered with :mod:`atexit`)."""
    for server in running_servers():
        server.stop()


atexit.register(stop_all)


# ---------------------------------------------------------------------------------------------
# A server


def _log_tail(path: Path, lines: int = 12) -> str:
    """The last non-blank ``lines`` of the server's log on one line, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail)[-1500:] or "(empty log)"


class ManagedServer:
    """A server the harness started and will stop: use it as a context manager.

    Built by :func:`start` (``start_redis``, ``start_memcached``, ``ServerKind.start``), not
    directly. ``kind`` is the kind's name, ``server_kind`` its record.
    """

    def __init__(
        self,
        server_kind: ServerKind,
        process: subprocess.Popen[bytes],
        *,
        port: int,
        temp_dir: Path,
        log_path: Path,
        clock: FaketimeClock | None,
        reaper: Reaper | None = None,
        argv: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.server_kind = server_kind
        self._argv = list(argv)  # what restart() runs again
        self._env = env
        self.kind: str = server_kind.name
        self._reaper = reaper  # stops the server if this process dies first (_REAPER)
        self.host = HOST
        self.port = port
        self.url = server_kind.url(HOST, port)
        self.clock = clock
        self.log_path = log_path
        self.temp_dir = temp_dir
        self.process = process
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._faketime_names_removed = clock is None
        with _LIVE_LOCK:
            _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def flush(self) -> None:
        """Empty the server (its kind's ``flush_request``) between sessions."""
        if self._stopped or not self.is_running():
            raise RuntimeError(f"{self!r} is not running")
        kind = self.server_kind
        reply = kind.exchange(self.port, kind.flush_request, line_reply)
        if reply != kind.flush_reply:
            raise RuntimeError(f"{self.kind} refused the flush: {reply!r}")

    def stop(self) -> None:
        """Stop the server and remove its files; safe to call twice and from any thread."""
        with self._stop_lock:
            if self._stopped:
                return
            try:
                self._terminate()
            finally:
                self._stopped = True
                if self.clock is not None:
                    self.clock.close()
                self._forget_faketime_objects()
                shutil.rmtree(self.temp_dir, ignore_errors=True)
                if self._reaper is not None:
                    self._reaper.dismiss()
                with _LIVE_LOCK:
                    _LIVE.discard(self)

    def restart(self, *, kill: bool = False) -> None:
        """Stop the server and start it again: same port, folder, clock and command line,
        none of its data (no kind here persists any). What an operator's restart does to
        the clients: each connection they hold is closed by the server, and new ones
        reach the new process (docs/design.md, "Outages").

        ``kill``: SIGKILL instead of the orderly stop. Returns once the new process answers;
        :class:`HarnessUnavailable` if it does not (the port was taken meanwhile).
        """
        with self._stop_lock:
            if self._stopped:
                raise RuntimeError(f"{self!r} was stopped: it cannot be restarted")
            if kill:
                self.process.kill()
                self.process.wait()
            else:
                self._terminate()
            if self._reaper is not None:
                self._reaper.dismiss()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    self._argv,
                    env=self._env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    cwd=self.temp_dir,
                    start_new_session=True,  # as in _spawn
                )
            self._reaper = Reaper(self.process.pid, self.temp_dir)
            self._faketime_names_removed = self.clock is None
            if not self._wait_ready(READY_TIMEOUT):
                raise HarnessUnavailable(
                    f"{self.kind} did not come back on port {self.port}; "
                    f"log: {_log_tail(self.log_path)}"
                )
            self._forget_faketime_objects()
            if self.clock is not None:
                self._sync_clock(self.clock.server_microseconds())

    def _terminate(self) -> None:
        """SIGTERM, wait (waking a server of a ``wake_to_stop`` kind), then SIGKILL: never
        leave it running.

        memcached with a frozen clock handles SIGTERM only when its event loop wakes
        (docs/facts.md), so while waiting the harness keeps opening connections to such a
        server.
        """
        process = self.process
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + STOP_TIMEOUT
                while process.poll() is None and time.monotonic() < deadline:
                    if self.server_kind.wake_to_stop:
                        self._nudge()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=0.05)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    def _forget_faketime_objects(self) -> None:
        """Remove libfaketime's per-process shared memory and semaphore names, once.

        libfaketime 0.9.10 creates ``/dev/shm/faketime_shm_<pid>`` and
        ``sem.faketime_sem_<pid>`` and removes them only in its exit handler: a server that is
        SIGKILLed (the harness's last resort, or someone else's) leaves them behind. The harness
        removes the names as soon as the server answers, while its pid cannot have been reused;
        the server keeps its mappings. Only a server that never answered gets here after exit.
        """
        if self._faketime_names_removed:
            return
        self._faketime_names_removed = True
        for name in (f"faketime_shm_{self.pid}", f"sem.faketime_sem_{self.pid}"):
            with contextlib.suppress(OSError):
                (_SHM_DIR / name).unlink()

    def _nudge(self) -> None:
        """Open and close a connection: it wakes an event loop waiting on the frozen clock."""
        with (
            contextlib.suppress(OSError),
            socket.create_connection((HOST, self.port), timeout=0.2),
        ):
            pass

    def _wait_ready(self, timeout: float) -> bool:
        """Poll until the server answers: True, or False if it exited; raise on timeout."""
        deadline = time.monotonic() + timeout
        while self.is_running():
            try:
                if self.server_kind.answering_pid(self.port) == self.pid:
                    return True
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HarnessUnavailable(
                    f"{self.kind} on port {self.port} did not answer within {timeout:g} s; "
                    f"log: {_log_tail(self.log_path)}"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.005)
        return False

    def _sync_clock(self, expected_us: int) -> None:
        """The barrier: return once the server reports the time just written (or later)."""
        kind = self.server_kind
        expected, unit = expected_us // kind.clock_step_us, kind.clock_unit
        deadline = time.monotonic() + BARRIER_TIMEOUT
        seen = "nothing"
        while True:
            try:
                reported = kind.read_clock(self.port)
            except OSError as error:
                seen = f"{type(error).__name__}: {error}"
            else:
                if reported >= expected:
                    return
                seen = str(reported)
            if time.monotonic() > deadline or not self.is_running():
                raise HarnessUnavailable(
                    f"{self.kind} on port {self.port} did not see the clock move to "
                    f"{expected} {unit} within {BARRIER_TIMEOUT:g} s (it reports {seen}); "
                    f"log: {_log_tail(self.log_path)}"
                )

    def __enter__(self) -> ManagedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if not self._stopped and self.is_running() else "stopped"
        mode = "fake time" if self.clock is not None else "real time"
        return f"<ManagedServer {self.kind} {self.url} pid={self.pid} {state}, {mode}>"


# ---------------------------------------------------------------------------------------------
# Starting servers


def free_port() -> int:
    """A port nothing listens on right now (the server may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _server_env(
    kind: ServerKind, clock: FaketimeClock | None, preload: Sequence[str]
) -> dict[str, str]:
    """The inherited environment without any faking of ours, plus libfaketime's settings
    and the kind's own (:meth:`ServerKind.fake_time_env`) when the server runs on ``clock``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "LD_PRELOAD" and not key.startswith(("FAKETIME", "DONT_FAKE"))
    }
    if clock is not None:
        env.update(faketime_env(clock, preload))
        env.update(kind.fake_time_env())
    return env


# A server must die with the process that started it, whatever kills that process: atexit
# and finally blocks do not run on SIGKILL, and PR_SET_PDEATHSIG fires when the *thread*
# that forked exits, which may be any thread. So each server gets a reaper: a small Python
# process in a session of its own, reading a pipe whose only writer is the harness. The
# harness writes "done" once it has stopped the server itself; EOF without it means the
# harness is gone, and the reaper kills the server (waking it first, should it be frozen)
# and removes its files. The server is not the reaper's child, but it cannot be reaped (and
# its pid reused) before the reaper's kill: its parent is the harness, or init after it.
_REAPER = """
import os, shutil, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
pid, folders = int(sys.argv[1]), sys.argv[2:]
if sys.stdin.buffer.read() != b"done":
    for sig in (signal.SIGCONT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
"""


class Reaper:
    """Kills the server ``pid`` and removes ``folders`` if this process dies before
    :meth:`dismiss` (see ``_REAPER``). For servers started outside this module too (the
    tests' own fixtures): every server a run starts dies with it."""

    def __init__(self, pid: int, *folders: Path) -> None:
        self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _REAPER, str(pid), *map(str, folders)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C is the harness's to handle
        )

    def dismiss(self) -> None:
        """The server is stopped: the reaper exits without a kill. Safe to call twice."""
        process, self._process = self._process, None
        if process is None or process.stdin is None:
            return
        with contextlib.suppress(OSError):
            process.stdin.write(b"done")
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def launch(
    kind: ServerKind,
    argv: list[str],
    env: dict[str, str],
    *,
    port: int,
    run_dir: Path,
    log_path: Path,
    clock: FaketimeClock | None,
    reap: Path,
) -> ManagedServer:
    """Start ``argv`` in ``run_dir`` (its output to ``log_path``) and register it at once,
    before it answers, with a reaper that removes ``reap`` when this process dies (a
    group's node names the group's folder). If registering fails, the process is killed."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=run_dir,
            # Its own session: a terminal's Ctrl-C reaches only Python, which stops the
            # server in order (a frozen memcached would ignore a bare SIGINT).
            start_new_session=True,
        )
    try:
        reaper = Reaper(process.pid, reap)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return ManagedServer(
        kind,
        process,
        port=port,
        temp_dir=run_dir,
        log_path=log_path,
        clock=clock,
        reaper=reaper,
        argv=argv,
        env=env,
    )


def _spawn(
    kind: ServerKind, options: Sequence[str], fake_time: bool, preload: Sequence[str]
) -> ManagedServer:
    """Launch the server on a free port and register it at once (before it answers)."""
    temp_dir = Path(tempfile.mkdtemp(prefix=f"cachespec-{kind.name}-"))
    try:
        log_path = temp_dir / f"{kind.name}.log"
        step_us = kind.clock_step_us
        clock = FaketimeClock(temp_dir / "faketime", step_us=step_us) if fake_time else None
        port = free_port()
        argv = [*kind.argv(kind.binary_path(), port, temp_dir, log_path), *options]
        env = _server_env(kind, clock, preload)
        where = {"run_dir": temp_dir, "log_path": log_path, "reap": temp_dir}
        return launch(kind, argv, env, port=port, clock=clock, **where)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise


def _start_once(
    kind: ServerKind,
    options: Sequence[str],
    fake_time: bool,
    preload: Sequence[str],
    ready_timeout: float,
) -> ManagedServer | None:
    """One attempt on one free port: the server, or None if it lost the port to a race."""
    server = _spawn(kind, options, fake_time, preload)
    try:
        if server._wait_ready(ready_timeout):
            if server.clock is not None:
                server._forget_faketime_objects()
                server.clock.attach_barrier(server._sync_clock)
            return server
        tail = _log_tail(server.log_path)
    except BaseException:
        server.stop()
        raise
    server.stop()
    if "in use" in tail:
        return None
    status = server.process.returncode
    raise HarnessUnavailable(f"{kind.name} exited at start (status {status}); log: {tail}")


def start(
    kind: ServerKind,
    options: Sequence[str] = (),
    *,
    fake_time: bool = True,
    ready_timeout: float = READY_TIMEOUT,
) -> ManagedServer:
    """A throwaway server of ``kind`` on a free loopback port, once it answers.

    Its command line is ``kind.argv(...)`` followed by ``options``. With ``fake_time`` its
    clock is a :class:`FaketimeClock` starting at ``START_TIME`` that shows it whole
    ``kind.clock_step_us``; without, it runs on real time and ``clock`` is None. A port lost
    to another process between the probe and the bind is retried on a new one.
    """
    kind.binary_path()
    preload: list[str] = []
    if fake_time:
        preload.append(libfaketime())
        preload += kind.fake_time_preload()  # after libfaketime (docs/facts.md)
    for _ in range(PORT_ATTEMPTS):
        server = _start_once(kind, options, fake_time, preload, ready_timeout)
        if server is not None:
            return server
    raise HarnessUnavailable(
        f"{kind.name} lost {PORT_ATTEMPTS} free ports in a row to other processes"
    )
