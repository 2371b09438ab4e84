"""Small caches whose TTLs are not per entry, as people use them: one TTL for the whole cache
(``cachetools.TTLCache(ttl=...)`` style) and no TTL at all (a plain dict). Each declares it
(``Guarantees.ttl``: docs/design.md, "TTL declarations") and passes the suite; each has a
mutant, registered in ``tests/mutants.py``, that breaks what it declares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from cachespec.backends import NO_VALUE, Backend, NoValue
from cachespec.backends.contract import check_items, check_key, check_keys, check_value
from cachespec.spec import CacheWide, Guarantees, NoExpiry, validate_ttl

# The one TTL of OneTTLDict: between the harness's small clock steps, so that a few of them
# cross it and a few do not.
CACHE_TTL = 1.5


class NoTTLDict(Backend):
    """A dict with no expiry: a write's ``ttl`` is validated, then ignored, as declared."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.entries: dict[str, tuple[bytes, float]] = {}  # key -> (value, written at)
        self.guarantees = Guarantees(ttl=NoExpiry())

    def live(self, written_at: float, now: float) -> bool:
        return True

    def written_at(self, key: str, now: float) -> float:
        """The instant a write at ``now`` records (the rule OneTTLDict's mutant breaks)."""
        return now

    def _lookup(self, key: str, now: float) -> bytes | NoValue:
        found = self.entries.get(key)
        if found is None or not self.live(found[1], now):
            return NO_VALUE
        return found[0]

    def get(self, key: str) -> bytes | NoValue:
        return self._lookup(check_key(key), self.clock())

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        now = self.clock()
        found = {k: self._lookup(k, now) for k in check_keys(keys)}
        return {k: v for k, v in found.items() if isinstance(v, bytes)}

    def _store(self, key: str, value: bytes) -> None:
        now = self.clock()
        self.entries[key] = (value, self.written_at(key, now))

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        data = check_value(check_key(key), value)
        validate_ttl(ttl)
        self._store(key, data)

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = check_items(items)
        validate_ttl(ttl)
        for key, data in checked:
            self._store(key, data)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        data = check_value(check_key(key), value)
        validate_ttl(ttl)
        if self._lookup(key, self.clock()) is not NO_VALUE:
            return False
        self._store(key, data)
        return True

    def delete(self, key: str) -> None:
        self.entries.pop(check_key(key), None)

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in check_keys(keys):
            self.entries.pop(key, None)

    def clear(self) -> None:
        self.entries.clear()


class OneTTLDict(NoTTLDict):
    """Every entry lives ``CACHE_TTL`` seconds from its last write, whatever ``ttl`` says."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.guarantees = Guarantees(ttl=CacheWide(CACHE_TTL))

    def live(self, written_at: float, now: float) -> bool:
        return now < written_at + CACHE_TTL


# ------------------------------------------------------------------------------ mutants
class OneTTLFromFirstWrite(OneTTLDict):
    """An overwrite keeps the entry's first write time: the one TTL runs from the first
    write, not the last, so an entry rewritten a moment before expiry dies at once."""

    def written_at(self, key: str, now: float) -> float:
        found = self.entries.get(key)
        if found is not None and self.live(found[1], now):
            return found[1]
        return now


class ForgetsAfterADay(NoTTLDict):
    """Declares no expiry, yet drops entries a day after their write (a default TTL it
    never mentions)."""

    def live(self, written_at: float, now: float) -> bool:
        return now < written_at + 86_400
