"""The universe the state machines draw from: keys, values, TTLs, clock moves.

Small on purpose: a handful of keys makes overwrites, collisions and evictions happen within
a few steps; the adversarial pools hold exactly the inputs that real adapters get wrong.
"""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache

from hypothesis import strategies as st


class Blob:
    """A large value that prints short: ``Blob(1048577)`` is 1,048,577 bytes of ``b'x'``.

    Counterexamples are printed as Python programs; a megabyte literal would drown them.
    """

    __slots__ = ("fill", "size")

    def __init__(self, size: int, fill: bytes = b"x") -> None:
        self.size = size
        self.fill = fill

    @property
    def data(self) -> bytes:
        return _blob_bytes(self.size, self.fill)

    def __repr__(self) -> str:
        return f"Blob({self.size})" if self.fill == b"x" else f"Blob({self.size}, {self.fill!r})"


@lru_cache(maxsize=32)
def _blob_bytes(size: int, fill: bytes) -> bytes:
    return fill * size


def as_bytes(value: bytes | Blob) -> bytes:
    return value.data if isinstance(value, Blob) else value


# ------------------------------------------------------------------------------------ keys
PLAIN_KEYS = ("a", "b", "c", "d")
FEW_KEYS = ("a", "b")
LRU_KEYS = ("k0", "k1", "k2", "k3", "k4", "k5")

# Every kind of str a backend's key mapping can get wrong.
HARD_KEYS = (
    "",
    " ",
    "a b",
    "tab\tkey",
    "line\nbreak",
    "\r\n",
    "\x00",
    "\x7f",
    "ключ",
    "日本語",
    "😀",
    "\ud800",  # a lone surrogate: a valid str that no UTF-8 encoder accepts as is
    "a" * 250,
    "a" * 251,
    "é" * 125,  # 250 bytes of UTF-8
    "é" * 126,  # 252 bytes of UTF-8
    "x" * 1000,
    "%20",
    "{tag}",
    "k:v:w",
)

# Groups of keys that a lossy mapping (truncation, normalisation, case folding, escaping
# that is not injective, lossy encoding) would send to one entry.
# Keys a careless mapping confuses with each other, group by group.
DISTINCT_KEY_GROUPS: tuple[tuple[str, ...], ...] = (
    ("p" * 250 + "1", "p" * 250 + "2", "p" * 300),  # equal once cut to 250 characters
    ("Key", "key"),  # equal once case-folded
    ("é", "e\u0301"),  # the same letter, composed and decomposed
    ("a b", "a_b", "a%20b", "a+b"),  # equal once escaped carelessly
    ("", " ", "\x00"),  # empty, blank, NUL
    ("k", "k ", " k"),  # equal once stripped
    ("\ud800", "\ud801", "?"),  # lone surrogates: equal once replaced on encoding
)
DISTINCT_KEYS = tuple(key for group in DISTINCT_KEY_GROUPS for key in group)

# --------------------------------------------------------------------------------- values
PLAIN_VALUES: st.SearchStrategy[bytes | Blob] = st.sampled_from(
    [b"red", b"green", b"blue", b"cyan", b"magenta"]
)
FALSY_VALUES: st.SearchStrategy[bytes | Blob] = st.sampled_from(
    [b"", b"0", b"\x00", b"False", b"None", b"null", b" ", b"[]", b"{}"]
)


def roundtrip_values(max_size: int | None) -> st.SearchStrategy[bytes | Blob]:
    """Arbitrary bytes, plus large values up to the declared limit."""
    limit = 1 << 20 if max_size is None else max_size
    big = [Blob(n) for n in (4096, 65_536, 300_000, limit) if n <= limit]
    return st.one_of(st.binary(max_size=64), st.sampled_from(big))


def size_limit_values(max_size: int) -> st.SearchStrategy[bytes | Blob]:
    """Values at, just under and just over the declared item limit."""
    sizes = sorted({max(0, max_size - 1), max_size, max_size + 1, max_size + 1000})
    return st.one_of(PLAIN_VALUES, st.sampled_from([Blob(n, b"L") for n in sizes]))


# ----------------------------------------------------------------------------------- TTLs
SHORT_TTLS = (0.001, 0.25, 0.5, 1, 1.5, 2, 2.5, 10, 60, 3600, 86400)
LONG_TTLS = (2_592_000, 2_592_001, 3_456_000, 31_536_000)  # 30 days, 30 days + 1 s, 40 d, 1 y

# (argument, the exception it must raise)
INVALID_TTLS: tuple[tuple[object, type[Exception]], ...] = (
    (0, ValueError),
    (0.0, ValueError),
    (-1, ValueError),
    (-0.5, ValueError),
    (-1e-9, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (-math.inf, ValueError),
    (10**400, ValueError),
    (True, TypeError),
    (False, TypeError),
    ("10", TypeError),
    (b"10", TypeError),
    (Decimal("10"), TypeError),
    (timedelta(seconds=10), TypeError),
    ([10], TypeError),
)


def ttls(pool: tuple[float, ...], max_ttl: float | None, *, none: bool) -> tuple[float | None, ...]:
    """The TTLs of ``pool`` the backend accepts, with ``None`` (no expiry) first if asked."""
    allowed = tuple(t for t in pool if max_ttl is None or t <= max_ttl)
    return ((None,) if none else ()) + allowed


# A TTL this long cannot run out while a check against a real-time server runs.
REAL_TIME_SAFE_TTL = 3600


# ---------------------------------------------------------------------------- clock moves
SMALL_STEPS = (0.001, 0.25, 0.5, 1, 2)
BIG_STEPS = (60, 3600, 86400, 2_592_000, 31_536_000)

# Where to land relative to an entry's expiry instant.
BEFORE = "just_before"  # the last instant it must be served
AT = "at"  # the instant it expires (exact backends: gone)
PAST = "past_window"  # the first instant it must be gone, resolution included
OFFSETS_ALL = (BEFORE, AT, PAST)

# Values that are not bytes, and keys that are not str.
BAD_VALUES: tuple[object, ...] = ("text", 0, None, 1.5, bytearray(b"x"), memoryview(b"x"), [b"x"])
BAD_KEYS: tuple[object, ...] = (1, 0, None, b"a", 1.5, ("a",), ["a"])
