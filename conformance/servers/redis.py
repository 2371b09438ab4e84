"""The redis kind: ``redis-server`` with no config file and no persistence.

Redis reads the clock on every command (docs/facts.md: under 1 ms), so it is shown every
microsecond, and the barrier sends ``TIME`` until it reports the expected microsecond.

The jemalloc shim
    redis-server deadlocks at start under libfaketime: the system jemalloc's initialisation
    calls the clock, and libfaketime allocates while answering. A 20-line preloaded shim routes
    the malloc family to glibc's own allocator so jemalloc never initialises through ``malloc``;
    it is compiled once per user (keyed by a hash of its source) and listed *after* libfaketime
    in ``LD_PRELOAD``. Redis keeps its real monotonic clock (``FAKETIME_DONT_FAKE_MONOTONIC=1``)
    so that its event loop and ``serverCron`` keep running.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final
from urllib.parse import quote

from .base import HOST, HarnessUnavailable, exchange
from .faketime import US
from .kind import ServerKind
from .managed import READY_TIMEOUT, ManagedServer, start
from .tls import ServerTLS

__all__ = ["NO_COMPILER", "REDIS", "SHIM_SOURCE", "RedisKind", "start_redis"]

COMPILERS: Final = ("cc", "gcc")
NO_COMPILER: Final = "redis under fake time needs a C compiler for the jemalloc shim (install gcc)"

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


# ---------------------------------------------------------------------------------------------
# The jemalloc shim


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


# ---------------------------------------------------------------------------------------------
# The protocol, as far as the harness speaks it (RESP over a raw socket)

_TIME: Final = re.compile(rb"\*2\r\n\$\d+\r\n(\d+)\r\n\$\d+\r\n(\d+)\r\n")
_PID: Final = re.compile(rb"^process_id:(\d+)\r$", re.MULTILINE)


def _reply_complete(reply: bytes) -> bool:
    """A whole error/status line, a whole bulk string, or a whole two-string ``TIME`` array."""
    if reply[:1] in (b"-", b"+"):
        return reply.endswith(b"\r\n")
    if reply[:1] == b"*":
        return _TIME.fullmatch(reply) is not None
    header = re.match(rb"\$(\d+)\r\n", reply)
    return header is not None and len(reply) >= header.end() + int(header[1]) + 2


def _options(maxmemory: str | None, maxmemory_policy: str | None) -> list[str]:
    """redis-server's arguments for the harness options that are set."""
    options: list[str] = []
    if maxmemory is not None:
        options += ["--maxmemory", maxmemory]
    if maxmemory_policy is not None:
        options += ["--maxmemory-policy", maxmemory_policy]
    return options


@dataclass(frozen=True)
class RedisKind(ServerKind):
    """redis-server: RESP on TCP, ``FLUSHALL`` to empty, microsecond ``TIME``.

    ``tls``: run the server on a TLS port only (``--port 0 --tls-port``), requiring client
    certificates signed by its CA; the harness's probes and the kind's URL then use the
    client certificate (:mod:`.tls`). None, the default, is plaintext.
    """

    tls: ServerTLS | None = None

    def check_fake_time(self) -> None:
        """The shim is built, or can be: a C compiler is on ``PATH``."""
        if not _shim_path().is_file() and _compiler() is None:
            raise HarnessUnavailable(NO_COMPILER)

    def fake_time_preload(self) -> list[str]:
        """The jemalloc shim (compiled on first use), after libfaketime."""
        return [str(_jemalloc_shim())]

    def argv(self, binary: str, port: int, temp_dir: Path, log_path: Path) -> list[str]:
        """No config file: loopback only, no RDB or AOF, files only in ``temp_dir``."""
        return [
            binary,
            *self._listen(port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(temp_dir),
            "--protected-mode", "no",
            "--logfile", str(log_path),
            "--daemonize", "no",
        ]  # fmt: skip

    def _listen(self, port: int) -> list[str]:
        """Plaintext on ``port``, or TLS only there, every client showing a certificate."""
        if self.tls is None:
            return ["--port", str(port)]
        return [
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", str(self.tls.cert_file),
            "--tls-key-file", str(self.tls.key_file),
            "--tls-ca-cert-file", str(self.tls.ca_file),
            "--tls-auth-clients", "yes",
        ]  # fmt: skip

    def url(self, host: str, port: int) -> str:
        """Database 0 of the server (over TLS with the client certificate, for a TLS kind)."""
        if self.tls is None:
            return f"redis://{host}:{port}/0"
        tls = self.tls
        files = {
            "ssl_ca_certs": tls.ca_file,
            "ssl_certfile": tls.client_cert_file,
            "ssl_keyfile": tls.client_key_file,
        }
        query = "&".join(f"{name}={quote(str(path), safe='/')}" for name, path in files.items())
        return f"rediss://{host}:{port}/0?{query}"

    def exchange(self, port: int, request: bytes, complete: Callable[[bytes], bool]) -> bytes:
        """Over TLS as the harness's client, for a TLS kind; else plaintext."""
        context = None if self.tls is None else self.tls.client_context()
        return exchange(port, request, complete, tls=context)

    def read_clock(self, port: int) -> int:
        """Redis's ``TIME`` in microseconds."""
        reply = self.exchange(port, b"TIME\r\n", _reply_complete)
        match = _TIME.fullmatch(reply)
        if match is None:
            raise ConnectionError(f"unexpected reply to TIME: {reply[:200]!r}")
        return int(match[1]) * US + int(match[2])

    def answering_pid(self, port: int) -> int | None:
        """``process_id`` from ``INFO server``."""
        match = _PID.search(self.exchange(port, b"INFO server\r\n", _reply_complete))
        return int(match[1]) if match else None

    def start(self, options: Mapping[str, str], *, fake_time: bool) -> ManagedServer:
        """``maxmemory`` and ``maxmemory_policy``, passed to redis-server as given."""
        argv = _options(options.get("maxmemory"), options.get("maxmemory_policy"))
        return start(self, argv, fake_time=fake_time)


#: The record: what the harness needs to know to run redis-server.
REDIS: Final = RedisKind(
    name="redis",
    binary="redis-server",
    binary_env="CACHESPEC_REDIS_SERVER",
    package="redis-server",
    schemes=("redis", "rediss", "unix"),
    harness_options=("maxmemory", "maxmemory_policy"),
    clock_step_us=1,
    clock_unit="us",
    flush_request=b"FLUSHALL\r\n",
    flush_reply=b"+OK\r\n",
    fake_monotonic=False,  # its event loop and serverCron keep running on real time
)


def start_redis(
    *,
    fake_time: bool = True,
    maxmemory: str | None = None,
    maxmemory_policy: str | None = None,
    extra_args: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT,
    tls: ServerTLS | None = None,
) -> ManagedServer:
    """A throwaway redis-server on a free loopback port: no config file, no persistence.

    With ``fake_time`` (the default) its clock is a
    :class:`~cachespec.conformance.servers.faketime.FaketimeClock` starting at ``START_TIME``;
    without, it runs on real time and ``clock`` is None. With ``tls`` it speaks only TLS and
    requires a client certificate (:class:`RedisKind`); its ``url`` carries the client's
    files. A TLS server needs real time when its certificates were issued after
    ``START_TIME``: it checks the client's certificate's dates on its own clock.
    """
    options = [*_options(maxmemory, maxmemory_policy), *extra_args]
    kind = REDIS if tls is None else replace(REDIS, tls=tls)
    return start(kind, options, fake_time=fake_time, ready_timeout=ready_timeout)
