"""The Redis adapter's Lua scripts, read from the package's ``lua/*.lua`` files.

The scripts are package data, not Python strings, so that they read (and diff) as Lua; they
are read once, when this module is imported, through :mod:`importlib.resources`, which finds
them in a wheel, a source checkout or a zip alike.

A plain namespace runs two scripts, :data:`COMPARE_SET` and :data:`COMPARE_DELETE`: ``KEYS[1]``
is the entry. They compare the value ``GET`` returns, which is nil (Lua false, equal to no
string) for a key that is missing or past its TTL: such a key never matches.

A bounded namespace runs every operation as a script: :data:`READ`, :data:`WRITE`,
:data:`DELETE`, :data:`CLEAR`, :data:`LRU_COMPARE_SET` and :data:`LRU_COMPARE_DELETE`. Each of
these takes the namespace's bookkeeping keys first, in ``KEYS`` (so they are declared):

* ``KEYS[1]`` recency: sorted set, entry key -> use counter (higher = more recently used)
* ``KEYS[2]`` expiry index: sorted set, entry key -> server time in ms when its TTL runs out
* ``KEYS[3]`` use counter: a string ``INCR``'d on every use (not wall time: two uses in one
  millisecond still have an order)

and the entries' own keys after them. Eviction and clear also touch keys they find in the
sorted sets, which they cannot declare in advance; every such key shares the namespace's hash
tag, so a Redis Cluster still finds them all in one slot.

Expiry stays Redis's own: entries keep their native ``PX`` TTLs, and "expired" always means
"gone on the server" (``EXISTS`` 0). The expiry index only finds the candidates quickly; its
scores come from ``TIME`` (microseconds) while Redis expires on a millisecond clock that a
script may see frozen at its start, so candidates are taken up to 2 ms past now, and each is
checked with ``EXISTS`` before anything is dropped.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

__all__ = [
    "CLEAR",
    "COMPARE_DELETE",
    "COMPARE_SET",
    "DELETE",
    "LRU_COMPARE_DELETE",
    "LRU_COMPARE_SET",
    "READ",
    "WRITE",
]


# This module's package, which holds lua/ (files() takes a package, not a module, before 3.12).
_PACKAGE: Final = __name__.rpartition(".")[0]


def _load(name: str) -> str:
    """The source of ``lua/<name>.lua``, as the server will hash and run it."""
    return (files(_PACKAGE) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


# A plain namespace's two scripts.
COMPARE_SET: Final = _load("compare_set")
COMPARE_DELETE: Final = _load("compare_delete")

# A bounded namespace's scripts, bookkeeping keys first.
READ: Final = _load("read")
WRITE: Final = _load("write")
DELETE: Final = _load("delete")
CLEAR: Final = _load("clear")
LRU_COMPARE_SET: Final = _load("lru_compare_set")
LRU_COMPARE_DELETE: Final = _load("lru_compare_delete")
