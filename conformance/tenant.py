"""The suite as a guest on a server you run: every key it writes expires, and goes.

Against ``redis://host`` or ``memcached://host`` the suite shares the server with your
data. Each session works in a namespace of its own (``cachespec-check-<pid>-<n>``) through
a :class:`Tenant`, which

* caps every TTL it writes at :data:`GUEST_TTL`: a key written with no expiry (or a longer
  one) gets that instead, so even a run killed with SIGKILL leaves nothing that lives
  forever. Two properties are about the arguments the cap replaces (``ttl.never``,
  ``ttl.long``): their machines lift it (:meth:`Tenant.lift_cap`), and each key written
  uncapped is first registered with a :class:`~.guest_reaper.GuestReaper`, which deletes it
  should the harness die before it does;
* remembers the keys it wrote and deletes them at the end, when the namespace is
  discarded, and has the backend remove them from the server at each ``clear``
  (``Backend.clear_as_guest``): memcached's ``clear`` only moves to a new generation, and
  the old entries would otherwise stay until their TTL. Nothing is deleted before a
  ``clear``, which would hide what the clear does;
* never clears a backend that declares a store-wide ``clear`` (``clear_store_wide=True``):
  it refuses the clear with ``Unsupported``, and discards by deleting its keys alone.

A run stopped by Ctrl-C or SIGTERM closes the sessions still open on its way out
(:meth:`~cachespec.conformance.target.UserServerTarget.close`). docs/design.md, "A user's
server keeps only its own data".
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from cachespec.backends import Backend, CacheError, Unsupported

from .wrapped import Wrapped

if TYPE_CHECKING:
    from .guest_reaper import GuestReaper

GUEST_TTL = 3600.0  # seconds: far beyond any example, short enough to forget a killed run
# Where a backend declares no max_ttl, longer TTLs pass through uncapped (a backend may refuse
# them, and that refusal is under test); about 31 years, past any TTL a property writes.
UNDECLARED_MAX_TTL = 1e9


class Tenant(Wrapped):
    """``inner`` with every TTL capped and every written key remembered."""

    def __init__(
        self, inner: Backend, *, reaper: GuestReaper | None = None, namespace: str = ""
    ) -> None:
        """``reaper`` and ``namespace`` (the server-side namespace ``inner`` was opened in):
        where :meth:`lift_cap` registers what it writes uncapped; without a reaper the cap
        cannot be lifted."""
        super().__init__(inner)
        # What the namespace keeps for itself expires too (memcached's generation counter):
        # a run killed before discard left one item without expiry per open session.
        inner.expire_bookkeeping(GUEST_TTL)
        self._lock = threading.Lock()  # guards _written: the thread properties write at once
        self._written: set[str] = set()
        self._reaper = reaper
        self._namespace = namespace
        self._uncapped = False  # lift_cap
        self._registered = False  # whether the reaper holds keys of this namespace

    def lift_cap(self) -> None:
        """Write every TTL as it is (``ttl=None``, over an hour), each key registered with
        the reaper before its write: for ttl.never and ttl.long alone (docs/design.md,
        "Uncapped TTLs on a server you run"). Refused without a reaper."""
        if self._reaper is None:
            raise RuntimeError("a guest without a reaper keeps its TTL cap")
        self._uncapped = True

    def _remember(self, keys: Iterable[object]) -> None:
        # Only what could be a key: the argument properties pass bad ones on purpose.
        with self._lock:
            self._written.update(k for k in keys if isinstance(k, str))

    def _forget_all(self) -> None:
        """Delete every key written so far (best effort: the namespace goes anyway). Once
        they are gone, the reaper forgets the namespace; should the delete fail, it keeps
        the keys written uncapped and deletes them when the run ends."""
        with self._lock:
            written, self._written = self._written, set()
        deleted = not written
        if written:
            with contextlib.suppress(CacheError):  # the capped TTL still ends them
                self._inner.delete_many(sorted(written))
                deleted = True
        if deleted and self._registered and self._reaper is not None:
            self._reaper.forget(self._namespace)
            self._registered = False

    def _ttl_for(self, keys: Iterable[object], ttl: float | None) -> float | None:
        """The TTL to send for a write of ``keys``: capped, or, with the cap lifted, as it
        is, once the reaper holds the keys (before the write: a harness killed between the
        two leaves the reaper a key to delete that may not exist, never the reverse)."""
        capped = self._cap(ttl)
        if capped is ttl or not self._uncapped or self._reaper is None:
            return capped
        self._reaper.register(self._namespace, [k for k in keys if isinstance(k, str)])
        self._registered = True
        return ttl

    def _cap(self, ttl: float | None) -> float | None:
        """GUEST_TTL for no expiry or a longer valid TTL. Anything the backend refuses (0,
        NaN, inf, a str, or past its declared max_ttl, such as 10**400) goes through as it
        is: ttl.invalid checks that refusal, and a cap would turn it into a write."""
        if ttl is None:
            return GUEST_TTL
        declared = self.guarantees.max_ttl
        longest = UNDECLARED_MAX_TTL if declared is None else declared
        if type(ttl) in (int, float) and GUEST_TTL < ttl <= longest:
            return GUEST_TTL
        return ttl

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._remember([key])
        self._call("set", key, value, self._ttl_for([key], ttl))

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        self._remember([key])
        return bool(self._call("add", key, value, self._ttl_for([key], ttl)))

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        if not isinstance(items, Mapping):  # refused by the backend: nothing to register
            self._call("set_many", items, self._cap(ttl))
            return
        self._remember(items.keys())
        self._call("set_many", items, self._ttl_for(items.keys(), ttl))

    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        self._remember([key])
        ttl = self._ttl_for([key], ttl)
        return bool(self._call("compare_and_set", key, expected, value, ttl))

    def _store_wide(self) -> bool:
        return bool(self.guarantees.clear_store_wide)

    def clear(self) -> None:
        if self._store_wide():
            # The runner skips every property that clears over such a backend (guest.py);
            # this refuses what else might ask, before anything is deleted.
            raise Unsupported(
                "the backend declares that its clear empties the whole store "
                "(clear_store_wide=True): a guest on a server you run does not clear it"
            )
        # No delete first: it would hide what the clear does (ops.clear, ops.mixed check it
        # here). The backend removes what its clear only hid (memcached's old generation).
        with self._lock:
            written = sorted(self._written)
        self._call("clear_as_guest", written)

    def discard(self) -> None:
        self._forget_all()
        if self._store_wide():
            # A backend's discard defaults to its clear: the keys written are gone already,
            # and the store-wide clear would take the owner's with them.
            return
        self._call("discard")
