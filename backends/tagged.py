"""Tagged JSON: the Python types plain JSON would change, written so they come back exactly.

JSON alone turns a tuple into a list and ``{1: "a"}`` into ``{"1": "a"}``, and has no
``Decimal``, ``date`` or ``bytes``: a cache hit would return another value than the miss
that filled it. :class:`~cachespec.backends.serializers.JSONSerializer` writes a value as
plain JSON when :func:`is_plain` says JSON round-trips it exactly (the common case, and the
hit path's fast one), and otherwise as the tree :func:`encode` builds, which
:func:`decode` reads back. docs/design.md, "A value's type survives the cache".

In a tagged tree, a JSON object is a dict with ``str`` keys and a JSON scalar is itself;
every JSON array is a tagged container, its first element a one-letter tag:

=====  ==========================================  =========================
tag    Python value                                 rest of the array
=====  ==========================================  =========================
``L``  ``list``                                     the items
``T``  ``tuple``                                    the items
``S``  ``set``                                      the items
``F``  ``frozenset``                                the items
``M``  ``dict`` with a key that is not a ``str``    key, value, key, value...
``B``  ``bytes`` (inside a container)               base64 text
``N``  ``decimal.Decimal``                          ``str(d)`` (exact: digits,
                                                    exponent, sign, NaN)
``A``  ``datetime.date``                            ISO 8601 text
``W``  ``datetime.datetime``                        its wall time as ISO 8601
                                                    text (no offset), the UTC
                                                    offset in microseconds (null
                                                    if naive), ``fold``
=====  ==========================================  =========================

Only exact types are stored: a subclass (``IntEnum``, ``OrderedDict``, a named tuple)
would come back as its base class, so it is refused, as is a ``datetime`` whose
``tzinfo`` is not a fixed offset (``timezone``) or carries a name (it would come back as an
unnamed offset). Refusing is :func:`encode`'s ``TypeError``, naming the type and where in
the value it sits; the serializer turns it into ``EncodeError`` before anything is written.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

__all__ = ["STORABLE", "decode", "encode", "is_plain", "locate"]

_MICROSECOND: Final = timedelta(microseconds=1)

#: JSON's own scalars: JSON round-trips these exactly (float specials and -0.0 included).
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})

#: What the default serializer stores, for error messages and the docs.
STORABLE: Final = (
    "None, bool, int, float, str, bytes, list, tuple, dict (any storable hashable keys), "
    "set, frozenset, Decimal, date, and datetime (naive or with a fixed-offset timezone)"
)


def is_plain(value: Any) -> bool:
    """Whether plain JSON round-trips ``value`` exactly: only JSON's scalars, lists, and
    dicts with ``str`` keys, each of exactly that type. RecursionError for a value nested
    too deep (or containing itself)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    # Plain loops: all() with a generator made this walk 1.5 to 2 times slower (a 6-field
    # row, a page of 20 rows), and set(map(type, ...)) was no faster.
    # A scalar item is checked in place, without a call: most of a value is leaves.
    if kind is list:
        for item in value:  # noqa: SIM110
            if type(item) not in _SCALARS and not is_plain(item):
                return False
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (type(item) not in _SCALARS and not is_plain(item)):
                return False
        return True
    return False


def _exact_tz(moment: datetime) -> bool:
    """Whether ISO 8601 text brings ``moment``'s tzinfo back as it was."""
    tz = moment.tzinfo
    if tz is None:
        return True
    if type(tz) is not timezone:
        return False
    offset = tz.utcoffset(None)
    return tz.tzname(None) == timezone(offset).tzname(None)


def _why_not(value: Any) -> str:
    """Why ``value`` (a leaf :func:`encode` refused) cannot be stored, in a few words."""
    kind = type(value)
    if kind is datetime:
        return (
            f"its tzinfo {value.tzinfo!r} is not a fixed, unnamed offset; it would come "
            "back as one (convert it to datetime.timezone)"
        )
    bases = (bool, int, float, str, list, tuple, dict, set, frozenset, bytes, Decimal, datetime)
    for base in (*bases, date):
        if isinstance(value, base) and kind is not base:
            return f"it is a subclass of {base.__name__}, and would come back as {base.__name__}"
    return "no exact encoding for it"


