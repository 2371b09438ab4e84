"""The default serializer gives back exactly what it was given, or refuses it at ``dumps``.

What a miss returns, a hit returns (issue #13): every storable value, nested any way,
round-trips to a value of the same types and the same contents (a property over generated
values, and its efficacy: it rejects each lossy serializer in tests/serializer_mutants.py);
each refused type is an EncodeError before anything is written; a forged tagged payload is
a DecodeError, never a crash or code run. docs/design.md, "A value's type survives the cache".
"""

from __future__ import annotations

import collections
import enum
import math
import sys
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from serializer_mutants import MUTANTS

from cachespec.backends import NO_VALUE, CacheError, MemoryBackend
from cachespec.backends.cache import Cache
from cachespec.backends.serializers import DecodeError, EncodeError, JSONSerializer
from cachespec.conformance import ManualClock

# ---------------------------------------------------------------------------------------------
# What "exactly" means: same types all the way down, same contents


def fingerprint(value: object) -> object:
    """A hashable picture of ``value`` that two values share only if each part has the same
    type and the same contents: NaN matches NaN, -0.0 does not match 0.0, Decimal('1.10')
    does not match Decimal('1.1'), and a datetime's offset, zone name and fold count."""
    kind = type(value)
    if kind is float:
        return ("float", "nan" if math.isnan(value) else value.hex())  # type: ignore[arg-type,attr-defined]
    if kind is Decimal:
        return ("Decimal", str(value))
    if kind is datetime:
        moment: datetime = value  # type: ignore[assignment]
        return ("datetime", moment.isoformat(), moment.fold, moment.tzname())
    if kind in (list, tuple):
        return (kind.__name__, tuple(fingerprint(item) for item in value))  # type: ignore[attr-defined]
    if kind in (set, frozenset):
        return (kind.__name__, frozenset(fingerprint(item) for item in value))  # type: ignore[attr-defined]
    if kind is dict:
        pairs = value.items()  # type: ignore[attr-defined]
        return ("dict", tuple((fingerprint(k), fingerprint(v)) for k, v in pairs))
    return (kind.__name__, value)


def assert_round_trips(serializer: JSONSerializer, value: object) -> None:
    """Any failure, an exception included, is an AssertionError: the efficacy test below
    counts only those, so that a health check or a broken strategy cannot pass for one."""
    try:
        back = serializer.loads(serializer.dumps(value))
    except Exception as exc:
        raise AssertionError(f"the round trip of {value!r} raised {exc!r}") from exc
    assert fingerprint(back) == fingerprint(value), f"{value!r} came back as {back!r}"


# ---------------------------------------------------------------------------------------------
# Storable values, nested

fixed_offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
) | st.just(timezone.utc)
moments = st.builds(
    lambda moment, fold: moment.replace(fold=fold),
    st.datetimes(timezones=st.none() | fixed_offsets),
    st.sampled_from([0, 1]),
)
hashable_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary()
    | st.decimals(allow_nan=False)  # a signalling NaN cannot be hashed
    | st.dates()
    | moments
)
leaves = hashable_leaves | st.decimals(allow_nan=True, allow_infinity=True)
hashables = st.recursive(
    hashable_leaves,
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.dictionaries(hashables, inner, max_size=4)
        | st.sets(hashables, max_size=4)
        | st.frozensets(hashables, max_size=4)
    ),
    max_leaves=20,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_every_storable_value_comes_back_exactly(value: object) -> None:
    assert_round_trips(JSONSerializer(), value)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_what_a_miss_returns_a_hit_returns(value: object) -> None:
    cache = Cache(MemoryBackend(clock=ManualClock()), default_ttl=60)
    missed = cache.get_or_compute("k", lambda: value)
    hit: object = cache.get_or_compute("k", lambda: pytest.fail("a hit must not compute"))
    assert (cache.stats.misses, cache.stats.hits, cache.stats.fills) == (1, 1, 1)
    assert fingerprint(hit) == fingerprint(missed) == fingerprint(value)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_the_round_trip_property_rejects_every_mutant(name: str) -> None:
    """The property's efficacy: each lossy serializer fails it within the default budget
    (100 examples, unshrunk, a fixed seed so that the rejection is reproducible)."""
    serializer = MUTANTS[name]()

    @settings(
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(values)
    def round_trip(value: object) -> None:
        assert_round_trips(serializer, value)

    with pytest.raises(AssertionError):
        round_trip()


# ---------------------------------------------------------------------------------------------
# The cases issue #13 names, and the formats on the wire


@pytest.mark.parametrize(
    "value",
    [
        (1, 2),
        {1: "a"},
        {"a": (1, [2, {3}])},
        {(1, "x"): frozenset({b"\x00"})},
        Decimal("1.10"),
        Decimal("-0"),
        Decimal("NaN"),
        date(2026, 1, 1),
        datetime(2026, 1, 1, 12, 30, 0, 1),
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2026, 11, 1, 1, 30, fold=1),
        # fromisoformat (3.11) reads this offset back as UTC: Hypothesis found it.
        datetime(2000, 1, 1, tzinfo=timezone(timedelta(microseconds=1))),
        [b"", b"\xff"],
        {True: 1, None: 2, 1.5: 3},
        set(),
        (),
        -0.0,
    ],
    ids=repr,
)
def test_the_types_json_loses_come_back_exactly(value: object) -> None:
    assert_round_trips(JSONSerializer(), value)


