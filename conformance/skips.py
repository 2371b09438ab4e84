"""Why a property does not run against a target, and in which time it runs where it does.

Five kinds of skip, each read differently by a user and by ``--require-all``
(docs/design.md, "What a skip says"). Only CANNOT_CHECK_HERE is the check's own limit, which
--require-all turns into a failure; the others are what the backend declared, or what it is.
"""

from __future__ import annotations

from cachespec.spec import Guarantees

from . import guest, realtime
from .properties import Property
from .properties.stateful import FOCUSES
from .target import Target

__all__ = [
    "CANNOT_CHECK_HERE",
    "EXPECTED_FAILURE",
    "NOT_APPLICABLE",
    "NOT_DECLARED",
    "OPTED_OUT",
    "in_real_time",
    "why_skipped",
]

# Why a property was skipped. Only CANNOT_CHECK_HERE is the check's own limit, which
# --require-all turns into a failure; the others are what the backend declared, or what it
# is: NOT_APPLICABLE where no target of it could run the property (no server to fail in a
# backend that lives in this process; a group of nodes, whose faults its own properties
# check). docs/design.md, "What a skip says".
NOT_DECLARED = "not declared"
NOT_APPLICABLE = "not applicable"
OPTED_OUT = "opted out"
EXPECTED_FAILURE = "expected failure"
CANNOT_CHECK_HERE = "cannot check here"


def why_skipped(prop: Property, target: Target, guarantees: Guarantees) -> tuple[str, str] | None:
    """``(kind, reason)`` when ``prop`` does not run against ``target``; None when it runs."""
    reason = prop.not_applying(target, guarantees)
    kind = NOT_DECLARED
    if reason is None:
        kind = CANNOT_CHECK_HERE
    if reason is None and prop.needs_server and not target.owns_server:
        kind, reason = _no_server_to_fail(target)
    if reason is None:
        # Before the clock: a store-wide clear is refused on a user's server, in any time.
        reason = guest.refusal(prop, target, guarantees)
    if reason is None and in_real_time(prop, target) is False:
        reason = realtime.cannot_run(prop.id, prop.area, target)
    if reason is None and prop.needs_processes and not target.shared_across_processes:
        reason = (
            f"runs real processes, which need a backend they can all reach: {target.name} "
            "lives in this process"
        )
        if target.in_process:
            kind = NOT_APPLICABLE
        else:  # a factory's backend, which may talk to a server other processes could reach
            reason += " (check a server: `cachespec check redis`, `memcached`)"
    if reason is None and prop.id in guarantees.opt_out:
        reason, kind = f"opted out: {guarantees.opt_out[prop.id]}", OPTED_OUT
    return None if reason is None else (kind, reason)


def _no_server_to_fail(target: Target) -> tuple[str, str]:
    """``(kind, reason)`` of a single-server fault property on a target whose server the
    harness may not fail: nothing to fail at all, a group of nodes (its own fault
    properties take their place), or a server someone else runs."""
    if target.in_process:
        return NOT_APPLICABLE, (
            f"{target.name} lives in this process: there is no server to kill, stop or restart"
        )
    if target.server_faults_note is not None:
        return NOT_APPLICABLE, target.server_faults_note
    return CANNOT_CHECK_HERE, (
        f"kills, stops and restarts the server, which only a server the harness started "
        f"may be: {target.name} is not one (check `cachespec check redis`, `memcached`)"
    )


def in_real_time(prop: Property, target: Target) -> bool | None:
    """None where ``prop`` runs on the harness's clock (or on none); True where it runs in
    real time on ``target``; False where it needs a clock ``target`` cannot give it."""
    if not prop.needs_clock or target.controls_time or prop.still_clock:
        return None  # a still clock is the harness's too (stillclock.py)
    if prop.real_time:  # its own build runs it so (rtstaleness.py)
        return True
    return realtime.runs_in_real_time(prop.id) and prop.id in FOCUSES
