"""The reference model of one cache namespace.

The model is told each operation, the harness's time, and what the backend answered; it
raises :class:`Violation` when the answer is not one the semantics allow, and otherwise
updates its state to match what it learned. It does no I/O and reads no clock.

Semantics (``docs/design.md``, "Semantics to pin down"):

* An entry written at ``t`` with TTL ``ttl`` is live while ``now < t + ttl``. A backend that
  declares ``ttl_resolution = r`` may still serve it in ``[t + ttl, t + ttl + r)``; from
  ``t + ttl + r`` on it is gone. Inside that window both answers are allowed, and once a
  miss has been seen the entry never comes back.
* Overwriting resets the TTL; ``ttl=None`` means no expiry.
* ``delete`` is idempotent; ``add`` writes only when no live entry exists and says whether
  it wrote; ``get_many`` returns a mapping of exactly the hits; ``clear`` empties the
  namespace.
* Expired entries make room first, under every profile: the model drops the entries that are
  surely expired before it counts what a profile's promises count (``_make_room``,
  ``_settle``), so a backend that evicts a live entry while an expired one holds its slot
  breaks the profile's promise about live entries (docs/design.md, "Expired entries make
  room"). An entry inside its expiry window counts as held: the backend may not have let
  it go yet, so counting it only ever allows more evictions, never fewer.
* Eviction follows the declared profile (:mod:`cachespec.spec.eviction`). Where the model
  cannot tell which of two states the backend is in (an exact-LRU eviction decided while an
  entry sits inside its expiry window), it weakens rather than guesses: the entries involved
  may then be missing, but a wrong value, a resurrection or an over-full cache is still a
  violation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from .guarantees import Guarantees
from .miss import NO_VALUE

Presence = Literal["live", "maybe", "gone"]
# Why a key is absent, written out for the key when a message needs it.
Fate = Callable[[str], str]

# Said of a removal at the very instant of the key's last write (see Guarantees.clock_granularity).
TIE_NOTE = (
    ", the same instant on the harness's clock as its last write: a backend that orders "
    "calls by its own clock sees a tie there (declare clock_granularity, and the harness "
    "moves time between calls, as real time does)"
)


def format_time(seconds: float) -> str:
    """``seconds`` for a message: at most 12 decimals, and a time within a microsecond of a
    millisecond mark, but not on it, as "just before"/"just after" that mark."""
    exact = round(seconds, 12)
    mark = round(exact, 3)
    if exact == mark or abs(exact - mark) >= 1e-6:
        return repr(exact)
    side = "just before" if exact < mark else "just after"
    return f"{side} {mark:.15g}"


class Violation(AssertionError):
    """The backend did something the model does not allow.

    The message names the operation, what the backend did, what the model allowed, and why.
    """

    def __init__(self, operation: str, did: str, allowed: str, because: str = "") -> None:
        self.operation = operation
        self.did = did
        self.allowed = allowed
        self.because = because
        message = f"{operation} {did}; the model allowed {allowed}"
        if because:
            message += f": {because}"
        super().__init__(message)


def show_value(value: object, limit: int = 24) -> str:
    """A short repr of a value for messages (long byte strings are cut, with their length)."""
    if value is NO_VALUE:
        return "a miss (NO_VALUE)"
    if isinstance(value, bytes) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} bytes)"
    return repr(value)


@dataclass
class _Entry:
    value: bytes
    written_at: float
    ttl: float | None
    # The backend may have dropped this entry without the model being able to say when
    # (an approximate eviction profile, or an ambiguous exact-LRU decision).
    vanishable: bool = False

    @property
    def expires(self) -> float | None:
        return None if self.ttl is None else self.written_at + self.ttl


class CacheModel:
    """The allowed behaviour of one namespace of a backend with the given guarantees."""

    def __init__(self, guarantees: Guarantees, *, origin: float = 0.0) -> None:
        self.guarantees = guarantees
        self._resolution = guarantees.ttl_resolution
        self._granularity = guarantees.clock_granularity
        self._lifetime = guarantees.ttl.lifetime
        self._hit_is_use = guarantees.eviction.hit_is_use
        self._origin = origin
        # Least recently used first (first written first, where a hit is no use): the order
        # the profile picks its victim from.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # The keys whose entries have a TTL: only these can expire, so only these are scanned.
        self._timed: dict[str, None] = {}
        # Whether any entry was ever marked vanishable (until then no scan for them is needed).
        self._weakened = False
        # Why an absent key is absent, for messages; and every key ever written. A fate is
        # written out only when a message needs it: most never are, and formatting each one
        # eagerly (at every clear(), for every key ever written) cost ops.mixed about 7%.
        self._fates: dict[str, Fate] = {}
        self._written: dict[str, None] = {}
        # Small values -> the key and time they were last written under, to spot collisions.
        self._writers: dict[bytes, tuple[str, float]] = {}

    # ----------------------------------------------------------------- what the model knows
    @property
    def origin(self) -> float:
        """The harness time the model started at (messages show times relative to it)."""
        return self._origin

    def at(self, now: float) -> str:
        """A harness time, relative to the model's origin, for messages.

        Rounded to 12 digits so that float noise (``1000.001 - 1000``) does not show. The
        machines step to "just before" an instant on purpose (an expiry less a tick); such a
        time says so in words (``t=just before 5184000``) rather than as
        ``t=5183999.999999999``, which reads as noise and hides which instant it is near.
        """
        return f"t={format_time(now - self._origin)}"

    @property
    def keys_written(self) -> list[str]:
        """Every key written so far, in first-write order."""
        return list(self._written)

    def presence(self, key: str, now: float) -> Presence:
        entry = self._entries.get(key)
        return "gone" if entry is None else self._presence(entry, now)

    def value_of(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.value

    def expiry_of(self, key: str) -> float | None:
        """When the key's entry expires (``None``: absent or no TTL)."""
        entry = self._entries.get(key)
        return None if entry is None else entry.expires

    def expiry_windows(self) -> list[tuple[float, float]]:
        """``[expires, expires + resolution)`` for every entry with a TTL."""
        windows = []
        for key in self._timed:
            expires = self._entries[key].expires
            assert expires is not None
            windows.append((expires, expires + self._resolution))
        return windows

    def is_ambiguous_at(self, now: float) -> bool:
        """Whether some entry would sit inside its expiry window at ``now``."""
        return any(start <= now < end for start, end in self.expiry_windows())

    def live_count_bound(self) -> int | None:
        """The most live entries the profile allows (``None``: no bound by count)."""
        return self.guarantees.eviction.live_count_bound()

    def least_recent_live(self, now: float) -> str | None:
        """The least recently used entry that must still be there (exact LRU evicts it next)."""
        return next((k for k, e in self._entries.items() if self._presence(e, now) == "live"), None)

    def held_count(self, now: float) -> int:
        """How many entries the backend may still hold at ``now`` (live, or inside their
        expiry window, or allowed to have been evicted): what a profile's count promises
        are checked against once the surely expired ones are dropped."""
        return sum(self._presence(e, now) != "gone" for e in self._entries.values())

    def live_keys(self, now: float) -> list[str]:
        """The keys the backend must still serve at ``now``, least recently used first."""
        return [k for k, e in self._entries.items() if self._presence(e, now) == "live"]

    def certainly_live_count(self, now: float) -> int:
        """How many entries the backend must still hold at ``now``."""
        if not self._any_uncertain(now):
            return len(self._entries)
        return sum(self._presence(e, now) == "live" for e in self._entries.values())

    # ------------------------------------------------------------------------ operations
    def get(self, now: float, key: str, observed: object) -> None:
        self._expire(now)
        self._check_lookup(lambda: f"get({key!r}) at {self.at(now)}", key, observed, now)
        self._learn_lookup(key, observed, now)
        self._settle()

    def get_many(self, now: float, keys: Sequence[str], observed: object) -> None:
        self._expire(now)

        def op() -> str:
            return f"get_many({list(keys)!r}) at {self.at(now)}"

        if not isinstance(observed, Mapping):
            raise Violation(op(), f"returned {type(observed).__name__}", "a mapping of the hits")
        wanted = dict.fromkeys(keys)
        extra = [k for k in observed if k not in wanted]
        if extra:
            raise Violation(
                op(),
                f"returned keys that were not asked for: {extra!r}",
                "a mapping of the requested keys that hit",
            )
        for key in wanted:
            self._check_lookup(op, key, observed.get(key, NO_VALUE), now, within=key)
        # Every requested occurrence is a use, in request order: a key asked for twice ends
        # where its last occurrence puts it.
        for key in keys:
            self._learn_lookup(key, observed.get(key, NO_VALUE), now)
        self._settle()

    def set(self, now: float, key: str, value: bytes, ttl: float | None) -> None:
        self._expire(now)
        self._write(now, key, value, ttl)
        self._settle()

    def set_many(self, now: float, items: Iterable[tuple[str, bytes]], ttl: float | None) -> None:
        self._expire(now)
        for key, value in items:
            self._write(now, key, value, ttl)
        self._settle()

    def refused_set(
        self, now: float, items: Iterable[tuple[str, bytes]], ttl: float | None
    ) -> None:
        """A ``set``/``set_many`` the backend refused for want of memory (a profile with
        ``refuses_when_full``): each key now holds the new value or nothing, never its old
        one. A refused ``add`` changes nothing, so it needs no call here."""
        self._expire(now)
        for key, value in items:
            self._write(now, key, value, ttl)
            self._entries[key].vanishable = True
        self._weakened = True
        self._settle()

    def add(self, now: float, key: str, value: bytes, ttl: float | None, observed: object) -> None:
        self._expire(now)

        def op() -> str:
            return f"add({key!r}, {show_value(value)}, ttl={ttl!r}) at {self.at(now)}"

        if not isinstance(observed, bool):
            raise Violation(op(), f"returned {observed!r}", "True (stored) or False (not stored)")
        entry = self._entries.get(key)
        presence = "gone" if entry is None else self._presence(entry, now)
        if presence == "live" and observed:
            raise Violation(op(), "returned True", "only False", self._describe_entry(key, now))
        if presence == "gone" and not observed:
            raise Violation(op(), "returned False", "only True", self._why_absent(key))
        if observed:
            if entry is not None:  # it was inside its expiry window and turned out gone
                self._remove(key, self._fate("was seen gone by add()", now))
            self._write(now, key, value, ttl)
        elif entry is not None:
            entry.vanishable = False  # the backend just told us the entry is there
        # A failed add is not a use: it does not change recency.
        self._settle()

    def compare_and_set(
        self,
        now: float,
        key: str,
        expected: bytes,
        value: bytes,
        *,
        ttl: float | None,
        observed: object,
    ) -> None:
        """Replace the live value only if it equals ``expected``; say whether it did."""
        self._expire(now)

        def op() -> str:
            return (
                f"compare_and_set({key!r}, {show_value(expected)}, {show_value(value)}, "
                f"ttl={ttl!r}) at {self.at(now)}"
            )

        if self._check_compare(op, key, expected, now, observed):
            self._write(now, key, value, ttl)
        self._settle()

    def compare_and_delete(self, now: float, key: str, expected: bytes, observed: object) -> None:
        """Delete the entry only if its live value equals ``expected``; say whether it did."""
        self._expire(now)

        def op() -> str:
            return f"compare_and_delete({key!r}, {show_value(expected)}) at {self.at(now)}"

        if self._check_compare(op, key, expected, now, observed):
            self._remove(key, self._fate("was deleted by compare_and_delete", now))
        self._settle()

    def _check_compare(
        self, op: Callable[[], str], key: str, expected: bytes, now: float, observed: object
    ) -> bool:
        """Check a compare-and-X answer; return whether the model now takes it as done.

        Allowed: True exactly when the live value equals ``expected`` (either answer while
        the entry may be gone). A comparison is a read that changes nothing, not a use."""
        if not isinstance(observed, bool):
            raise Violation(op(), f"returned {observed!r}", "True (done) or False (not done)")
        entry = self._entries.get(key)
        presence = "gone" if entry is None else self._presence(entry, now)
        matches = entry is not None and entry.value == expected
        if observed and (presence == "gone" or not matches):
            why = self._why_absent(key) if entry is None else self._describe_entry(key, now)
            raise Violation(op(), "returned True", "only False", why)
        if not observed and matches and presence == "live":
            raise Violation(op(), "returned False", "only True", self._describe_entry(key, now))
        if not observed and entry is not None and matches:
            # It was inside its expiry window (or evictable) and turned out gone.
            self._remove(key, self._fate("was seen gone by a comparison", now))
        return observed

    def delete(self, now: float, key: str) -> None:
        self.delete_many(now, [key])

    def delete_many(self, now: float, keys: Iterable[str]) -> None:
        self._expire(now)
        fate = self._fate("was deleted", now)
        for key in keys:
            if key in self._written:
                tied = self._tied(key, now)
                self._remove(key, self._fate("was deleted", now, tie=True) if tied else fate)
        self._settle()

    def clear(self, now: float) -> None:
        self._expire(now)
        self._fates.update(dict.fromkeys(self._written, self._fate("was removed by clear()", now)))
        tied = self._fate("was removed by clear()", now, tie=True)
        self._fates.update((key, tied) for key in self._entries if self._tied(key, now))
        self._entries.clear()
        self._timed.clear()

    # ------------------------------------------------------------------------- internals
    def _presence(self, entry: _Entry, now: float) -> Presence:
        expires = entry.expires
        if expires is not None and not now < expires:
            return "maybe" if now < expires + self._resolution else "gone"
        return "maybe" if entry.vanishable else "live"

    def _fate(self, what: str, now: float, *, tie: bool = False) -> Fate:
        if tie:
            return lambda key: f"{key!r} {what} at {self.at(now)}{TIE_NOTE}"
        return lambda key: f"{key!r} {what} at {self.at(now)}"

    def _tied(self, key: str, now: float) -> bool:
        """Whether removing ``key`` at ``now`` ties with its last write: the same instant,
        where a backend that orders calls by its own clock cannot tell which came first."""
        entry = self._entries.get(key)
        return entry is not None and entry.written_at == now and not self._granularity

    def _remove(self, key: str, fate: Fate) -> None:
        self._entries.pop(key, None)
        self._timed.pop(key, None)
        self._fates[key] = fate

    def _expire(self, now: float) -> None:
        for key in list(self._timed):
            entry = self._entries[key]
            if self._presence(entry, now) == "gone":
                self._remove(key, self._expired(entry.written_at, entry.ttl or 0.0))

    def _expired(self, written_at: float, ttl: float) -> Fate:
        return lambda key: (
            f"{key!r} expired at {self.at(written_at + ttl)} "
            f"(written at {self.at(written_at)} with ttl={ttl!r}{self._resolution_note()})"
        )

    def _resolution_note(self) -> str:
        if self._resolution:
            return f"; gone for sure {self._resolution!r}s later, the declared resolution"
        return ""

    def _write(self, now: float, key: str, value: bytes, ttl: float | None) -> None:
        # The lifetime the declaration gives the entry: the argument itself, the cache's one
        # TTL, or none (Guarantees.ttl; docs/design.md, "TTL declarations").
        ttl = self._lifetime(ttl)
        if key in self._entries:
            del self._entries[key]  # an overwrite: new value, new TTL, most recently used
        else:
            self._make_room(now, key)
        self._entries[key] = _Entry(value, now, ttl)
        if ttl is None:
            self._timed.pop(key, None)
        else:
            self._timed[key] = None
        self._written[key] = None
        self._fates.pop(key, None)
        if len(value) <= 64:
            self._writers[value] = (key, now)

    def _make_room(self, now: float, incoming: str) -> None:
        profile = self.guarantees.eviction
        # Every operation starts with _expire(now): the entries counted here may all be live,
        # so an expired entry never takes a slot a live one needs (the rule of every profile).
        if not profile.evicts_to_insert(len(self._entries)):
            return
        if self._any_uncertain(now):
            # Whether the backend counts an entry inside its expiry window as expired decides
            # which entry goes; the model cannot know, so any of them may now be missing.
            self._weakened = True
            for entry in self._entries.values():
                entry.vanishable = True
            return
        capacity = profile.live_count_bound()
        which = (
            "the least recently used"
            if profile.exact_lru_order
            else f"the next to go ({profile.describe()})"
        )
        self._remove(
            profile.victim([(key, entry.expires) for key, entry in self._entries.items()]),
            lambda victim: (
                f"{victim!r} was evicted at {self.at(now)} to make room for {incoming!r}: it "
                f"was {which} of {capacity} live entries"
            ),
        )

    def _any_uncertain(self, now: float) -> bool:
        if self._weakened and any(e.vanishable for e in self._entries.values()):
            return True
        return any(self._presence(self._entries[k], now) == "maybe" for k in self._timed)

    def _settle(self) -> None:
        """Mark what the profile may have evicted, unseen, after this operation.

        Counted without the surely expired entries (dropped by ``_expire`` when the operation
        began): a profile that keeps ``n`` entries keeps ``n`` live ones."""
        unprotected = self.guarantees.eviction.may_have_evicted(len(self._entries))
        if not unprotected:
            return
        self._weakened = True
        for index, entry in enumerate(self._entries.values()):
            if index >= unprotected:
                break
            entry.vanishable = True

    def _check_lookup(
        self,
        op: Callable[[], str],
        key: str,
        observed: object,
        now: float,
        within: str | None = None,
    ) -> None:
        """Check one looked-up key; ``op`` names the call, written out only on a violation."""

        def did() -> str:
            if within is None:
                return f"returned {show_value(observed)}"
            return f"gave {show_value(observed)} for {within!r}"

        entry = self._entries.get(key)
        if entry is None:
            if observed is not NO_VALUE:
                raise Violation(op(), did(), "only a miss", self._why_absent(key, observed))
            return
        if observed is NO_VALUE:
            if self._presence(entry, now) == "live":
                raise Violation(
                    op(), did(), f"only {show_value(entry.value)}", self._describe_entry(key, now)
                )
            return
        if observed != entry.value or type(observed) is not bytes:
            allowed = f"only {show_value(entry.value)}"
            if self._presence(entry, now) == "maybe":
                allowed = f"{show_value(entry.value)} or a miss"
            because = self._describe_entry(key, now) + self._collision_hint(key, observed)
            raise Violation(op(), did(), allowed, because)

    def _learn_lookup(self, key: str, observed: object, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        if observed is NO_VALUE:
            self._remove(key, self._fate("was seen missing", now))
        else:
            entry.vanishable = False
            if self._hit_is_use:  # LRU: a hit is a use (FIFO and others: the order stays)
                self._entries.move_to_end(key)

    def _describe_entry(self, key: str, now: float) -> str:
        entry = self._entries[key]
        text = f"{key!r} holds {show_value(entry.value)}, written at {self.at(entry.written_at)}"
        expires = entry.expires
        if expires is None:
            text += " with no TTL"
        else:
            text += f" with ttl={entry.ttl!r}, live until {self.at(expires)}"
            if self._resolution and not now < expires:
                text += f" and allowed to linger until {self.at(expires + self._resolution)}"
        if entry.vanishable:
            text += "; the eviction profile allows it to be gone"
        return text

    def _why_absent(self, key: str, observed: object = NO_VALUE) -> str:
        fate = self._fates.get(key)
        text = f"{key!r} was never written" if fate is None else fate(key)
        return text + self._collision_hint(key, observed)

    def _collision_hint(self, key: str, observed: object) -> str:
        if not isinstance(observed, bytes):
            return ""
        writer = self._writers.get(observed)
        if writer is None or writer[0] == key:
            return ""
        return (
            f"; {show_value(observed)} was written under {writer[0]!r} at {self.at(writer[1])}"
            " (do two keys share one entry?)"
        )
