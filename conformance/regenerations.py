"""Which reads regenerated a key, and which ran beside which: what a strategy that declares
stale-while-revalidate (cachespec.spec.promises.Promises) is judged by.

Such a strategy may serve a read staler than the TTL bound while one regeneration of its
key (a read that calls the source) runs beside it; its bound is the TTL plus that one
regeneration (spec/staleness.py, ``STALE_WHILE_REVALIDATE``; docs/design.md, "Strategy
promises"). A read that overran the bound while another read of its key was still running,
not yet at the source, cannot be judged until that one ends: the staleness machine defers
it until then (``Verdict.LATER``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Verdict(enum.Enum):
    REGENERATING = "a regeneration ran beside the read"
    NONE = "no regeneration ran beside the read"
    LATER = "a read of the key that ran beside it has not ended yet"


@dataclass(frozen=True)
class Read:
    """A read's key, the log positions it started and ended at (None: still running), and
    whether it called the source."""

    key: str
    first: int
    last: int | None
    called_source: bool

    def beside(self, other: Read) -> bool:
        """Whether the two ran at some common step."""
        self_end = float("inf") if self.last is None else self.last
        other_end = float("inf") if other.last is None else other.last
        return self.first <= other_end and other.first <= self_end


class Regenerations:
    """The reads that ended, for judging the ones that overran their TTL bound."""

    def __init__(self) -> None:
        self._ended: list[Read] = []

    def ended(self, read: Read) -> None:
        self._ended.append(read)

    def verdict(self, read: Read, running: Iterable[Read]) -> Verdict:
        """Whether a regeneration of ``read``'s key ran beside it (``read`` itself counts:
        a caller may serve the old value and regenerate it too). ``running``: the reads not
        yet ended."""
        undecided = False
        for other in [*self._ended, *running]:
            if other.key != read.key or not other.beside(read):
                continue
            if other.called_source:
                return Verdict.REGENERATING
            undecided = undecided or other.last is None
        return Verdict.LATER if undecided else Verdict.NONE


__all__ = ["Read", "Regenerations", "Verdict"]
