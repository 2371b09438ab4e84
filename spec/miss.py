"""The miss sentinel.

A cache lookup that finds nothing returns :data:`NO_VALUE`. It is a singleton compared by
identity (``result is NO_VALUE``); it is never ``None``, ``b""`` or anything a user could
have stored, so every stored value, falsy ones included, reads back as a hit.

``bool(NO_VALUE)`` raises ``TypeError``: ``if cached:`` is exactly the bug that turns a
cached empty string into a miss, so the sentinel refuses to take part in it.
"""

from __future__ import annotations

import enum
from typing import Final, Literal, NoReturn


class NoValue(enum.Enum):
    """The type of :data:`NO_VALUE` (an enum, so that ``x is NO_VALUE`` narrows types)."""

    NO_VALUE = "NO_VALUE"

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> NoReturn:
        raise TypeError("NO_VALUE has no truth value: compare with `result is NO_VALUE`")

    def __reduce__(self) -> str:
        # Pickling and copying keep the identity (enum members are singletons anyway).
        return "NO_VALUE"


NO_VALUE: Final[Literal[NoValue.NO_VALUE]] = NoValue.NO_VALUE
