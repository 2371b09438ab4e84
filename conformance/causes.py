"""One cause, many failing properties: a run's failures grouped by counterexample.

A backend wrong in one way usually fails several properties (an entry that expires a tick
early fails ``ttl.lives``, ``ttl.expires`` and ``ops.mixed``), each with a shrunk program of
its own, named after the property's focus rather than the rule broken. After a run with two
or more failures, each failure's program is replayed as the machine of every other failing
property (the programs call rules by name, and most machines share them): a program that
breaks another property accounts for that failure too. The report then shows the fewest
programs that account for every failure, shortest first, each with the properties it
breaks (docs/design.md, "How the suite decides").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cachespec.spec import Guarantees, Violation

from .checks import MachineCheck
from .pools import Blob
from .properties import BY_ID
from .target import Target

if TYPE_CHECKING:  # the runner imports this module
    from .runner import Result

# Replays grow as the square of the failures; past this many, the rest are shown as they are.
MOST_FAILURES = 8


@dataclass(frozen=True)
class Cause:
    """A counterexample and every failing property it breaks when replayed as theirs."""

    program: str
    breaks: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"breaks": list(self.breaks), "program": self.program}


def find_causes(results: list[Result], target: Target, guarantees: Guarantees) -> list[Cause]:
    """The fewest counterexamples that account for every failure with a program; [] when
    fewer than two failures have one (there is nothing to group)."""
    failed = [r for r in results if r.status == "fail" and _steps(r.counterexample)]
    if len(failed) < 2 or len(failed) > MOST_FAILURES:
        return []
    breaks = {
        r.id: {r.id} | {o.id for o in failed if o is not r and _breaks(r, o.id, target, guarantees)}
        for r in failed
    }
    left = {r.id for r in failed}
    causes = []
    while left:
        # The program that accounts for the most failures still unexplained; the shortest
        # of those.
        best = max(
            failed,
            key=lambda r: (len(breaks[r.id] & left), -len(r.counterexample.splitlines())),
        )
        causes.append(Cause(best.counterexample, tuple(sorted(breaks[best.id]))))
        left -= breaks[best.id]
    return causes


def _steps(program: str) -> list[str]:
    """A state-machine program's steps: what follows its ``state = replay(...)`` line."""
    lines = program.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("state = replay("):
            return lines[index + 1 :]
    return []


def _breaks(failure: Result, other: str, target: Target, guarantees: Guarantees) -> bool:
    """Whether ``failure``'s program, run as ``other``'s machine, raises a Violation."""
    check = BY_ID[other].build(target, guarantees)
    if not isinstance(check, MachineCheck):
        return False
    state: Any = None
    try:
        state = check.machine()
        exec("\n".join(_steps(failure.counterexample)), {"state": state, "Blob": Blob})
    except Violation:
        return True
    except Exception:
        return False
    finally:
        session = getattr(state, "session", None)
        if session is not None and not session.closed:
            session.close()
    return False


__all__ = ["MOST_FAILURES", "Cause", "find_causes"]
