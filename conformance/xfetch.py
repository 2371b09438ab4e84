"""XFetch's formula, checked call by call: with the random draw injected, a hit refreshes
exactly when ``now - delta * beta * ln(rand) >= expiry`` (``early_refresh.xfetch``).

It moves the harness's clock toward an entry's expiry, never to it, and every TTL it writes
outlives it, so it runs on a still clock too (docs/design.md, "A still clock").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import assume
from hypothesis import strategies as st

from cachespec.spec import Violation

from .pools import REAL_TIME_SAFE_TTL
from .staleness import Strategies
from .target import Target

KEY = "hot"


@dataclass(frozen=True)
class XFetchCase:
    delta: int  # seconds the first compute takes
    beta: float
    draw: float  # the random draw, in (0, 1]
    before: int  # seconds before the entry's expiry that the second call comes


XFETCH_CASES = st.builds(
    XFetchCase,
    delta=st.integers(1, 8),
    beta=st.sampled_from([0.5, 1.0, 2.0]),
    draw=st.floats(1e-9, 1.0),
    before=st.integers(1, 90),
)


def check_xfetch(target: Target, strategies: Strategies, case: XFetchCase) -> None:
    """Fill an entry whose compute took ``delta`` s; ``before`` s ahead of its expiry, a
    call with random draw ``draw`` must refresh exactly when XFetch's formula says."""
    early = -case.delta * case.beta * math.log(case.draw)  # how early XFetch may refresh
    assume(abs(early - case.before) > 1e-3)  # not at the boundary, where rounding decides
    session = target.session()
    try:
        clock = session.clock
        # Every TTL outlives the check, and the clock never moves past an expiry: a server
        # that keeps its own time (a still clock, stillclock.py) agrees with the harness's
        # about every entry, so the check runs there too.
        cache = strategies.make_cache(
            session.backend(),
            clock=clock.now,
            lease_ttl=REAL_TIME_SAFE_TTL,
            early_refresh=True,
            beta=case.beta,
            random=lambda: case.draw,
        )

        def first() -> str:
            clock.advance_to(clock.now() + case.delta)
            return "first"

        ttl = float(REAL_TIME_SAFE_TTL)
        cache.get_or_compute(KEY, first, ttl)
        expiry = clock.now() + ttl
        clock.advance_to(expiry - case.before)
        refreshed = cache.get_or_compute(KEY, lambda: "second", ttl) == "second"
        expected = early >= case.before
        if refreshed != expected:
            raise Violation(
                f"get_or_compute({KEY!r}) {case.before} s before expiry (compute time "
                f"{case.delta} s, beta {case.beta:g}, draw {case.draw!r})",
                "recomputed early" if refreshed else "served the cached value",
                f"{'an early refresh' if expected else 'a plain hit'}: XFetch refreshes when "
                f"-delta * beta * ln(draw) = {early:.6g} s >= the time left ({case.before} s)",
            )
    finally:
        session.close()