def encode(value: Any) -> object:
    """The tagged tree of ``value`` (see the module's table), for ``json.dumps``.

    ``TypeError`` if some part of ``value`` cannot be stored exactly (:func:`locate` says
    where); RecursionError for a value nested too deep (or containing itself).
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        for key in value:
            if type(key) is not str:
                pairs: list[object] = ["M"]
                for k, v in value.items():
                    pairs.append(encode(k))
                    pairs.append(encode(v))
                return pairs
        return {key: encode(item) for key, item in value.items()}
    tag = _CONTAINER_TAGS.get(kind)
    if tag is not None:
        return [tag, *map(encode, value)]
    if kind is bytes:
        return ["B", base64.b64encode(value).decode("ascii")]
    if kind is Decimal:
        return ["N", str(value)]
    if kind is date:
        return ["A", value.isoformat()]
    if kind is datetime and _exact_tz(value):
        # The offset apart, in whole microseconds: fromisoformat (3.11) read "+00:00:00.000001"
        # back as UTC (docs/facts.md), and a plain int needs no parsing at all.
        offset = value.utcoffset()
        micros = None if offset is None else offset // _MICROSECOND
        return ["W", value.replace(tzinfo=None, fold=0).isoformat(), micros, value.fold]
    raise TypeError(f"type {kind.__qualname__}: {_why_not(value)}")


_CONTAINER_TAGS: Final[dict[type, str]] = {list: "L", tuple: "T", set: "S", frozenset: "F"}


def _shown(key: object) -> str:
    """A dict key in a path: a short ``str`` key as itself (a field name, mostly); any
    other key by its type only, so that an error does not print a user's data."""
    if type(key) is str and len(key) <= 40:
        return repr(key)
    return f"<a {type(key).__qualname__} key>"


def locate(value: Any, path: str = "value") -> tuple[str, str] | None:
    """Where in ``value`` the first part :func:`encode` refuses sits (``value[0]['a']``),
    and why; None if there is none. Only on the error path: it walks the value again."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            shown = _shown(key)
            found = locate(key, f"{path}, key {shown}") or locate(item, f"{path}[{shown}]")
            if found is not None:
                return found
        return None
    if kind in _CONTAINER_TAGS:
        for index, item in enumerate(value):
            where = f"{path}[{index}]" if kind in (list, tuple) else f"an item of {path}"
            found = locate(item, where)
            if found is not None:
                return found
        return None
    try:
        encode(value)
    except TypeError as refused:
        return path, str(refused)
    return None


def _items(tree: list[object]) -> list[object]:
    return [decode(item) for item in tree[1:]]


def _text(tree: list[object]) -> str:
    if len(tree) != 2 or type(tree[1]) is not str:
        raise ValueError(f"tag {tree[0]!r} takes one string")
    return tree[1]


def _mapping(tree: list[object]) -> dict[object, object]:
    if len(tree) % 2 != 1:
        raise ValueError("an 'M' array holds key, value pairs")
    flat = _items(tree)
    return dict(zip(flat[::2], flat[1::2], strict=True))  # TypeError: an unhashable key


def _datetime(tree: list[object]) -> datetime:
    if (
        len(tree) != 4
        or type(tree[1]) is not str
        or (tree[2] is not None and type(tree[2]) is not int)
        or tree[3] not in (0, 1)
        or type(tree[3]) is not int
    ):
        raise ValueError("tag 'W' takes ISO text, an offset in microseconds or null, a fold")
    moment = datetime.fromisoformat(tree[1])
    if moment.tzinfo is not None:
        raise ValueError("tag 'W' takes the wall time without an offset")
    micros = tree[2]
    zone = None if micros is None else timezone(micros * _MICROSECOND)
    return moment.replace(tzinfo=zone, fold=tree[3])


_DECODERS: Final[dict[object, Callable[[list[object]], object]]] = {
    "L": _items,
    "T": lambda tree: tuple(_items(tree)),
    "S": lambda tree: set(_items(tree)),
    "F": lambda tree: frozenset(_items(tree)),
    "M": _mapping,
    "B": lambda tree: base64.b64decode(_text(tree), validate=True),
    "N": lambda tree: Decimal(_text(tree)),
    "A": lambda tree: date.fromisoformat(_text(tree)),
    "W": _datetime,
}


def decode(tree: Any) -> object:
    """The value whose tagged tree is ``tree`` (what ``json.loads`` read).

    A tree :func:`encode` cannot have written raises ``ValueError``, ``TypeError`` (an
    unhashable key or set item), ``ArithmeticError`` (a Decimal's text) or
    ``RecursionError``; the serializer reads each as a payload that does not decode.
    Nothing in a tree runs code: every tag maps to a constructor of a built-in type.
    """
    kind = type(tree)
    if kind is dict:
        return {key: decode(item) for key, item in tree.items()}
    if kind is list:
        if not tree:
            raise ValueError("an empty array has no tag")
        decoder = _DECODERS.get(tree[0])
        if decoder is None:
            raise ValueError(f"unknown tag {tree[0]!r}")
        return decoder(tree)
    return tree
