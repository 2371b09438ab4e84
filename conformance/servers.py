"""Throwaway Redis and memcached servers whose clock the harness owns.

The suite never sleeps to let a TTL run out: it starts its own server under libfaketime and
moves the server's clock itself (docs/design.md, "Time in tests"). This module starts such servers
on free loopback ports, hands out a :class:`FaketimeClock` that follows the
:class:`~cachespec.conformance.clock.HarnessClock` protocol, and makes sure every server it
started is gone again (``stop()``, the ``with`` block, ``Ctrl-C`` and interpreter exit).

The clock protocol
    libfaketime (Debian 0.9.10) is preloaded into the server with ``FAKETIME_NO_CACHE=1``, so
    every time call in the server re-reads ``FAKETIME_TIMESTAMP_FILE``. The harness writes a
    *frozen absolute* time there (``2026-01-01 00:00:09.123456...``) and renames it into place,
    so the server sees either the old or the new time, never a torn write. The clock keeps the
    time as integer microseconds: a float of about 1.8e9 seconds cannot hold nanoseconds
    (its spacing is about 240 ns) but does round-trip microseconds, so ``advance_to(t)``
    rounds ``t`` to the nearest microsecond and millisecond-aligned moves are exact. Time
    starts at 2026-01-01T00:00:00Z for reproducible runs and never goes backwards.

    libfaketime parses the fraction with ``atof`` and *truncates* it to nanoseconds, so
    ``.001`` became 999,999 ns and ``gettimeofday`` reported 999 us (observed): a millisecond
    boundary would be off by one microsecond. The file therefore carries a guard half
    nanosecond (``.0010000005``), which truncates to exactly the intended nanosecond.

    memcached sees whole seconds only: the server is shown ``floor(now)``. This is forced, not
    chosen: memcached advances its clock from a one-second libevent timer on the (faked)
    monotonic clock, and a timer that fired at a fractional fake time is not due again until
    that fraction recurs (observed: after a wake at x.2 s, a move to x+1.1 s left memcached at
    x). Showing it whole seconds is a memcached whose second boundaries fall on the Unix
    seconds, which is one of the real-world phases of its coarse clock.

The barrier
    ``advance_to`` returns only once the server has seen the new time. memcached sees a new time
    only when its event loop wakes, so the barrier opens a new connection and sends ``stats``
    until ``STAT time`` is the expected second. Redis reads the clock on every command
    (docs/facts.md: under 1 ms), and the barrier makes that explicit by sending ``TIME`` until
    it reports the expected microsecond. Both waits are bounded and raise
    :class:`HarnessUnavailable`.

The jemalloc shim
    redis-server deadlocks at start under libfaketime: the system jemalloc's initialisation
    calls the clock, and libfaketime allocates while answering. A 20-line preloaded shim routes
    the malloc family to glibc's own allocator so jemalloc never initialises through ``malloc``;
    it is compiled once per user (keyed by a hash of its source) and listed *after* libfaketime
    in ``LD_PRELOAD``. Redis keeps its real monotonic clock (``FAKETIME_DONT_FAKE_MONOTONIC=1``)
    so that its event loop and ``serverCron`` keep running; memcached needs its monotonic
    clock faked, since that is the clock it reads its time from.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Final, Literal

__all__ = [
    "START_TIME",
    "FaketimeClock",
    "HarnessUnavailable",
    "Kind",
    "ManagedServer",
    "harness_available",
    "running_servers",
    "start_memcached",
    "start_redis",
    "stop_all",
]

Kind = Literal["redis", "memcached"]

#: Where every fake clock starts: 2026-01-01T00:00:00Z, a round instant for reproducible runs.
START_TIME: Final = 1_767_225_600.0

HOST: Final = "127.0.0.1"
LIBFAKETIME_ENV: Final = "CACHESPEC_LIBFAKETIME"
# The thread-safe build (libfaketimeMT) first: redis and memcached read the clock from
# several threads, and under the plain build memcached's clock stopped for good after a burst
# of concurrent connections (observed: `STAT time` stuck while the file moved on).
LIBFAKETIME_PATHS: Final = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
)
BINARIES: Final[Mapping[Kind, str]] = {"redis": "redis-server", "memcached": "memcached"}
# An override for a binary, for CI images that build their own servers.
BINARY_ENV: Final[Mapping[Kind, str]] = {
    "redis": "CACHESPEC_REDIS_SERVER",
    "memcached": "CACHESPEC_MEMCACHED",
}
COMPILERS: Final = ("cc", "gcc")
NO_COMPILER: Final = "redis under fake time needs a C compiler for the jemalloc shim (install gcc)"

READY_TIMEOUT: Final = 10.0
BARRIER_TIMEOUT: Final = 2.0
STOP_TIMEOUT: Final = 5.0
PORT_ATTEMPTS: Final = 4
IO_TIMEOUT: Final = 2.0

_US: Final = 1_000_000
_SHM_DIR: Final = Path("/dev/shm")

SHIM_SOURCE: Final = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
/* Route the malloc family to glibc so that jemalloc never initialises (and reads the
   clock) inside a malloc call that libfaketime itself made. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
void *malloc(size_t n) { return __libc_malloc(n); }
void *calloc(size_t k, size_t n) { return __libc_calloc(k, n); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t a, size_t n) { return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    if (a < sizeof(void *) || (a & (a - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(a, n);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}
/* glibc has no __libc_ twin: take glibc's own symbol (RTLD_NEXT would find jemalloc's). */
size_t malloc_usable_size(void *p) {
    static size_t (*glibc)(void *);
    if (glibc == NULL)
        glibc = (size_t (*)(void *))dlsym(dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD),
                                          "malloc_usable_size");
    return p == NULL ? 0 : glibc(p);
}
"""


