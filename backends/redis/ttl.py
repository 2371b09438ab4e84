"""TTLs on Redis: how they are sent, and how late the server may serve an entry.

Time and TTLs
-------------
A TTL is sent as ``PX`` milliseconds rounded *up* (an entry never dies before its TTL), and
expiry is the server's own: a real server uses its own clock, so the factory's ``clock``
argument does not apply to it (the conformance harness moves a server's clock with
libfaketime instead). fakeredis follows an injected clock; see
:func:`~cachespec.backends.redis.fakeredis_client`.

Redis compares expiry in whole milliseconds and still serves a key whose PTTL is 0: with a
frozen clock, ``EX 10`` is present at +10 s exactly and gone at +10.001 s (docs/facts.md). Written
at server time ``T`` (seconds) with TTL ``ttl``, the key gets ``when = floor(1000*T) + ms``
with ``ms = ceil(1000*ttl)``, and is served while ``floor(1000*now) <= when``, that is while
``now < (floor(1000*T) + ms + 1) / 1000``. So it is never served short (that bound is above
``T + ms/1000 >= T + ttl``), and it outlives ``T + ttl`` by less than
``(ms/1000 - ttl) + 0.001 < 0.001 + 0.001``: :data:`REDIS_TTL_RESOLUTION` is 2 ms.
"""

from __future__ import annotations

import math
from typing import Final

from cachespec.spec import validate_ttl

__all__ = [
    "FAKEREDIS_TTL_RESOLUTION",
    "MAX_TTL",
    "REDIS_TTL_RESOLUTION",
    "milliseconds",
    "px_ttl",
]

REDIS_TTL_RESOLUTION: Final = 0.002
"""How late a real Redis may still serve an entry (the module docstring has the arithmetic).

Under 1 ms from rounding a TTL up to whole milliseconds, plus under 1 ms because Redis keeps
time in whole milliseconds and serves a key until its PTTL is below 0.
"""

FAKEREDIS_TTL_RESOLUTION: Final = 0.001
"""How late fakeredis may still serve an entry.

fakeredis keeps expiry as float seconds (``expireat = now + ms / 1000.0``) and drops a key once
``expireat < now``: it serves the key up to and including ``T + ms/1000``, which is later than
``T + ttl`` by ``ms/1000 - ttl < 0.001`` (only the rounding up; no millisecond clock). For a
TTL that is a whole number of milliseconds the two sums are the same float and the lateness
is 0, served at the instant itself, which the model's window ``[expires, expires + 0.001)``
allows.
"""

MAX_TTL: Final = 10**12
"""The longest TTL accepted, in seconds (about 31,700 years).

Redis refuses an expiry past 2**63 ms, and a bounded namespace keeps expiry times as doubles;
a TTL this long is well inside both.
"""


def milliseconds(seconds: float) -> int:
    """A TTL in whole milliseconds, rounded up: the entry never dies before ``seconds``."""
    ms = math.ceil(seconds * 1000)
    if ms / 1000 < seconds:  # seconds * 1000 was rounded down onto a whole number
        ms += 1
    return ms


def px_ttl(ttl: object) -> int | None:
    """A TTL argument as ``PX`` milliseconds (``None``: no expiry), or ValueError/TypeError."""
    seconds = validate_ttl(ttl)
    if seconds is None:
        return None
    if seconds > MAX_TTL:
        raise ValueError(f"ttl {ttl!r} s is over this backend's limit of {MAX_TTL} s")
    return milliseconds(seconds)
