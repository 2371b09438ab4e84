"""@cached: one key per call however it is spelt, methods, invalidation, and bad use refused."""

from __future__ import annotations

import enum
import functools
import typing
from typing import Any

import pytest
from herds import Herd

from cachespec import Cache, ConfigurationError, MemoryBackend, cached
from cachespec.backends import CachedFunction
from cachespec.conformance import ManualClock, run_suite


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cache(clock: ManualClock) -> Cache:
    return Cache(MemoryBackend(clock=clock), clock=clock, default_ttl=300)


class Colour(enum.Enum):
    RED = 1


class OtherColour(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


@cached(Cache(MemoryBackend()))
def module_level(x: int) -> int:
    return 2 * x


@cached(Cache(MemoryBackend()))
def module_level_pair(sku: object, currency: object = "EUR") -> float:
    return 1.0


def test_every_spelling_of_a_call_is_one_key_and_computes_once(cache: Cache) -> None:
    calls: list[tuple[str, str]] = []

    @cached(cache, namespace="t1")
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
    @cached(cache, namespace="t2")
    def loose(x: object) -> str:
        return type(x).__name__

    @cached(cache, typed=True, namespace="t3")
    def strict(x: object) -> str:
        return type(x).__name__

    assert loose.key_for(1) == loose.key_for(1.0) == loose.key_for(True)
    assert len({strict.key_for(1), strict.key_for(1.0), strict.key_for(True)}) == 3
    assert strict(1) == "int"
    assert strict(1.0) == "float"


def test_keys_name_the_module_and_qualified_name() -> None:
    assert module_level.key_for(1) == f"{__name__}:module_level(x=1)"
    assert module_level(2) == 4


def test_functions_a_name_does_not_tell_apart_need_a_namespace(cache: Cache) -> None:
    """Every closure a factory makes, and every lambda, has one qualified name: keyed by it,
    two of them would answer each other's calls."""

    def make(rate: float, namespace: str | None = None) -> CachedFunction[float]:
        def price(sku: str) -> float:
            return 100 * rate

        if namespace is None:
            return cached(cache)(price)
        return cached(cache, namespace=namespace)(price)

    with pytest.raises(TypeError, match="namespace="):
        make(1.0)
    with pytest.raises(TypeError, match="namespace="):
        cached(cache)(lambda x: x)
    with pytest.raises(TypeError, match="namespace="):
        cached(cache)(functools.partial(module_level.__wrapped__, 1))
    assert make(1.0, "rate-1")("A") == 100.0
    assert make(1.5, "rate-1.5")("A") == 150.0


def test_structured_arguments_and_var_arguments_are_keyed(cache: Cache) -> None:
    @cached(cache, namespace="t4")
    def f(*parts: object, **options: object) -> int:
        return len(parts) + len(options)

    assert f.key_for(1, (2, "x"), b"y", None, Colour.RED, frozenset({2, 1})) == f.key_for(
        1, (2, "x"), b"y", None, Colour.RED, frozenset({1, 2})
    )
    assert f.key_for(a=1, b=2) == f.key_for(b=2, a=1)
    assert f.key_for("1") != f.key_for(1)
    assert f(1, 2, a=3) == 3


def test_lookalike_arguments_get_keys_of_their_own(cache: Cache) -> None:
    @cached(cache, namespace="lookalikes")
    def f(*args: object, **kwargs: object) -> int:
        return 0

    class Shouting(str):
        def __repr__(self) -> str:
            return "'B'"

    assert f.key_for(Colour.RED) != f.key_for(OtherColour.RED)  # same names, two enums
    assert f.key_for(Level.HIGH) == f.key_for(3)  # an IntEnum member equals its value
    assert f.key_for(3) == f.key_for(Level.HIGH)  # whichever was asked for first
    assert f.key_for(**{"a=1, b": 2}) != f.key_for(a=1, b=2)  # a keyword that looks like two
    assert f.key_for(Shouting("a")) == f.key_for("a") != f.key_for("B")  # not its own repr


def test_an_argument_without_a_stable_text_needs_a_key_function(cache: Cache) -> None:
    calls = []

    @cached(cache, namespace="t5")
    def f(x: object) -> int:
        calls.append(x)
        return 1

    with pytest.raises(TypeError, match=r"argument 'x' of .*f\(\) is a dict.*key="):
        f({"a": 1})
    with pytest.raises(TypeError, match="NaN"):
        f(float("nan"))
    assert calls == []  # refused before the function ran

    @cached(cache, key=lambda x: ",".join(sorted(x)), namespace="t6")
    def g(x: dict[str, int]) -> int:
        return len(x)

    assert g({"a": 1, "b": 2}) == 2
    assert g({"b": 0, "a": 0}) == 2  # the key function says these are one call


def test_methods_leave_self_out_unless_the_key_function_uses_it(cache: Cache) -> None:
    class Shop:
        computed = 0

        def __init__(self, name: str) -> None:
            self.name = name

        @cached(cache, namespace="t7")
        def price(self, sku: str) -> float:
            Shop.computed += 1
            return 1.0

        @cached(cache, key=lambda self, sku: f"{self.name}/{sku}", namespace="t8")
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

    @cached(cache, namespace="t9")
    def f(x: int) -> int:
        return next(results)

    assert (f(1), f(2)) == (0, 1)
    f.invalidate(x=1)
    assert (f(1), f(2)) == (2, 1)


def test_the_ttl_is_the_functions_own(cache: Cache, clock: ManualClock) -> None:
    results = iter(range(100))

    @cached(cache, ttl=10, namespace="t10")
    def f() -> int:
        return next(results)

    assert f() == 0
    clock.advance(9.999)
    assert f() == 0
    clock.advance(0.001)
    assert f() == 1


def test_concurrent_misses_run_the_function_once() -> None:
    herd = Herd("v")
    cache = Cache(MemoryBackend(), flight_wait=herd.wait)

    @cached(cache, namespace="t11")
    def slow() -> object:
        return herd.compute()

    assert herd.run(slow, others=4) == ["v"] * 5
    assert herd.computes == 1


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"ttl": 0}, ValueError),
        ({"ttl": "10"}, TypeError),
        ({"key": "not callable"}, ConfigurationError),
        ({"namespace": ""}, ConfigurationError),  # no prefix, and no key function
        ({"namespace": 3}, ConfigurationError),
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


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("A1",), {}),
        ((), {"sku": "A1"}),
        (("A1", "USD"), {}),
        (("A1",), {"currency": "USD"}),
        ((), {"currency": "USD", "sku": "A1"}),
        ((Colour.RED, (1, 2.0)), {}),
    ],
)
def test_the_fast_key_is_the_bound_key(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    """Plain signatures skip Signature.bind: the key must be the one bind gives."""
    assert module_level_pair._simple
    fast = module_level_pair._parts(args, kwargs)
    assert fast == module_level_pair._bound_parts(args, kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("A", "B", "C"), {}, "takes 2 arguments"),
        ((), {}, "missing argument 'sku'"),
        (("A",), {"sku": "B"}, "multiple values for argument 'sku'"),
        (("A",), {"colour": "B"}, "unexpected keyword argument 'colour'"),
    ],
)
def test_a_call_that_does_not_fit_the_signature_is_a_type_error(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        module_level_pair.key_for(*args, **kwargs)
    with pytest.raises(TypeError):
        module_level_pair._bound_parts(args, kwargs)  # bind refuses it too


def test_one_call_may_carry_its_own_ttl(cache: Cache, clock: ManualClock) -> None:
    results = iter(range(100))

    @cached(cache, ttl=600, namespace="per-call")
    def f(x: int) -> int:
        return next(results)

    assert f.with_ttl(5)(1) == 0  # filled for 5 s, under f(1)'s key
    assert f(1) == 0
    clock.advance(5)
    assert f(1) == 1  # the 5 s fill expired; this one lives the decorator's 600 s
    clock.advance(60)
    assert f(1) == 1
    with pytest.raises(ValueError, match="greater than 0"):
        f.with_ttl(0)


def test_without_a_prefix_the_key_function_names_the_entry_other_code_uses(
    cache: Cache,
) -> None:
    @cached(cache, namespace="", key=lambda product: f"product:{product}")
    def price(product: int) -> float:
        return 9.5

    assert price(42) == 9.5
    assert cache.get("product:42") == 9.5  # the entry the rest of the app knows
    cache.invalidate("product:42")
    assert price.key_for(42) == "product:42"


def test_the_strategies_through_the_decorator_keep_every_bound() -> None:
    """`cachespec check --strategy decorated`: the staleness and efficacy properties, with
    every cache-aside read through @cached (its mutant: tests/strategy_mutants.py,
    MemoizingDecorator)."""
    report = run_suite(
        "memory://", seed=1, strategy="decorated", only=["staleness.*", "efficacy.*"]
    )
    assert report.strategy == "decorated"
    assert report.failed() == []
    assert report.checked >= 8


class Product:
    """A class of the user's: no stable text for a key."""


Sku = typing.NewType("Sku", str)
Choice = typing.Literal["x", "y"]


def test_a_parameter_annotated_with_no_stable_text_is_refused_at_decoration(
    cache: Cache,
) -> None:
    def takes_dict(x: dict[str, int]) -> int:
        return 0

    def takes_list(x: int, y: list[int] | None = None) -> int:
        return 0

    def takes_product(product: Product) -> int:
        return 0

    for function in (takes_dict, takes_list, takes_product):
        with pytest.raises(TypeError, match=r"annotated .* key="):
            cached(cache, namespace="refused")(function)
    # With a key function, the arguments' text is not needed.
    cached(cache, namespace="keyed", key=lambda product: "p")(takes_product)


def test_keyable_annotations_pass_at_decoration(cache: Cache) -> None:
    def keyable(  # noqa: PLR0917 - one parameter per kind of annotation
        a: str,
        b: int | None,
        c: tuple[str, ...],
        d: Colour,
        e: Sku,
        f: Choice,
        g: frozenset[int],
        h: typing.Any,
    ) -> int:
        return 0

    cached(cache, namespace="keyable")(keyable)