class HarnessUnavailable(Exception):
    """The harness cannot run here (a missing binary, library or compiler, or a dead server).

    The message is one human line, with the tail of the server's log when there is one.
    """


# ---------------------------------------------------------------------------------------------
# Finding what the harness needs


def _binary(kind: Kind) -> str:
    """The server binary's path; an environment override wins over the PATH lookup."""
    name = os.environ.get(BINARY_ENV[kind]) or BINARIES[kind]
    found = shutil.which(name)
    if found is None:
        raise HarnessUnavailable(
            f"{name} not found on PATH (install the Debian package "
            f"{'redis-server' if kind == 'redis' else 'memcached'} or set {BINARY_ENV[kind]})"
        )
    return found


def _libfaketime() -> str:
    """libfaketime's path: ``$CACHESPEC_LIBFAKETIME`` if set, else the Debian multiarch paths."""
    override = os.environ.get(LIBFAKETIME_ENV)
    if override:
        if Path(override).is_file():
            return override
        raise HarnessUnavailable(f"libfaketime not found at {override} (from ${LIBFAKETIME_ENV})")
    for candidate in LIBFAKETIME_PATHS:
        if Path(candidate).is_file():
            return candidate
    raise HarnessUnavailable(
        "libfaketime not found (apt-get install libfaketime, or set "
        f"${LIBFAKETIME_ENV} to libfaketimeMT.so.1)"
    )


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cachespec"


def _shim_path() -> Path:
    """Where the compiled shim lives: one file per version of its source."""
    digest = hashlib.sha256(SHIM_SOURCE.encode()).hexdigest()[:16]
    return _cache_dir() / f"jemalloc-shim-{digest}.so"


def _compiler() -> str | None:
    for name in COMPILERS:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def _jemalloc_shim() -> Path:
    """The compiled shim, built on first use and renamed into the cache atomically."""
    target = _shim_path()
    if target.is_file():
        return target
    compiler = _compiler()
    if compiler is None:
        raise HarnessUnavailable(NO_COMPILER)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as build:
        source = Path(build) / "shim.c"
        source.write_text(SHIM_SOURCE)
        built = Path(build) / "shim.so"
        command = [compiler, "-shared", "-fPIC", "-O2", "-o", str(built), str(source), "-ldl"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            error = " ".join(result.stderr.split())[-300:]
            raise HarnessUnavailable(f"compiling the jemalloc shim failed: {error}")
        os.replace(built, target)
    return target


def harness_available(kind: Kind, *, fake_time: bool = True) -> str | None:
    """``None`` when :func:`start_redis`/:func:`start_memcached` can run here, else the reason."""
    if kind not in BINARIES:
        raise ValueError(f"unknown server kind {kind!r} (expected 'redis' or 'memcached')")
    try:
        _binary(kind)
        if fake_time:
            _libfaketime()
            if kind == "redis" and not _shim_path().is_file() and _compiler() is None:
                raise HarnessUnavailable(NO_COMPILER)
    except HarnessUnavailable as unavailable:
        return str(unavailable)
    return None


# ---------------------------------------------------------------------------------------------
# The clock


def _to_microseconds(when: float) -> int:
    """``when`` in whole microseconds, rounded to the nearest; exact for any float input."""
    try:
        return round(Fraction(when) * _US)
    except (OverflowError, ValueError, TypeError):
        raise ValueError(f"not a finite time: {when!r}") from None


def _faketime_stamp(microseconds: int) -> str:
    """The frozen-time line libfaketime reads, with a guard half nanosecond (module docstring)."""
    seconds, fraction = divmod(microseconds, _US)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp}.{fraction:06d}0005\n"


