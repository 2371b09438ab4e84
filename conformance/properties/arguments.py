"""Argument checking: bad keys, values and TTLs get a typed error, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st

from cachespec.backends import NO_VALUE, Backend, Unsupported
from cachespec.spec import Guarantees

from ..checks import Check, GivenCheck
from ..pools import (
    BAD_KEYS,
    BAD_VALUES,
    INVALID_TTLS,
)
from ..target import Target
from .base import (
    PROPERTIES,
    Property,
    always,
    fresh_backend,
)


# ------------------------------------------------------------------- argument checking
def _expect(exc_type: type[Exception], call: Callable[[], object], what: str) -> None:
    try:
        call()
    except exc_type:
        return
    except Exception as exc:
        raise AssertionError(
            f"{what} raised {type(exc).__name__}: {exc}; expected {exc_type.__name__}"
        ) from exc
    raise AssertionError(f"{what} returned normally; expected {exc_type.__name__}")


def _untouched(backend: Backend, what: str, **expected: object) -> None:
    for key, value in expected.items():
        found = backend.get(key)
        if found is not value and found != value:
            raise AssertionError(
                f"after the refused call {what}, get({key!r}) returned {found!r}; "
                f"expected {value!r}: a refused call must write nothing"
            )


_KEY_OPS: dict[str, Callable[[Backend, Any], object]] = {
    "get": lambda b, k: b.get(k),
    "set": lambda b, k: b.set(k, b"v"),
    "add": lambda b, k: b.add(k, b"v"),
    "delete": lambda b, k: b.delete(k),
    "get_many": lambda b, k: b.get_many(["k", k]),
    "set_many": lambda b, k: b.set_many({"k": b"new", k: b"v"}),
    "delete_many": lambda b, k: b.delete_many(["k", k]),
}


def _offered(ops: list[str], g: Guarantees) -> list[str]:
    """``ops`` without ``add`` where the backend declares add=False (Guarantees.add)."""
    return [op for op in ops if g.add or op != "add"]


def _keys_type(target: Target, g: Guarantees) -> Check:
    def body(case: tuple[object, str]) -> None:
        bad, op = case
        session, backend = fresh_backend(target)
        try:
            backend.set("k", b"old")
            what = f"{op} with key {bad!r}"
            _expect(TypeError, lambda: _KEY_OPS[op](backend, bad), what)
            _untouched(backend, what, k=b"old")
            if op in ("set", "add", "set_many") and isinstance(bad, (int, float, bytes)):
                coerced = bad.decode() if isinstance(bad, bytes) else str(bad)
                _untouched(backend, what, **{coerced: NO_VALUE})
        finally:
            session.close()

    hashable = [k for k in BAD_KEYS if not isinstance(k, list)]
    single = _offered(["get", "set", "add", "delete"], g)
    cases = st.one_of(
        st.tuples(st.sampled_from(BAD_KEYS), st.sampled_from(single)),
        st.tuples(st.sampled_from(hashable), st.sampled_from(_offered(list(_KEY_OPS), g))),
    )
    return GivenCheck("keys_type", cases, body)


def _refusals(
    name: str,
    target: Target,
    g: Guarantees,
    *,
    ops: dict[str, Callable[[Backend, Any], object]],
    bad: Sequence[tuple[object, type[Exception]]],
    shown: str,
) -> Check:
    """Each call in ``ops`` with each bad argument raises its exception and writes nothing."""

    def body(case: tuple[tuple[object, type[Exception]], str]) -> None:
        (argument, exc_type), op = case
        session, backend = fresh_backend(target)
        try:
            backend.set("k", b"old")
            what = f"{op} with {shown}{argument!r}"
            _expect(exc_type, lambda: ops[op](backend, argument), what)
            _untouched(backend, what, k=b"old", j=NO_VALUE, n=NO_VALUE)
        finally:
            session.close()

    cases = st.tuples(st.sampled_from(bad), st.sampled_from(_offered(list(ops), g)))
    return GivenCheck(name, cases, body)


def _values_type(target: Target, g: Guarantees) -> Check:
    ops: dict[str, Callable[[Backend, Any], object]] = {
        "set": lambda b, v: b.set("k", v),
        "add": lambda b, v: b.add("n", v),
        "set_many": lambda b, v: b.set_many({"j": b"ok", "k": v}),
    }
    bad = [(value, TypeError) for value in BAD_VALUES]
    return _refusals("values_type", target, g, ops=ops, bad=bad, shown="value ")


def _ttl_invalid(target: Target, g: Guarantees) -> Check:
    ops: dict[str, Callable[[Backend, Any], object]] = {
        "set": lambda b, t: b.set("k", b"new", t),
        "add": lambda b, t: b.add("n", b"new", t),
        "set_many": lambda b, t: b.set_many({"k": b"new", "j": b"new"}, t),
    }
    return _refusals("ttl_invalid", target, g, ops=ops, bad=INVALID_TTLS, shown="ttl=")


def _add_refused(target: Target, g: Guarantees) -> Check:
    """Declared add=False: add raises Unsupported, over a live key or an absent one, and
    writes nothing, as ops.clear holds a declared clear=False to (Guarantees.add)."""
    ttls: list[float | None] = [None, 30.0] if g.ttl.per_entry else [None]

    def body(case: tuple[str, float | None]) -> None:
        key, ttl = case
        session, backend = fresh_backend(target)
        try:
            backend.set("k", b"old")
            what = f"add({key!r}, b'new', {ttl!r}) (the backend declares add=False)"
            _expect(Unsupported, lambda: backend.add(key, b"new", ttl), what)
            _untouched(backend, what, k=b"old", n=NO_VALUE)
        finally:
            session.close()

    return GivenCheck(
        "add_refused", st.tuples(st.sampled_from(["k", "n"]), st.sampled_from(ttls)), body
    )


def _declares_no_add(g: Guarantees) -> str | None:
    return "the backend offers add (ops.add checks it)" if g.add else None


PROPERTIES.extend(
    [
        Property(
            "ops.add_refused",
            "declared add=False, add raises Unsupported and writes nothing",
            _declares_no_add,
            _add_refused,
            examples=10,
            cost=0.002,
        ),
        Property(
            "keys.type",
            "a key that is not a str raises TypeError, and nothing is written",
            always,
            _keys_type,
            examples=100,
            cost=0.002,
        ),
        Property(
            "values.type",
            "a value that is not bytes raises TypeError, and nothing is written",
            always,
            _values_type,
            examples=100,
            cost=0.002,
        ),
        Property(
            "ttl.invalid",
            "0, negative, NaN, infinite TTLs raise ValueError; bools and non-numbers "
            "TypeError; nothing is written",
            always,
            _ttl_invalid,
            examples=100,
            cost=0.002,
        ),
    ]
)
