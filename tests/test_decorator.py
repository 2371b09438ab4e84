"""@cached: one key per call however it is spelt, methods, invalidation, and bad use refused."""

from __future__ import annotations

import enum
import threading
from typing import Any

import pytest

from cachespec import Cache, ConfigurationError, MemoryBackend, cached
from cachespec.backends import CachedFunction
from cachespec.conformance import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cache(clock: ManualClock) -> Cache:
    return Cache(MemoryBackend(clock=clock), clock=clock, default_ttl=300)


class Colour(enum.Enum):
    RED = 1


def test_every_spelling_of_a_call_is_one_key_and_computes_once(cache: Cache) -> None:
    calls: list[tuple[str, str]] = []

    @cached(cache)
    def price_of(sku: str, currency: str = "EUR") -> float:
        calls.append((sku, currency))
        return 9.5

    assert price_of("A1") == 9.5
    assert price_of(sku="A1") == 9.5
    assert price_of("A1", "EUR") == 9.5
    assert price_of("A1", currency="EUR") == 9.5
    assert calls == [("A1", "EUR")]
    assert price_of("A1", "USD") == 9.5  # another argument: another key
    assert len(calls) == 2
    assert cache.stats.hits == 3


def test_numbers_equal_in_python_share_a_key_unless_typed(cache: Cache) -> None:
    @cached(cache)
    def loose(x: object) -> str:
        return type(x).__name__

    @cached(cache, typed=True)
    def strict(x: object) -> str:
        return type(x).__name__

    assert loose.key_for(1) == loose.key_for(1.0) == loose.key_for(True)
    assert len({strict.key_for(1), strict.key_for(1.0), strict.key_for(True)}) == 3
    assert strict(1) == "int"
    assert strict(1.0) == "float"


def test_keys_name_the_module_and_qualified_name(cache: Cache) -> None:
    def make() -> CachedFunction[int]:
        @cached(cache)
        def same_name(x: int) -> int:
            return x

        return same_name

    @cached(cache)
    def same_name(x: int) -> int:
        return -x

    assert same_name.key_for(1).startswith(f"{__name__}:")
    assert make().key_for(1) != same_name.key_for(1)  # another qualified name
    assert same_name(1) == -1
    assert make()(1) == 1


def test_structured_arguments_and_var_arguments_are_keyed(cache: Cache) -> None:
    @cached(cache)
    def f(*parts: object, **options: object) -> int:
        return len(parts) + len(options)

    assert f.key_for(1, (2, "x"), b"y", None, Colour.RED, frozenset({2, 1})) == f.key_for(
        1, (2, "x"), b"y", None, Colour.RED, frozenset({1, 2})
    )
    assert f.key_for(a=1, b=2) == f.key_for(b=2, a=1)
    assert f.key_for("1") != f.key_for(1)
    assert f(1, 2, a=3) == 3


def test_an_argument_without_a_stable_text_needs_a_key_function(cache: Cache) -> None:
    calls = []

    @cached(cache)
    def f(x: object) -> int:
        calls.append(x)
        return 1

    with pytest.raises(TypeError, match=r"argument 'x' of .*f\(\) is a dict.*key="):
        f({"a": 1})
    with pytest.raises(TypeError, match="NaN"):
        f(float("nan"))
    assert calls == []  # refused before the function ran

    @cached(cache, key=lambda x: ",".join(sorted(x)))
    def g(x: dict[str, int]) -> int:
        return len(x)

    assert g({"a": 1, "b": 2}) == 2
    assert g({"b": 0, "a": 0}) == 2  # the key function says these are one call


def test_methods_leave_self_out_unless_the_key_function_uses_it(cache: Cache) -> None:
    class Shop:
        computed = 0

        def __init__(self, name: str) -> None:
            self.name = name

        @cached(cache)
        def price(self, sku: str) -> float:
            Shop.computed += 1
            return 1.0

        @cached(cache, key=lambda self, sku: f"{self.name}/{sku}")
        def local_price(self, sku: str) -> str:
            return self.name

    a, b = Shop("a"), Shop("b")
    assert a.price("x") == b.price("x") == 1.0
    assert Shop.computed == 1  # self is not part of the key
    assert a.local_price("x") == "a"
    assert b.local_price("x") == "b"
    a.price.invalidate("x")
    assert b.price("x") == 1.0
    assert Shop.computed == 2


def test_invalidate_forgets_exactly_that_call(cache: Cache) -> None:
    results = iter(range(100))

    @cached(cache)
    def f(x: int) -> int:
        return next(results)

    assert (f(1), f(2)) == (0, 1)
    f.invalidate(x=1)
    assert (f(1), f(2)) == (2, 1)


def test_the_ttl_is_the_functions_own(cache: Cache, clock: ManualClock) -> None:
    results = iter(range(100))

    @cached(cache, ttl=10)
    def f() -> int:
        return next(results)

    assert f() == 0
    clock.advance(9.999)
    assert f() == 0
    clock.advance(0.001)
    assert f() == 1


def test_concurrent_misses_run_the_function_once(cache: Cache) -> None:
    started, release = threading.Event(), threading.Event()
    calls = []

    @cached(cache)
    def slow() -> str:
        calls.append(1)
        started.set()
        release.wait(30)
        return "v"

    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(slow()))
    first.start()
    assert started.wait(30)
    others = [threading.Thread(target=lambda: results.append(slow())) for _ in range(4)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(30)
    assert results == ["v"] * 5
    assert calls == [1]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"ttl": 0}, ValueError),
        ({"ttl": "10"}, TypeError),
        ({"key": "not callable"}, ConfigurationError),
        ({"namespace": ""}, ConfigurationError),
    ],
)
def test_bad_options_are_refused_at_decoration(
    cache: Cache, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        cached(cache, **options)


def test_what_cannot_be_cached_is_refused_at_decoration(cache: Cache) -> None:
    with pytest.raises(ConfigurationError, match="Cache"):
        cached(lambda: 1)  # type: ignore[arg-type]  # @cached without its cache

    async def coroutine() -> int:
        return 1

    def generator() -> Any:
        yield 1

    with pytest.raises(TypeError, match="async"):
        cached(cache)(coroutine)
    with pytest.raises(TypeError, match="generator"):
        cached(cache)(generator)
