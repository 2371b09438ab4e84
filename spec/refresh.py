"""Early refresh: what a key read steadily may cost, and when it may miss.

A cache that refreshes a hit before it expires (a soft TTL, ``refresh_before=S``, or XFetch)
promises two things for a key read at a steady rate (docs/design.md, "Early refresh"):

* **no miss**: once filled, the key never expires into a miss while it is read at least
  every ``read_every`` seconds, provided a read always lands in the refresh window early
  enough for its compute to end before the entry expires: ``read_every + compute < lead``;
* **no storm**: it is recomputed about once per TTL, across all callers and processes.
  An entry written at the end of a compute expires ``ttl`` later and is refreshed no
  earlier than ``lead`` before that, so two computes of the key start at least
  ``ttl - lead + compute`` apart, and a window of ``ttl`` seconds holds at most
  ``floor(ttl / that) + 1`` of them.

``lead`` is how early a refresh may come: ``refresh_before`` for a soft TTL. XFetch
refreshes when ``now - delta * beta * ln(draw) >= expiry``, which for one fixed draw in
(0, 1] is a soft TTL of ``-delta * beta * ln(draw)`` (``delta`` the compute time). Its
randomness spreads refreshes over callers; the suite fixes the draw, so that the bound is
exact and a failure replays, and leaves the distribution to ``early_refresh.xfetch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class RefreshConfigError(ValueError):
    """The configuration is not one the promise covers (or not a configuration at all)."""


@dataclass(frozen=True)
class RefreshBound:
    """An early-refresh configuration and the bounds it promises for a key read steadily."""

    ttl: float  # the fill TTL
    compute: float  # seconds one compute takes (XFetch's delta)
    read_every: float  # the steady read rate: a read at least this often
    lease_ttl: float  # how long a fill's lease holds the key
    refresh_before: float | None = None  # soft TTL
    beta: float | None = None  # XFetch
    draw: float | None = None  # XFetch's random draw, fixed, in (0, 1]

    def __post_init__(self) -> None:
        soft, xfetch = self.refresh_before is not None, self.beta is not None
        if soft == xfetch or (self.beta is None) != (self.draw is None):
            raise RefreshConfigError(
                "give refresh_before (soft TTL) or beta and draw (XFetch), one of the two"
            )
        for name in ("ttl", "compute", "read_every", "lease_ttl"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise RefreshConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.draw is not None and not 0.0 < self.draw <= 1.0:
            raise RefreshConfigError(f"draw must be in (0, 1], got {self.draw!r}")
        if xfetch and self.compute <= 0:
            raise RefreshConfigError("XFetch refreshes early only for a compute that takes time")
        if not self.compute < self.lease_ttl:
            raise RefreshConfigError(
                f"a lease must outlive the compute it guards: compute {self.compute!r} s, "
                f"lease_ttl {self.lease_ttl!r} s"
            )
        if not self.read_every + self.compute < self.lead < self.ttl:
            raise RefreshConfigError(
                f"the promise needs read_every + compute < lead < ttl, got {self.read_every!r} "
                f"+ {self.compute!r} < {self.lead!r} < {self.ttl!r}"
            )

    @property
    def lead(self) -> float:
        """How long before its expiry an entry may be refreshed."""
        if self.refresh_before is not None:
            return self.refresh_before
        assert self.beta is not None  # __post_init__
        assert self.draw is not None
        return -self.compute * self.beta * math.log(self.draw)

    @property
    def min_spacing(self) -> float:
        """The least time between the starts of two computes of the key."""
        return self.ttl - self.lead + self.compute

    @property
    def max_computes_per_ttl(self) -> int:
        """The most computes of the key that start within any ``ttl`` seconds."""
        return math.floor(self.ttl / self.min_spacing) + 1

    def describe(self) -> str:
        if self.refresh_before is not None:
            mode = f"soft TTL, refresh_before={self.refresh_before:g} s"
        else:
            mode = f"XFetch, beta={self.beta:g}, draw={self.draw!r} (lead {self.lead:.6g} s)"
        return (
            f"ttl={self.ttl:g} s, {mode}, compute {self.compute:g} s, a read every "
            f"{self.read_every:g} s, lease_ttl={self.lease_ttl:g} s"
        )
