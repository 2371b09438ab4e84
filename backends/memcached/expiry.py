"""Expiry arithmetic: from a TTL in seconds to the exptime memcached is sent.

memcached's clock ticks in whole seconds and its tick drifts; the adapter sends an exptime at
least ``ttl + 2.1`` s away so that no entry dies before its TTL (:func:`relative_exptime`), and
declares the resulting worst-case lateness (:data:`TTL_RESOLUTION`). Past memcached's 30-day
relative limit it sends an absolute time computed from the *server's* clock
(:func:`absolute_exptime`), which must stay below 2**31 (:func:`longest_ttl`).
"""

from __future__ import annotations

import math

from cachespec.spec import validate_ttl

__all__ = [
    "RELATIVE_EXPTIME_LIMIT",
    "TICK_SLACK",
    "TTL_RESOLUTION",
    "absolute_exptime",
    "check_ttl",
    "longest_ttl",
    "relative_exptime",
]

RELATIVE_EXPTIME_LIMIT = 2_592_000
"""memcached reads an exptime above 30 days as an absolute Unix time (docs/facts.md: 2,592,001
expires at once), so longer TTLs are sent as absolute times."""

_INT32_MAX = 2**31 - 1  # the text protocol parses exptime as a signed 32-bit integer
_ONE_YEAR = 365 * 86_400

TICK_SLACK = 0.1
"""Seconds of margin in every exptime: how late memcached's one-second clock timer may fire
(observed here: 0 to 5.4 ms, mean 0.9 ms), plus, for absolute exptimes, the write's one-way
delay to the server."""

# The clock arithmetic (memcached 1.6, ``clock_handler`` in memcached.c). The server's
# ``current_time`` is floor(monotonic seconds) minus a constant, recomputed only when a
# libevent timer fires, and the timer is re-armed for 1 s *after* each firing. Firings are
# therefore p = 1 + d seconds apart, d >= 0 the timer's lateness, so the phase of the ticks
# drifts, and about every 1/d seconds (some 20 minutes here) one tick advances
# ``current_time`` by 2. docs/facts.md's "exptime N lives between N-1 and N seconds" is the case
# where no such double step falls within the item's life. Observed on 1.6.18 here: STAT time
# minus floor(CLOCK_MONOTONIC) was constant at every tick; ticks came 1.0011 s apart (quiet)
# to 1.0024 s (loaded), with 3 double steps in 1,300 s; of 103,426 items set with exptime 2,
# 235 (all near a double step) were gone in under 1 s, the quickest within 13 ms.
#
# Let s be the real (monotonic) time at which the server stores an item with relative exptime
# N, and b its ``current_time`` then, both in seconds. The last tick was less than p ago and b
# is the floor of its time, so 0 <= s - b < 1 + p. The item dies at the first tick t with
# floor(t) >= b + N, so b + N <= t < b + N + p. Its lifetime t - s lies in
#     (N - 1 - p, N + p)  =  (N - 2 - d, N + 1 + d).
#
# Never early needs N - 2 - d >= ttl. With d <= TICK_SLACK:
#     N = ceil(ttl + TICK_SLACK) + 2                          (relative_exptime)
# Worst lateness: N < ttl + TICK_SLACK + 3, so lifetime - ttl < 3 + TICK_SLACK + 1 + d <= 4.2 s.
# Usual case (no double step while the item lives): lifetime in (N - 1, N], so a 1.5 s TTL
# (N = 4) lives 3 to 4 s, and an integer TTL k (N = k + 3) lives k + 2 to k + 3 s.
#
# Absolute exptime (TTL past the 30-day limit): A = T + M, T the server's ``STAT time``
# (process start + current_time) from a ``stats`` call sent e seconds before the write is
# sent. The server reads A as current_time_at_stats + M, so the write's lifetime is
# M + (lag of the expiry tick) - (s_write - b_stats), where s_write - b_stats < 1 + p + e + the
# write's one-way delay. M = ceil(ttl + TICK_SLACK + e) + 2 keeps it >= ttl (the one-way delay
# and d share TICK_SLACK). Lateness: < M + p - (e - rtt_stats) - ttl <= 4.2 s + rtt_stats.
#
# The declared 4.5 s is 4.2 s plus 0.3 s for the ``stats`` round trip. Under the harness's fake
# clock (whole seconds, ticks on the second, no drift) an item lives N - frac(s) seconds:
# between ttl + 2 and ttl + 3.1 s.
TTL_RESOLUTION = 4.5


def relative_exptime(ttl: float) -> int:
    """The relative exptime (whole seconds) that keeps an entry at least ``ttl`` seconds.

    ``ceil(ttl + TICK_SLACK) + 2``: on memcached's drifting whole-second clock the entry then
    lives more than ``ttl`` and less than ``ttl + 4.2`` seconds (arithmetic above).
    """
    return math.ceil(ttl + TICK_SLACK) + 2


def absolute_exptime(server_time: int, seconds: float, waited: float) -> int:
    """The absolute exptime (Unix seconds on the server's clock) for a TTL of ``seconds``.

    ``server_time`` is the server's ``STAT time`` from a ``stats`` request sent ``waited``
    seconds (real time) before now: ``server_time + ceil(seconds + TICK_SLACK + waited) + 2``
    keeps the entry at least ``seconds`` (arithmetic above). A time past 2**31 - 1, which the
    protocol cannot carry, is a ``ValueError``.
    """
    absolute = server_time + math.ceil(seconds + TICK_SLACK + waited) + 2
    if absolute > _INT32_MAX:  # only an instance kept for over a year, from 2036 on
        raise ValueError(
            f"ttl {seconds!r} would end after 2038-01-19, past memcached's 32-bit "
            "exptime; nothing was written"
        )
    return absolute


def longest_ttl(server_time: int) -> int:
    """The ``max_ttl`` to declare on a server whose clock reads ``server_time``.

    An absolute exptime must stay below 2**31 for a year after construction: one year, less
    from 2036 on; but a TTL sent in relative form (``relative_exptime(ttl)`` <= 30 days) needs
    no absolute time at all, so never less than 30 days - 3 s.
    """
    longest = min(_ONE_YEAR, _INT32_MAX - server_time - _ONE_YEAR - 4)
    return max(longest, RELATIVE_EXPTIME_LIMIT - 3)


def check_ttl(ttl: object, limit: float | None) -> float | None:
    """``ttl`` as seconds (``None``: no expiry), checked as every backend checks it and
    refused over ``limit`` (the declared ``max_ttl``) before anything is sent."""
    seconds = validate_ttl(ttl)
    if seconds is not None and limit is not None and seconds > limit:
        raise ValueError(
            f"ttl {ttl!r} is over this backend's max_ttl of {limit:.0f} s "
            "(memcached's absolute expiry times are 32-bit); nothing was written"
        )
    return seconds
