"""Configurations drawn per example for the strategy machines, so that each documented
bound is checked across the configurations it covers rather than at one.

A machine draws its configuration once, in an ``@initialize`` rule ``configure(...)``
whose arguments are the fields of one shared draw: the replay program prints them as its
first step (``state.configure(fill_ttl=5.0, lease_ttl=10.0)``), in numbers a reader can
change. Rules that move time draw their amounts from the same configuration, so that they
still land on its TTLs and lease times (docs/design.md, "Configurations drawn").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from hypothesis import strategies as st

from .pools import REAL_TIME_SAFE_TTL

# The fill TTLs drawn: short enough that memcached's 4.5 s resolution is most of one, and
# long enough for a lease or a slow compute to fit many times in one.
FILL_TTLS = (5.0, 60.0, 600.0)
# A lease time is drawn as a share of the fill TTL, past the TTL too: there, single-flight
# once shared a flight older than the TTL and broke the bound (docs/design.md,
# "Configurations drawn"; tests/test_drawn.py replays what the draws found).
LEASE_SHARES = (0.1, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class StalenessConfig:
    """The staleness and efficacy machines' parameters: the TTL fills are written with
    (also event invalidation's safety net), and how long a fill's lease holds the key."""

    fill_ttl: float
    lease_ttl: float


@dataclass(frozen=True)
class FlightConfig:
    """The single-flight machine's parameters: the lease time (also how long a flight is
    shared) and the TTL its fills are written with."""

    lease_ttl: float
    fill_ttl: float


def _staleness_configs() -> st.SearchStrategy[StalenessConfig]:
    return st.builds(
        lambda ttl, share: StalenessConfig(ttl, ttl * share),
        st.sampled_from(FILL_TTLS),
        st.sampled_from(LEASE_SHARES),
    )


def _flight_configs() -> st.SearchStrategy[FlightConfig]:
    # A fill outlives its lease by far (a filled key would otherwise be a miss again before
    # any flight race is over) or barely.
    return st.builds(
        lambda lease, times: FlightConfig(lease, lease * times),
        st.sampled_from([1.0, 30.0, 300.0]),
        st.sampled_from([2.0, 20.0]),
    )


STALENESS = st.shared(_staleness_configs(), key="cachespec-staleness-config")
FLIGHTS = st.shared(_flight_configs(), key="cachespec-flight-config")

# On a still clock (a server whose clock the harness does not move: docs/design.md, "A still
# clock"), every TTL a strategy writes must outlive the example, or the server would expire
# it at an instant the harness neither chooses nor sees. The fill TTL is the longest a guest
# writes (tenant.py caps at an hour); a lease is half of it or more (an example takes
# seconds), past the TTL too, as above (the guest's cap then shortens it on the server only).
STILL_LEASE_SHARES = (0.5, 1.0, 2.0)
STILL_STALENESS = st.shared(
    st.builds(
        lambda share: StalenessConfig(float(REAL_TIME_SAFE_TTL), REAL_TIME_SAFE_TTL * share),
        st.sampled_from(STILL_LEASE_SHARES),
    ),
    key="cachespec-still-staleness-config",
)
STILL_FLIGHTS = st.shared(
    st.builds(
        lambda lease, times: FlightConfig(lease, lease * times),
        st.sampled_from([REAL_TIME_SAFE_TTL / 2, float(REAL_TIME_SAFE_TTL)]),
        st.sampled_from([2.0, 20.0]),
    ),
    key="cachespec-still-flight-config",
)


def field(config: st.SearchStrategy[Any], name: str) -> st.SearchStrategy[Any]:
    """One field of the configuration drawn for the example."""
    return config.map(lambda drawn: asdict(drawn)[name])


def time_steps(
    config: st.SearchStrategy[Any], steps: Callable[[Any], list[float]]
) -> st.SearchStrategy[float]:
    """A time step drawn from ``steps(configuration)``: the amounts a rule moves the clock
    by, in terms of the example's own TTLs and lease times."""
    return config.flatmap(lambda drawn: st.sampled_from(steps(drawn)))
