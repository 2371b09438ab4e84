"""What a `mypy --strict` user writes, type-checked by the tox `type` env (mypy reads this
file as well as running it): no cast is needed to use what a cache returns."""

from __future__ import annotations

from typing_extensions import assert_type  # typing has it from 3.11; mypy brings this

from cachespec import NO_VALUE, Cache, MemoryBackend, NoValue, cached


def test_a_typed_cache_returns_its_type_without_a_cast() -> None:
    prices: Cache[float] = Cache(MemoryBackend())
    prices.set("a", 1.5)
    found = prices.get("a")
    assert_type(found, float | NoValue)
    if found is not NO_VALUE:
        total: float = found + 1.0  # a float, as far as mypy knows: no cast
        assert total == 2.5
    assert_type(prices.get_many(["a"]), dict[str, float])


def test_get_or_compute_returns_what_compute_returns() -> None:
    cache = Cache(MemoryBackend())  # unannotated: values of any type

    def name() -> str:
        return "x"

    assert_type(cache.get_or_compute("k", name), str)
    assert cache.get_or_compute("k", name).upper() == "X"


def test_a_cached_function_keeps_its_return_type() -> None:
    cache = Cache(MemoryBackend())

    @cached(cache, namespace="typed")
    def double(x: int) -> int:
        return 2 * x

    assert_type(double(2), int)
    assert double(2) == 4
