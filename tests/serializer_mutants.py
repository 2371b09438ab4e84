"""Deliberately lossy serializers: each gives back another value than it was given, in one
way, and ``tests/test_serializers.py``'s round-trip property must catch it (the property's
efficacy: ``test_the_round_trip_property_rejects_every_mutant``).

Each is the real :class:`~cachespec.backends.serializers.JSONSerializer` with one loss put
back: what the serializer did before values kept their types, or a plausible shortcut.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from cachespec.backends.serializers import JSONSerializer


class PlainJSON(JSONSerializer):
    """The serializer before tagging: JSON turns tuples into lists and keys into str
    (Decimal, date and sets are stored as text, so that they get as far as the hit)."""

    def dumps(self, value: object) -> bytes:
        if value.__class__ is bytes:
            return super().dumps(value)
        return b"j" + json.dumps(value, default=str, separators=(",", ":")).encode()


class TupleAsList(JSONSerializer):
    """Tags everything but tuples, which go out as lists."""

    def dumps(self, value: object) -> bytes:
        return super().dumps(_replace(value, tuple, list))


class DecimalAsFloat(JSONSerializer):
    """Stores a Decimal as the nearest float: 1.10 comes back as 1.1."""

    def dumps(self, value: object) -> bytes:
        return super().dumps(_replace(value, Decimal, float))


class DropsTimezone(JSONSerializer):
    """Stores a datetime's wall-clock time without its offset."""

    def dumps(self, value: object) -> bytes:
        return super().dumps(_replace(value, datetime, lambda d: d.replace(tzinfo=None)))


def _replace(value: Any, kind: type, convert: Callable[[Any], object]) -> object:
    """``value`` with every part of exactly type ``kind`` passed through ``convert``."""
    if type(value) is kind:
        return convert(value)
    if type(value) is dict:
        return {_replace(k, kind, convert): _replace(v, kind, convert) for k, v in value.items()}
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(_replace(v, kind, convert) for v in value)
    return value


MUTANTS: dict[str, type[JSONSerializer]] = {
    "PlainJSON": PlainJSON,
    "TupleAsList": TupleAsList,
    "DecimalAsFloat": DecimalAsFloat,
    "DropsTimezone": DropsTimezone,
}