Barrier = Callable[[int], None]


class FaketimeClock:
    """A server's clock: the harness writes the time, the server reads it through libfaketime.

    ``step_us`` is what the server is shown: every microsecond (Redis) or whole seconds
    (memcached, see the module docstring). ``now()`` is always the exact harness time.
    """

    tick = 0.001

    def __init__(
        self,
        timestamp_file: str | os.PathLike[str],
        *,
        start: float = START_TIME,
        step_us: int = 1,
        barrier: Barrier | None = None,
    ) -> None:
        if step_us < 1:
            raise ValueError(f"step_us must be a positive number of microseconds: {step_us!r}")
        self.timestamp_file = Path(timestamp_file)
        self.step_us = step_us
        self._now_us = _to_microseconds(start)
        self._barrier = barrier
        self._lock = threading.Lock()
        self._closed = False
        self._write(self.server_microseconds())

    def now(self) -> float:
        """The harness time in (fake) Unix seconds."""
        return self._now_us / _US

    def now_us(self) -> int:
        """The harness time in whole microseconds, exactly."""
        return self._now_us

    def server_microseconds(self) -> int:
        """The time the server is shown: ``now`` rounded down to the server's step."""
        return self._now_us - self._now_us % self.step_us

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (see :meth:`advance_to`)."""
        if not seconds >= 0:
            raise ValueError(f"the clock never goes backwards (advance by {seconds!r})")
        return self.advance_to(self.now() + seconds)

    def advance_to(self, when: float) -> float:
        """Move to ``when`` (rounded to the microsecond) and wait until the server has seen it.

        A move shorter than the server's step changes ``now()`` but shows the server nothing
        new, so it writes nothing and needs no barrier.
        """
        target = _to_microseconds(when)
        with self._lock:
            if self._closed:
                raise RuntimeError("this clock's server has been stopped")
            if target < self._now_us:
                raise ValueError(f"the clock never goes backwards ({when!r} < {self.now()!r})")
            shown_before = self.server_microseconds()
            self._now_us = target
            shown = self.server_microseconds()
            if shown != shown_before:
                self._write(shown)
                if self._barrier is not None:
                    self._barrier(shown)
            return self.now()

    def attach_barrier(self, barrier: Barrier) -> None:
        """Run ``barrier(server_microseconds)`` after every move the server is shown."""
        self._barrier = barrier

    def close(self) -> None:
        """Refuse further moves: the server is gone and so is the timestamp file."""
        with self._lock:
            self._closed = True

    def _write(self, microseconds: int) -> None:
        """Replace the timestamp file atomically: the server reads the old or the new time."""
        staging = self.timestamp_file.with_name(self.timestamp_file.name + ".next")
        staging.write_text(_faketime_stamp(microseconds))
        os.replace(staging, self.timestamp_file)

    def __repr__(self) -> str:
        return f"FaketimeClock(now={self.now()!r}, step_us={self.step_us})"


# ---------------------------------------------------------------------------------------------
# Talking to the servers (raw sockets: the harness must not need the redis or pymemcache extras)


def _exchange(port: int, request: bytes, complete: Callable[[bytes], bool]) -> bytes:
    """Send ``request`` on a new connection and read until ``complete(reply)``."""
    with socket.create_connection((HOST, port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(request)
        reply = b""
        while not complete(reply):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed after {reply[-200:]!r}")
            reply += chunk
        return reply


_REDIS_TIME: Final = re.compile(rb"\*2\r\n\$\d+\r\n(\d+)\r\n\$\d+\r\n(\d+)\r\n")
_MEMCACHED_TIME: Final = re.compile(rb"^STAT time (\d+)\r$", re.MULTILINE)


def _line_reply(reply: bytes) -> bool:
    return reply.endswith(b"\r\n")


def _redis_reply_complete(reply: bytes) -> bool:
    """A whole error/status line, a whole bulk string, or a whole two-string ``TIME`` array."""
    if reply[:1] in (b"-", b"+"):
        return reply.endswith(b"\r\n")
    if reply[:1] == b"*":
        return _REDIS_TIME.fullmatch(reply) is not None
    header = re.match(rb"\$(\d+)\r\n", reply)
    return header is not None and len(reply) >= header.end() + int(header[1]) + 2


def _memcached_stats_complete(reply: bytes) -> bool:
    return reply.endswith((b"END\r\n", b"ERROR\r\n"))


def _redis_time_us(port: int) -> int:
    """Redis's ``TIME`` in microseconds."""
    reply = _exchange(port, b"TIME\r\n", _redis_reply_complete)
    match = _REDIS_TIME.fullmatch(reply)
    if match is None:
        raise ConnectionError(f"unexpected reply to TIME: {reply[:200]!r}")
    return int(match[1]) * _US + int(match[2])


