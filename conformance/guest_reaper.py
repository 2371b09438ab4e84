"""The guest reaper: keys written without the guest's cap are deleted even after SIGKILL.

On a server you run, the suite writes as a guest (:mod:`.tenant`), and caps every TTL at an
hour so that a killed run leaves nothing that lives forever. ``ttl.never`` and ``ttl.long``
are about the arguments that cap replaces (``ttl=None``, a TTL over 30 days), so for those
two alone the :class:`~.tenant.Tenant` writes them as they are, after registering each key
here first.

A :class:`GuestReaper` is a small Python process in a session of its own that ignores
Ctrl-C, like the server reaper (``servers/managed.py``, ``_REAPER``). It reads a pipe whose
only writer is the harness: the URL first, then which keys each namespace wrote uncapped,
and which namespaces are gone (their keys deleted by the harness itself). On end of file,
whether the harness closed the pipe or died, it deletes every key still registered, through
the same adapter, in the same namespace, and discards that namespace. The URL (which may
hold a password) travels only through the pipe: never argv, the environment or any output.
docs/design.md, "Uncapped TTLs on a server you run".
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import IO

from cachespec.backends import open_backend

from .checks import CannotCheck
from .tenant import GUEST_TTL

__all__ = ["REAP_ATTEMPTS", "GuestReaper", "main"]

# How often the reaper tries a namespace whose server does not answer, a second apart: a
# server restarting just as the harness died still gets its keys deleted.
REAP_ATTEMPTS = 5
# What the reaper writes on its stdout once it can reap (then it closes it).
READY = b"ready\n"
# How long closing the harness's end waits for the reaper to finish what is left (it keeps
# going past that in its own session; nothing waits on it then).
CLOSE_TIMEOUT = 30.0


class GuestReaper:
    """The harness's end of the pipe. Started on the first :meth:`register`, so a run that
    writes nothing uncapped starts no process. Thread-safe."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The reaper process, once started (for tests: it must never show the URL)."""
        return None if self._process is None else self._process.pid

    def _pipe(self) -> IO[bytes]:
        if self._process is None:  # the first registration, or the first since close()
            process = subprocess.Popen(
                # The harness's own interpreter and path (PYTHONPATH included: the package
                # must import as it does here). Nothing secret on the command line.
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C is the harness's to handle
            )
            assert process.stdin is not None
            assert process.stdout is not None
            # Ready once it has imported what it reaps with: a reaper that cannot start
            # would otherwise take registrations into a pipe no one reads.
            ready = process.stdout.readline()
            process.stdout.close()
            if ready != READY:
                process.stdin.close()
                process.wait()
                raise OSError("the guest reaper did not start")
            self._process = process
            self._send(process.stdin, {"url": self._url})
        assert self._process.stdin is not None
        return self._process.stdin

    @staticmethod
    def _send(pipe: IO[bytes], message: dict[str, object]) -> None:
        pipe.write(json.dumps(message).encode() + b"\n")
        pipe.flush()  # before the write it guards reaches the server

    def register(self, namespace: str, keys: Iterable[str]) -> None:
        """``keys`` of ``namespace`` may be written without expiry: delete them should the
        harness die. Returns once the reaper's pipe holds them; raises
        :class:`~.checks.CannotCheck` if the reaper is gone (killed on its own), before
        anything is written: the property cannot keep its promise to the server then."""
        with self._lock:
            try:
                self._send(self._pipe(), {"namespace": namespace, "keys": sorted(set(keys))})
            except OSError:  # it did not start, or its end of the pipe is closed: it exited
                raise CannotCheck(
                    "the guest reaper, which deletes what this property writes without "
                    "expiry should the run die, did not start or is gone: nothing is written "
                    "uncapped without it"
                ) from None

    def forget(self, namespace: str) -> None:
        """The harness deleted ``namespace``'s keys itself: nothing left to reap there."""
        with self._lock:
            if self._process is not None:
                with contextlib.suppress(OSError):  # a reaper gone has nothing to forget
                    self._send(self._pipe(), {"forget": namespace})

    def close(self) -> None:
        """End of file: the reaper deletes what is still registered (what a failed delete
        left) and exits. Waits a while for it; safe to call twice. A later registration
        starts a new reaper (a target may open sessions again after it was closed)."""
        with self._lock:
            process, self._process = self._process, None
        if process is None or process.stdin is None:
            return
        with contextlib.suppress(OSError):
            process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=CLOSE_TIMEOUT)


def _read(stream: IO[bytes]) -> tuple[str | None, dict[str, set[str]]]:
    """Until end of file: the URL, and the keys of each namespace not forgotten since."""
    url: str | None = None
    pending: dict[str, set[str]] = {}
    for line in stream:
        try:
            message = json.loads(line)
        except ValueError:  # a line cut short by the harness's death: nothing registered
            continue
        if "url" in message:
            url = str(message["url"])
        elif "forget" in message:
            pending.pop(str(message["forget"]), None)
        elif "namespace" in message:
            keys = pending.setdefault(str(message["namespace"]), set())
            keys.update(str(key) for key in message["keys"])
    return url, pending


def reap(url: str, namespace: str, keys: Iterable[str]) -> None:
    """Delete ``keys`` of ``namespace`` and discard it, as the Tenant's own discard would.

    The namespace is opened afresh through the same adapter, which reads the same
    generation (memcached's counter, which the guest's session keeps for an hour): the data
    keys are found under the names they were written with. Opening may create a missing
    counter, so it is given the guest's expiry first and deleted by the discard."""
    backend = open_backend(url, namespace=namespace)
    try:
        backend.expire_bookkeeping(GUEST_TTL)
        backend.delete_many(sorted(keys))
        if backend.guarantees.clear and not backend.guarantees.clear_store_wide:
            backend.discard()
    finally:
        backend.close()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    sys.stdout.close()
    url, pending = _read(sys.stdin.buffer)
    if url is None:
        return
    for namespace, keys in pending.items():
        for attempt in range(REAP_ATTEMPTS):
            try:
                reap(url, namespace, keys)
                break
            except Exception:  # never print: the message may name the URL
                if attempt + 1 < REAP_ATTEMPTS:
                    time.sleep(1.0)


if __name__ == "__main__":
    main()
