"""The server kinds the harness knows, by name: the one place a new kind is added.

``cachespec check NAME?options`` starts a server of the kind registered as ``NAME``
(:class:`~cachespec.conformance.target.ServerTarget`); a URL whose scheme is one of a kind's
``schemes`` is a server someone else runs. To add a kind, write its record (a
:class:`~cachespec.conformance.servers.kind.ServerKind` subclass and instance, in a module of
its own beside ``redis.py``) and list it in ``_BUILT_IN`` below; :func:`register` adds one at
run time (a plugin, a test). docs/design.md, "Server kinds".
"""

from __future__ import annotations

import threading

from .base import HarnessUnavailable
from .cluster import REDIS_CLUSTER
from .faketime import libfaketime
from .kind import ServerKind
from .memcached import MEMCACHED
from .redis import REDIS
from .ring import MEMCACHED_RING

__all__ = [
    "find_kind",
    "harness_available",
    "kind_names",
    "register",
    "server_kind",
    "unregister",
    "user_server_schemes",
]

_BUILT_IN: tuple[ServerKind, ...] = (REDIS, MEMCACHED, REDIS_CLUSTER, MEMCACHED_RING)

_KINDS: dict[str, ServerKind] = {kind.name: kind for kind in _BUILT_IN}
_LOCK = threading.Lock()


def register(kind: ServerKind, *, replace: bool = False) -> ServerKind:
    """Make ``kind`` startable as ``kind.name`` (``cachespec check NAME``); returns it.

    A name already registered is refused with ``ValueError`` unless ``replace``.
    """
    with _LOCK:
        if kind.name in _KINDS and not replace:
            raise ValueError(f"a server kind named {kind.name!r} is registered already")
        _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Forget the kind registered as ``name`` (nothing if there is none)."""
    with _LOCK:
        _KINDS.pop(name, None)


def find_kind(name: str) -> ServerKind | None:
    """The kind registered as ``name``, or None."""
    with _LOCK:
        return _KINDS.get(name)


def kind_names() -> tuple[str, ...]:
    """The registered kinds' names, in registration order."""
    with _LOCK:
        return tuple(_KINDS)


def server_kind(name: str) -> ServerKind:
    """The kind registered as ``name``; ``ValueError`` naming the known ones if none is."""
    kind = find_kind(name)
    if kind is None:
        names = [repr(known) for known in kind_names()]
        expected = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        raise ValueError(f"unknown server kind {name!r} (expected {expected})")
    return kind


def user_server_schemes() -> frozenset[str]:
    """Every registered kind's URL schemes: a URL with one names a server someone else runs."""
    with _LOCK:
        return frozenset(scheme for kind in _KINDS.values() for scheme in kind.schemes)


def harness_available(kind: str, *, fake_time: bool = True) -> str | None:
    """``None`` when a server of the kind named ``kind`` can start here (on a fake clock, with
    ``fake_time``), else the reason, one line. ``ValueError`` for a name not registered."""
    record = server_kind(kind)
    try:
        record.binary_path()
        if fake_time:
            libfaketime()
            record.check_fake_time()
    except HarnessUnavailable as unavailable:
        return str(unavailable)
    return None
