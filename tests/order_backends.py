"""Caches of eviction orders other than LRU, as people use them (``cachetools.FIFOCache``,
``RRCache``, an exactly expiry-ordered cache), each beside a mutant that breaks its order.
The correct ones declare their profile (cachespec.spec.eviction) and pass; each mutant is
registered in ``tests/mutants.py`` with the property that must reject it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from plain_backend import CAPACITY, PlainBackend

from cachespec.spec import FIFO, ExpiryOrdered, Guarantees, RandomEviction


def _declaring(backend: PlainBackend, guarantees: Guarantees) -> None:
    backend.guarantees = guarantees


class FIFOBackend(PlainBackend):
    """First written, first out: a hit leaves the order alone (an overwrite moves the key to
    the back, as cachetools' FIFOCache does)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        _declaring(self, Guarantees(eviction=FIFO(CAPACITY), thread_safe=True))

    def touch(self, key: str) -> None:
        pass


class ExpiryOrderedBackend(PlainBackend):
    """Evicts the entry that expires soonest, other than the one being written (it makes
    room for it); entries without a TTL after all others, ties in write order."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        _declaring(self, Guarantees(eviction=ExpiryOrdered(CAPACITY), thread_safe=True))

    def touch(self, key: str) -> None:
        pass

    def victim(self) -> str:
        def soonest(indexed: tuple[int, str]) -> tuple[bool, float, int]:
            index, key = indexed
            expires = self.entries[key].expires
            return (expires is None, 0.0 if expires is None else expires, index)

        return min(enumerate(self.order[:-1]), key=soonest)[1]


class RandomBackend(PlainBackend):
    """Evicts a random entry other than the one being written (cachetools' RRCache evicts
    before it inserts). Seeded per instance, so that a replay evicts alike."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        _declaring(self, Guarantees(eviction=RandomEviction(CAPACITY), thread_safe=True))
        self.chance = random.Random(15)

    def victim(self) -> str:
        return self.chance.choice(self.order[:-1])


# ------------------------------------------------------------------------------ mutants
class FIFORefreshesOnHit(FIFOBackend):
    """Declares FIFO, but a hit moves the entry to the back: an LRU under FIFO's name."""

    def touch(self, key: str) -> None:
        PlainBackend.touch(self, key)


class ExpiryOrderedEvictsOldest(ExpiryOrderedBackend):
    """Declares expiry order, but evicts the entry written first, whatever its TTL."""

    def victim(self) -> str:
        return self.order[0]


class RandomEvictsNewcomer(RandomBackend):
    """Declares random eviction, but may pick the entry just written among the victims: a
    write into a full cache can be lost at once."""

    def victim(self) -> str:
        return self.chance.choice(self.order)
