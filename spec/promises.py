"""What a strategy promises, in terms the suite can check: the strategy side's
:class:`~cachespec.spec.guarantees.Guarantees`.

A backend declares what it keeps; a strategy (ours, or a third party's cache-aside or
decorator given with ``cachespec check --strategy module:Class``) declares how it keeps a
cache in step with its source. The suite checks each promise as declared, and reports a
property that checks a promise not made as "not declared", with the reason
(docs/design.md, "Strategy promises").

The defaults are conservative: they promise what our own strategies do (single-flight,
fall-through on a failing cache, the plain TTL bound), so that a strategy is held to the
whole bar until it opts out, and every opt-out shows in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Promises:
    """A strategy's declared promises.

    needs_compare_and_set
        The strategy's own code needs the backend's ``compare_and_set`` (ours does: guarded
        fills and leases). ``False``: its properties run over a backend without it too.
        What it says covers the strategy's own methods; a method it inherits from ours
        needs what ours needs (conformance/properties/strategies.py, ``needs``).
    needs_add
        The same for the backend's ``add`` (ours takes fill leases with it; a backend may
        declare ``Guarantees(add=False)``).
    single_flight
        Concurrent misses on a key in one process run one compute. ``False``: duplicate
        computes are no failure, and the single-flight properties are reported as not
        declared.
    leases
        Fills are taken under an expiring lease with one owner (``single_flight.one_owner``,
        ``single_flight.takeover``). ``False``: those are reported as not declared.
    early_refresh
        Given a cache configured for it (XFetch's ``early_refresh`` or ``refresh_before``), a
        hit is refreshed before it expires, by one caller while the others get the old value
        (``efficacy.early_refresh``, ``efficacy.revalidate``, ``early_refresh.xfetch``).
        ``False``: those are reported as not declared (a read of one's own that never asks
        the cache for it would fail them for a design it never had).
    stale_while_revalidate
        An expired value is served while one caller regenerates it: a read may be staler
        than the TTL (plus the backend's resolution) only while a regeneration of its key
        (a read that calls the source) runs beside it; once that has landed, the TTL bound
        holds again (spec/staleness.py, ``BOUNDS``).
    fail_closed
        A failing cache is an error its caller sees: a read whose cache call failed raises
        instead of falling through to the source. Checked as declared: such a read that
        returns a value is a violation.
    """

    needs_compare_and_set: bool = True
    needs_add: bool = True
    single_flight: bool = True
    leases: bool = True
    early_refresh: bool = True
    stale_while_revalidate: bool = False
    fail_closed: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            if not isinstance(getattr(self, f.name), bool):
                raise TypeError(f"{f.name} must be a bool, got {getattr(self, f.name)!r}")

    def opted_out(self) -> list[str]:
        """What this declaration gives up against the defaults, in the report's words."""
        words = []
        if not self.needs_compare_and_set:
            words.append("no compare_and_set needed")
        if not self.needs_add:
            words.append("no add needed")
        if not self.single_flight:
            words.append("no single-flight")
        if not self.leases:
            words.append("no fill leases")
        if not self.early_refresh:
            words.append("no early refresh")
        if self.stale_while_revalidate:
            words.append("stale-while-revalidate")
        if self.fail_closed:
            words.append("fails closed")
        return words

    def describe(self) -> str:
        return "; ".join(self.opted_out()) or "the defaults (as ours)"


__all__ = ["Promises"]