def test_plain_json_values_keep_the_plain_format_and_the_others_are_tagged() -> None:
    serializer = JSONSerializer()
    # The plain format is the hit path's fast one: a plain value must not pay for tags.
    assert serializer.dumps({"a": [1, 2.5, None, True, "x"]}) == b'j{"a":[1,2.5,null,true,"x"]}'
    assert serializer.dumps(b"raw") == b"braw"
    assert serializer.dumps((1, 2)) == b't["T",1,2]'
    assert serializer.dumps({1: "a"}) == b't["M",1,"a"]'
    assert serializer.dumps({"n": Decimal("1.10")}) == b't{"n":["N","1.10"]}'


class Color(enum.IntEnum):
    RED = 1


class Label(str):
    pass


class Zone(tzinfo):
    """A zone of its own (as ZoneInfo is): its rules would not survive as an offset."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "ZONE"


class Point(NamedTuple):
    x: int
    y: int


REFUSED: dict[str, Any] = {
    "object": object(),
    "IntEnum (an int subclass)": Color.RED,
    "str subclass": Label("x"),
    "named tuple": Point(1, 2),
    "OrderedDict": collections.OrderedDict(a=1),
    "defaultdict": collections.defaultdict(int, a=1),
    "bytearray": bytearray(b"x"),
    "complex": 1j,
    "time": time(12, 0),
    "timedelta": timedelta(seconds=1),
    "UUID": UUID(int=1),
    "a function": len,
    "datetime in a zone with rules": datetime(2026, 1, 1, tzinfo=Zone()),
    "datetime with a named offset": datetime(2026, 1, 1, tzinfo=timezone(timedelta(0), "Z")),
    "a refused part, nested": {"ok": [1, (2, Color.RED)]},
    "a refused dict key": {Color.RED: 1},
    "a refused set item": {1, time(0)},
}
if hasattr(sys, "get_int_max_str_digits"):  # 3.10.7 and later: json cannot read it back
    REFUSED["an int past the digit limit"] = 10 ** (sys.get_int_max_str_digits() + 1)


@pytest.mark.parametrize("name", REFUSED)
def test_each_refused_type_is_an_encode_error_and_nothing_is_written(name: str) -> None:
    value = REFUSED[name]
    cache = Cache(MemoryBackend(clock=ManualClock()), default_ttl=60)
    with pytest.raises(EncodeError, match=r"cannot store this .* exactly") as refused:
        cache.set("k", value)
    assert isinstance(refused.value, TypeError)  # the Serializer protocol's promise
    assert isinstance(refused.value, CacheError)  # and cachespec's own family
    assert cache.backend.get("k") is NO_VALUE


def test_a_value_that_contains_itself_or_nests_too_deep_is_refused() -> None:
    looped: list[object] = []
    looped.append(looped)
    deep: list[object] = []
    for _ in range(sys.getrecursionlimit() + 10):
        deep = [deep]
    for value in (looped, deep):
        with pytest.raises(EncodeError, match="nested too deep, or it contains itself"):
            JSONSerializer().dumps(value)


def test_the_error_says_where_the_refused_part_sits_and_shows_no_data() -> None:
    with pytest.raises(EncodeError) as refused:
        JSONSerializer().dumps([1, {"color": Color.RED}])
    assert "at value[1]['color'], type Color: it is a subclass of int" in str(refused.value)
    secret_key = (b"s3cret-token", "s3cret-token")
    with pytest.raises(EncodeError) as refused:
        JSONSerializer().dumps({secret_key: object()})
    assert "s3cret" not in str(refused.value)
    assert "<a tuple key>" in str(refused.value)


# ---------------------------------------------------------------------------------------------
# Forged or corrupt tagged payloads: a DecodeError (a counted miss), nothing run


@pytest.mark.parametrize(
    "payload",
    [
        b"t",
        b"t[]",
        b't["X",1]',
        b"t[[1]]",
        b't["M",1]',
        b't["M",["L"],1]',  # an unhashable key
        b't["S",["L"]]',  # an unhashable item
        b't["B","not base64!"]',
        b't["B",1]',
        b't["N","pi"]',
        b't["A","2026-13-01"]',
        b't["W","2026-01-01T00:00:00",2]',
        b't["W","2026-01-01T00:00:00",null,2]',
        b't["W","2026-01-01T00:00:00",true,0]',
        b't["W","2026-01-01T00:00:00+01:00",null,0]',  # the offset goes apart
        b't["W","2026-01-01T00:00:00",86400000000,0]',  # a day: no timezone has it
        b't["W","2026-01-01T00:00:00",1e400,0]',
        b't["W"]',
        b't["N","1","2"]',
        b"t" + b'["L",' * 100_000,
        b'q["T",1]',
    ],
)
def test_a_forged_tagged_payload_is_a_decode_error(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        JSONSerializer().loads(payload)


def test_a_forged_tagged_fill_is_a_counted_miss() -> None:
    cache = Cache(MemoryBackend(clock=ManualClock()), default_ttl=60)
    cache.get_or_compute("k", lambda: (1, 2))
    raw = cache.backend.get("k")
    assert isinstance(raw, bytes)
    assert raw.endswith(b't["T",1,2]')
    cache.backend.set("k", raw.replace(b't["T",1,2]', b't["Z",1,2]'))
    assert cache.get_or_compute("k", lambda: (3, 4)) == (3, 4)
    assert cache.stats.decode_failures == 1


# ---------------------------------------------------------------------------------------------
# The cache's side: a value it cannot store still reaches its caller


@pytest.mark.parametrize("guarded", [True, False])
def test_a_computed_value_that_cannot_be_stored_is_still_returned_and_counted(
    guarded: bool,
) -> None:
    cache = Cache(MemoryBackend(clock=ManualClock()), default_ttl=60, guarded=guarded)
    unstorable = {"at": time(12, 0)}
    assert cache.get_or_compute("k", lambda: unstorable) is unstorable
    assert cache.stats.fills_failed == 1
    assert cache.backend.get("k") is NO_VALUE  # and the lease is gone: the next miss fills