def _memcached_time(port: int) -> int:
    """memcached's ``STAT time``: its whole-second idea of the Unix time."""
    reply = _exchange(port, b"stats\r\n", _memcached_stats_complete)
    match = _MEMCACHED_TIME.search(reply)
    if match is None:
        raise ConnectionError(f"no STAT time in {reply[:200]!r}")
    return int(match[1])


_PID_PROBES: Final[Mapping[Kind, tuple[bytes, Callable[[bytes], bool], re.Pattern[bytes]]]] = {
    "redis": (
        b"INFO server\r\n",
        _redis_reply_complete,
        re.compile(rb"^process_id:(\d+)\r$", re.MULTILINE),
    ),
    "memcached": (
        b"stats\r\n",
        _memcached_stats_complete,
        re.compile(rb"^STAT pid (\d+)\r$", re.MULTILINE),
    ),
}


def _answering_pid(kind: Kind, port: int) -> int | None:
    """The pid of the server that answers on ``port`` (None if it answered without one).

    Readiness asks for the pid rather than a bare PING: a server that lost its port to a race
    must not be mistaken for ready because someone else's server answers there.
    """
    request, complete, pattern = _PID_PROBES[kind]
    match = pattern.search(_exchange(port, request, complete))
    return int(match[1]) if match else None


_FLUSHES: Final[Mapping[Kind, tuple[bytes, bytes]]] = {
    "redis": (b"FLUSHALL\r\n", b"+OK\r\n"),
    "memcached": (b"flush_all\r\n", b"OK\r\n"),
}


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
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail)[-1500:] or "(empty log)"


class ManagedServer:
    """A server the harness started and will stop: use it as a context manager.

    Built by :func:`start_redis` and :func:`start_memcached`, not directly.
    """

    def __init__(
        self,
        kind: Kind,
        process: subprocess.Popen[bytes],
        *,
        port: int,
        temp_dir: Path,
        log_path: Path,
        clock: FaketimeClock | None,
        reaper: Reaper | None = None,
    ) -> None:
        self.kind: Kind = kind
        self._reaper = reaper  # stops the server if this process dies first (_REAPER)
        self.host = HOST
        self.port = port
        self.url = f"redis://{HOST}:{port}/0" if kind == "redis" else f"memcached://{HOST}:{port}"
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
        """Empty the server (``FLUSHALL`` / ``flush_all``) between sessions."""
        if self._stopped or not self.is_running():
            raise RuntimeError(f"{self!r} is not running")
        request, expected = _FLUSHES[self.kind]
        reply = _exchange(self.port, request, _line_reply)
        if reply != expected:
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

    def _terminate(self) -> None:
        """SIGTERM, wait (waking a frozen memcached), then SIGKILL: never leave it running.

        memcached with a frozen clock handles SIGTERM only when its event loop wakes
        (docs/facts.md), so while waiting the harness keeps opening connections to it.
        """
        process = self.process
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + STOP_TIMEOUT
                while process.poll() is None and time.monotonic() < deadline:
                    if self.kind == "memcached":
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
        """Open and close a connection: it wakes memcached's event loop."""
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
                if _answering_pid(self.kind, self.port) == self.pid:
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
        if self.kind == "redis":
            expected, read, unit = expected_us, _redis_time_us, "us"
        else:
            expected, read, unit = expected_us // _US, _memcached_time, "s"
        deadline = time.monotonic() + BARRIER_TIMEOUT
        seen = "nothing"
        while True:
            try:
                reported = read(self.port)
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


def _free_port() -> int:
    """A port nothing listens on right now (the server may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _server_env(kind: Kind, clock: FaketimeClock | None, preload: Sequence[str]) -> dict[str, str]:
    """The inherited environment without any faking of ours, plus libfaketime's settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "LD_PRELOAD" and not key.startswith(("FAKETIME", "DONT_FAKE"))
    }
    if clock is not None:
        env.update(
            LD_PRELOAD=":".join(preload),
            FAKETIME_TIMESTAMP_FILE=str(clock.timestamp_file),
            FAKETIME_NO_CACHE="1",
            TZ="UTC",
        )
        if kind == "redis":
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    return env


