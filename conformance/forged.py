"""``faults.forged_payload``: a payload nobody signed must read as a counted miss, and
never be unpickled.

The check writes a pickle straight into the backend, framed as the cache's entries are
but unsigned; unpickling it would run ``_mark``, which records that it ran.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable

from cachespec.backends import NO_VALUE
from cachespec.backends.cache import Cache
from cachespec.spec import Violation

from .staleness import Strategies
from .target import Target

_UNPICKLED: list[str] = []


def _mark(tag: str) -> None:
    _UNPICKLED.append(tag)


class _Trap:
    """Unpickling this runs ``_mark``: proof that a payload was unpickled."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return (_mark, (self.tag,))


def check_forged_payload(target: Target, strategies: Strategies, trial: int) -> None:
    """A payload nobody signed, written straight into the backend, must read as a counted
    miss and never be unpickled (a forged pickle that runs code on load would mark it)."""
    session = target.session()
    try:
        backend = session.backend()
        cache = Cache(backend, serializer=strategies.serializer(), guarded=False)
        # Unique per call: marks left by an earlier run in this process (a mutant's, say)
        # must never count against this one.
        tag = f"forged-{trial}-{uuid.uuid4().hex}"
        forged = b"v" + b"\x00" * 32 + pickle.dumps(_Trap(tag))
        backend.set("forged", forged)
        found = cache.get("forged")
        if tag in _UNPICKLED:
            raise Violation("get('forged')", "unpickled a payload nobody signed", "a counted miss")
        if found is not NO_VALUE or cache.stats.decode_failures != 1:
            raise Violation(
                "get('forged')",
                f"returned {found!r} (decode failures: {cache.stats.decode_failures})",
                "a miss, counted as one decode failure",
            )
    finally:
        session.close()
