"""Throwaway servers whose clock the harness owns, one registry of server kinds.

The suite never sleeps to let a TTL run out: it starts its own server under libfaketime and
moves the server's clock itself (docs/design.md, "Time in tests"). This package starts such
servers on free loopback ports, hands out a :class:`FaketimeClock` that follows the
:class:`~cachespec.conformance.clock.HarnessClock` protocol, and makes sure every server it
started is gone again (``stop()``, the ``with`` block, ``Ctrl-C``, interpreter exit, and a
reaper if this process is killed).

Its modules, by concern:

* :mod:`.base`: the error, the loopback host, one raw request/reply exchange.
* :mod:`.faketime`: libfaketime and :class:`FaketimeClock` (the clock protocol, the barrier).
* :mod:`.managed`: processes: start, readiness, flush, restart, stop, the reaper, the live
  registry.
* :mod:`.kind`: :class:`ServerKind`, the record of everything that differs between kinds.
* :mod:`.tls`: :class:`ServerTLS`, the files of a server that speaks only TLS.
* :mod:`.redis`, :mod:`.memcached`: one record each, and ``start_redis``/``start_memcached``.
* :mod:`.registry`: the kinds by name; a new kind is added there (docs/design.md,
  "Server kinds").
"""

from __future__ import annotations

from typing import TypeAlias

from .base import HarnessUnavailable, RunningServer
from .faketime import START_TIME, FaketimeClock
from .kind import ServerKind
from .managed import ManagedServer, Reaper, running_servers, stop_all
from .memcached import MEMCACHED, start_memcached
from .redis import REDIS, start_redis
from .registry import (
    find_kind,
    harness_available,
    kind_names,
    register,
    server_kind,
    unregister,
    user_server_schemes,
)
from .tls import ServerTLS

__all__ = [
    "MEMCACHED",
    "REDIS",
    "START_TIME",
    "FaketimeClock",
    "HarnessUnavailable",
    "Kind",
    "ManagedServer",
    "Reaper",
    "RunningServer",
    "ServerKind",
    "ServerTLS",
    "find_kind",
    "harness_available",
    "kind_names",
    "register",
    "running_servers",
    "server_kind",
    "start_memcached",
    "start_redis",
    "stop_all",
    "unregister",
    "user_server_schemes",
]

#: A server kind's name (``"redis"``, ``"memcached"``, or any kind registered since).
Kind: TypeAlias = str
