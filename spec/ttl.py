"""What a TTL argument means, and which ones are refused.

``ttl=None`` means no expiry. A TTL is otherwise a finite number of seconds greater than
zero (``int`` or ``float``, fractions allowed). An entry written at ``t`` with TTL ``ttl``
is live while ``now < t + ttl``: at ``t + ttl`` exactly it is gone.

Refused, before anything is written:

* ``bool`` and anything that is not an ``int``/``float`` (``"10"``, ``Decimal``,
  ``timedelta``): ``TypeError``. ``True`` is an ``int`` to Python, but a TTL of "True
  seconds" is always a bug.
* ``0``, negative numbers, NaN and infinities: ``ValueError``. Peers disagree on ``0``
  (Django: "don't cache", cachelib: "never expire"); refusing it is the only reading
  that cannot surprise anyone.
"""

from __future__ import annotations

import math


def validate_ttl(ttl: object) -> float | None:
    """Return ``ttl`` as seconds (or ``None``), or raise ``TypeError``/``ValueError``."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(
            f"ttl must be a number of seconds (int or float) or None, "
            f"got {type(ttl).__name__}: {ttl!r}"
        )
    try:
        seconds = float(ttl)
    except OverflowError:  # an int too large for a float is not a finite TTL either
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"ttl must be finite and greater than 0 seconds (None means no expiry), got {ttl!r}"
        )
    return seconds