def _redis_argv(binary: str, port: int, temp_dir: Path, log_path: Path) -> list[str]:
    return [
        binary,
        "--port", str(port),
        "--bind", HOST,
        "--save", "",
        "--appendonly", "no",
        "--dir", str(temp_dir),
        "--protected-mode", "no",
        "--logfile", str(log_path),
        "--daemonize", "no",
    ]  # fmt: skip


def _memcached_argv(binary: str, port: int) -> list[str]:
    argv = [binary, "-l", HOST, "-p", str(port), "-U", "0"]
    if os.geteuid() == 0:
        argv += ["-u", "root"]  # memcached refuses to run as root without -u
    return argv


ArgvBuilder = Callable[[str, int, Path, Path], list[str]]

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


def _spawn(
    kind: Kind, argv_for: ArgvBuilder, fake_time: bool, preload: Sequence[str]
) -> ManagedServer:
    """Launch the server on a free port and register it at once (before it answers)."""
    temp_dir = Path(tempfile.mkdtemp(prefix=f"cachespec-{kind}-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        log_path = temp_dir / f"{kind}.log"
        step_us = 1 if kind == "redis" else _US
        clock = FaketimeClock(temp_dir / "faketime", step_us=step_us) if fake_time else None
        port = _free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv_for(_binary(kind), port, temp_dir, log_path),
                env=_server_env(kind, clock, preload),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=temp_dir,
                # Its own session: a terminal's Ctrl-C reaches only Python, which stops the
                # server in order (a frozen memcached would ignore a bare SIGINT).
                start_new_session=True,
            )
        reaper = Reaper(process.pid, temp_dir)
        return ManagedServer(
            kind,
            process,
            port=port,
            temp_dir=temp_dir,
            log_path=log_path,
            clock=clock,
            reaper=reaper,
        )
    except BaseException:
        if process is not None:
            process.kill()
            process.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise


def _start_once(
    kind: Kind,
    argv_for: ArgvBuilder,
    fake_time: bool,
    preload: Sequence[str],
    ready_timeout: float,
) -> ManagedServer | None:
    """One attempt on one free port: the server, or None if it lost the port to a race."""
    server = _spawn(kind, argv_for, fake_time, preload)
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
    raise HarnessUnavailable(f"{kind} exited at start (status {status}); log: {tail}")


def _start(
    kind: Kind,
    argv_for: ArgvBuilder,
    *,
    fake_time: bool,
    ready_timeout: float,
) -> ManagedServer:
    _binary(kind)
    preload: list[str] = []
    if fake_time:
        preload.append(_libfaketime())
        if kind == "redis":
            preload.append(str(_jemalloc_shim()))  # after libfaketime (docs/facts.md)
    for _ in range(PORT_ATTEMPTS):
        server = _start_once(kind, argv_for, fake_time, preload, ready_timeout)
        if server is not None:
            return server
    raise HarnessUnavailable(f"{kind} lost {PORT_ATTEMPTS} free ports in a row to other processes")


def start_redis(
    *,
    fake_time: bool = True,
    maxmemory: str | None = None,
    maxmemory_policy: str | None = None,
    extra_args: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT,
) -> ManagedServer:
    """A throwaway redis-server on a free loopback port: no config file, no persistence.

    With ``fake_time`` (the default) its clock is a :class:`FaketimeClock` starting at
    :data:`START_TIME`; without, it runs on real time and ``clock`` is None.
    """
    options: list[str] = []
    if maxmemory is not None:
        options += ["--maxmemory", maxmemory]
    if maxmemory_policy is not None:
        options += ["--maxmemory-policy", maxmemory_policy]
    options += list(extra_args)

    def argv_for(binary: str, port: int, temp_dir: Path, log_path: Path) -> list[str]:
        return _redis_argv(binary, port, temp_dir, log_path) + options

    return _start("redis", argv_for, fake_time=fake_time, ready_timeout=ready_timeout)


def start_memcached(
    *,
    fake_time: bool = True,
    memory_mb: int = 64,
    item_size: str | None = None,
    extra_args: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT,
) -> ManagedServer:
    """A throwaway memcached on a free loopback port (TCP only, never a daemon).

    With ``fake_time`` (the default) its clock is a :class:`FaketimeClock` that shows it whole
    seconds; without, it runs on real time and ``clock`` is None.
    """
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < 1:
        raise ValueError(f"memory_mb must be a positive int, not {memory_mb!r}")
    options = ["-m", str(memory_mb)]
    if item_size is not None:
        options += ["-I", item_size]
    options += list(extra_args)

    def argv_for(binary: str, port: int, temp_dir: Path, log_path: Path) -> list[str]:
        return _memcached_argv(binary, port) + options

    return _start("memcached", argv_for, fake_time=fake_time, ready_timeout=ready_timeout)
