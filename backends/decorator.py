"""``@cached``: a function's results kept in a :class:`~cachespec.backends.cache.Cache`.

    cache = Cache(open_backend("redis://localhost/0"), default_ttl=300)

    @cached(cache, ttl=60)
    def price_of(sku: str, currency: str = "EUR") -> float: ...

    price_of("A1")                 # computed once, then read from the cache
    price_of.invalidate("A1")      # the next call computes again

Every call goes through :meth:`Cache.get_or_compute`, so a decorated function gets its
single-flight, its guarded fill, its early refresh and its tolerance of a failing cache.

The key is the function's module and qualified name, then its arguments as the function
binds them (docs/design.md, "@cached"): ``price_of("A1")``, ``price_of(sku="A1")`` and
``price_of("A1", "EUR")`` are one key. Arguments must have a stable text form (None, bool,
int, float, str, bytes, an Enum member, or a tuple or frozenset of those); anything else
needs ``key=``, because a default ``repr`` that names a memory address would give a key no
other process, and no later call, ever computes. Numbers equal in Python (``1``, ``1.0``,
``True``) are one key, as in :func:`functools.lru_cache`; ``typed=True`` tells them apart.
"""

from __future__ import annotations

import copy
import enum
import functools
import inspect
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from cachespec.spec import validate_ttl

from .cache import DEFAULT_TTL, Cache, _Default
from .contract import ConfigurationError

R = TypeVar("R")
KeyFunction = Callable[..., str]

_SELF_NAMES = ("self", "cls")
_UNSET: Any = object()  # an argument the call did not pass (its default applies)


def _canonical(value: object, typed: bool, argument: str, function: str) -> str:
    """``value``'s text in a key: one text for values that are one key, and a TypeError for a
    value with no stable text. A subclass is written as its base (its own ``__repr__`` could
    say anything), and an Enum member with its class's module, so that two enums of one name
    never share a key."""
    kind = type(value)
    if kind is str and not typed:  # the usual argument, at the cost of one check
        return str.__repr__(value)
    where = f"argument {argument!r} of {function}()"
    if value is None:
        text = "None"
    elif isinstance(value, enum.Enum):  # before int: an IntEnum member is an int too
        if not typed and isinstance(value, str | bytes | int | float):
            # An IntEnum (or str-valued) member equals its value in Python: one key, as for
            # 1 and 1.0, and the same whichever of the two a process met first.
            return _canonical(value.value, typed, argument, function)
        text = f"{kind.__module__}.{kind.__qualname__}.{value.name}"
    elif isinstance(value, str):
        text = str.__repr__(value)
    elif isinstance(value, bytes):
        text = bytes.__repr__(value)
    elif isinstance(value, bool):  # True == 1, and one key unless typed
        text = repr(bool(value)) if typed else str(int(value))
    elif isinstance(value, int):
        try:
            text = int.__repr__(value)
        except ValueError as exc:  # past the interpreter's digit limit
            raise TypeError(f"{where} has too many digits for a key: {exc}") from None
    elif isinstance(value, float):
        if math.isnan(value):
            # NaN != NaN: no call's NaN is another's, so no key may be shared.
            raise TypeError(f"{where} is NaN, which equals nothing: no key can stand for it")
        integral = not typed and value.is_integer()  # 1.0 == 1: one key, as lru_cache makes
        text = int.__repr__(int(value)) if integral else float.__repr__(value)
    elif isinstance(value, tuple):
        text = "(" + ",".join(_canonical(item, typed, argument, function) for item in value) + ")"
    elif isinstance(value, frozenset):
        items = (_canonical(item, typed, argument, function) for item in value)
        text = "{" + ",".join(sorted(items)) + "}"
    else:
        raise TypeError(
            f"{where} is a {kind.__name__}, which has no stable text for a cache key; "
            "pass key=... to @cached to say how such calls are keyed"
        )
    return f"{kind.__name__}:{text}" if typed else text


def _prefix(function: Callable[..., Any], namespace: str | None) -> str:
    """The key prefix of ``function``: its module and qualified name, unless those do not
    name it alone (a lambda, a function made inside another: every closure a factory makes
    has one qualified name), which then need a ``namespace`` of their own."""
    if namespace is not None:
        return namespace
    qualname = getattr(function, "__qualname__", None)
    module = getattr(function, "__module__", None)
    if not isinstance(qualname, str) or "<lambda>" in qualname or "<locals>" in qualname:
        raise TypeError(
            f"@cached cannot key {function!r} by its name: "
            + (
                "it has none"
                if not isinstance(qualname, str)
                else f"{qualname!r} may name other functions too (a lambda, or a function "
                "defined inside another)"
            )
            + "; pass namespace='...' to name its keys"
        )
    return f"{module}:{qualname}"


class CachedFunction(Generic[R]):
    """A function whose calls are cached: call it as the function, and ``invalidate`` it
    with the same arguments. On a class, it binds like a method."""

    def __init__(
        self,
        function: Callable[..., R],
        cache: Cache,
        *,
        ttl: float | _Default | None,
        key: KeyFunction | None,
        typed: bool,
        namespace: str | None,
        instance: object = None,
    ) -> None:
        self.__wrapped__ = function
        functools.update_wrapper(self, function)
        self.cache = cache
        self._ttl = ttl
        self._key = key
        self._typed = typed
        self._prefix = _prefix(function, namespace)
        self._name = getattr(function, "__qualname__", repr(function))  # for messages
        self._signature = inspect.signature(function)
        names = list(self._signature.parameters)
        parameters = list(self._signature.parameters.values())
        plain = inspect.Parameter.POSITIONAL_OR_KEYWORD
        self._simple = all(parameter.kind is plain for parameter in parameters)
        self._names = tuple(names)
        self._index = {name: index for index, name in enumerate(names)}
        self._defaults = tuple(parameter.default for parameter in parameters)
        # Per function, and per bound method copy (whose calls it never serves: see key_for).
        self._positional_key: Callable[[tuple[Any, ...]], str] = functools.lru_cache(maxsize=1024)(
            lambda args: self._key_of(args, {})
        )
        # A method's self (or cls) is not part of its key: every instance shares the result,
        # as dogpile's cache_on_arguments does. A key function can put it back.
        self._skips_self = bool(names) and names[0] in _SELF_NAMES
        self._instance = instance

    def __get__(self, instance: object, owner: type | None = None) -> CachedFunction[R]:
        if instance is None:
            return self
        bound = copy.copy(self)  # the signature and prefix as they are: binding is cheap
        bound._instance = instance
        return bound

    def _arguments(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return args if self._instance is None else (self._instance, *args)

    def key_for(self, *args: Any, **kwargs: Any) -> str:
        """The cache key of the call ``self(*args, **kwargs)``."""
        if not kwargs and self._instance is None and self._key is None and not self._typed:
            # The usual call, positional arguments only: its key is remembered, as building
            # it costs more than the rest of a hit. Equal arguments give one key anyway (not
            # under typed=True, where 1 and 1.0 nested in a tuple are equal and two keys); an
            # unhashable argument is keyed the long way.
            try:
                return self._positional_key(args)
            except TypeError:
                pass
        return self._key_of(args, kwargs)

    def _key_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        args = self._arguments(args)
        if self._key is not None:
            text = self._key(*args, **kwargs)
            if not isinstance(text, str):
                raise TypeError(
                    f"the key function of {self._name}() returned a "
                    f"{type(text).__name__}, not a str"
                )
            return f"{self._prefix}:{text}" if self._prefix else text
        parts = self._parts(args, kwargs) if self._simple else self._bound_parts(args, kwargs)
        return f"{self._prefix}({', '.join(parts)})"

    def _parts(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
        """The key's parts for a signature of plain parameters (no ``*``, ``**`` or
        keyword-only ones): what :meth:`_bound_parts` gives, without ``Signature.bind``,
        which costs several times the rest of a hit."""
        names, count = self._names, len(self._names)
        if len(args) > count:
            raise TypeError(f"{self._name}() takes {count} arguments, got {len(args)}")
        values = [*args, *([_UNSET] * (count - len(args)))]
        for name, value in kwargs.items():
            index = self._index.get(name)
            if index is None:
                raise TypeError(f"{self._name}() got an unexpected keyword argument {name!r}")
            if values[index] is not _UNSET:
                raise TypeError(f"{self._name}() got multiple values for argument {name!r}")
            values[index] = value
        parts = []
        for index in range(1 if self._skips_self else 0, count):
            value = values[index]
            if value is _UNSET:
                value = self._defaults[index]
                if value is inspect.Parameter.empty:
                    raise TypeError(f"{self._name}() missing argument {names[index]!r}")
            parts.append(
                f"{names[index]}={_canonical(value, self._typed, names[index], self._name)}"
            )
        return parts

    def _bound_parts(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
        """The key's parts for any signature, through ``Signature.bind``."""
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self._name}(): {exc}") from None
        bound.apply_defaults()
        parts = []
        for index, (name, value) in enumerate(bound.arguments.items()):
            if index == 0 and self._skips_self:
                continue
            kind = self._signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                parts.append("*" + _canonical(tuple(value), self._typed, name, self._name))
            elif kind is inspect.Parameter.VAR_KEYWORD:
                # Any str can name a keyword here: quoted, so no name can pass for a part
                # of the key ("a=1, b").
                for k, v in sorted(value.items()):
                    parts.append(f"**{k!r}={_canonical(v, self._typed, name, self._name)}")
            else:
                parts.append(f"{name}={_canonical(value, self._typed, name, self._name)}")
        return parts

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        key = self.key_for(*args, **kwargs)
        full = self._arguments(args)
        return self.cache.get_or_compute(
            key, lambda: self.__wrapped__(*full, **kwargs), ttl=self._ttl
        )

    def with_ttl(self, ttl: float | None) -> Callable[..., R]:
        """The function with this one call's TTL in place of the decorator's:
        ``price_of.with_ttl(5)("A1")`` (the same key as ``price_of("A1")``)."""
        seconds = validate_ttl(ttl)  # TypeError or ValueError now, before anything runs

        def call(*args: Any, **kwargs: Any) -> R:
            key = self.key_for(*args, **kwargs)
            full = self._arguments(args)
            return self.cache.get_or_compute(
                key, lambda: self.__wrapped__(*full, **kwargs), ttl=seconds
            )

        return call

    def invalidate(self, *args: Any, **kwargs: Any) -> None:
        """Forget the result of the call with these arguments (the next one computes)."""
        self.cache.invalidate(self.key_for(*args, **kwargs))


def cached(
    cache: Cache,
    *,
    ttl: float | _Default | None = DEFAULT_TTL,
    key: KeyFunction | None = None,
    typed: bool = False,
    namespace: str | None = None,
) -> Callable[[Callable[..., R]], CachedFunction[R]]:
    """Cache a function's results in ``cache`` (see the module docstring).

    ``ttl``: this function's entries' TTL (the cache's ``default_ttl`` by default). ``key``:
    a function of the call's arguments (``self`` included, for a method) that returns the
    key's text, in place of the arguments' own. ``typed``: ``1`` and ``1.0`` are two keys.
    ``namespace``: the key's prefix in place of the module and qualified name (for a
    function that moves between modules and must keep its entries); ``""`` with ``key=``
    makes the key function's text the whole key, for code that addresses the same entries
    by its own keys (``cache.invalidate("product:42")``).
    """
    if not isinstance(cache, Cache):
        raise ConfigurationError(
            f"@cached takes the Cache to keep results in, as @cached(cache), got {cache!r}"
        )
    if ttl is not DEFAULT_TTL:
        validate_ttl(ttl)  # TypeError or ValueError now, not at the first call
    if key is not None and not callable(key):
        raise ConfigurationError(f"key must be a function of the call's arguments, got {key!r}")
    if namespace is not None and not isinstance(namespace, str):
        raise ConfigurationError(f"namespace must be a str, got {namespace!r}")
    if namespace == "" and key is None:
        # No prefix: the key function's text is the whole key. Without one, the arguments'
        # text alone would be the key, shared by every function keyed that way.
        raise ConfigurationError("namespace='' (keys without a prefix) needs key=...")

    def decorate(function: Callable[..., R]) -> CachedFunction[R]:
        if not callable(function):
            raise TypeError(f"@cached decorates a function, got {function!r}")
        name = getattr(function, "__qualname__", repr(function))
        if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
            raise TypeError(
                f"@cached cannot cache {name}: it is async, and the cache "
                "would keep the coroutine, not its result"
            )
        if inspect.isgeneratorfunction(function):
            raise TypeError(
                f"@cached cannot cache {name}: it is a generator, and a generator can be read once"
            )
        cached_function = CachedFunction(
            function, cache, ttl=ttl, key=key, typed=typed, namespace=namespace
        )
        if key is None:
            _refuse_unkeyable_annotations(function, skip_first=cached_function._skips_self)
        return cached_function

    return decorate


def _refuse_unkeyable_annotations(function: Callable[..., Any], *, skip_first: bool) -> None:
    """A parameter annotated with a type that has no stable text (``dict``, ``list[int]``,
    a class of the user's) is refused now, at decoration, naming ``key=``: the first call
    would refuse it anyway. Annotations that cannot be read, or say nothing (``Any``), pass:
    the arguments themselves are checked at each call."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:
        return
    parameters = list(inspect.signature(function).parameters.values())
    for parameter in parameters[1:] if skip_first else parameters:
        if parameter.name not in hints:
            continue
        why = _unkeyable(hints[parameter.name])
        if why is not None:
            raise TypeError(
                f"@cached cannot key {getattr(function, '__qualname__', function)!r} by its "
                f"arguments: {parameter.name!r} is annotated {why}, which has no stable text "
                "for a key; pass key=... to say how such calls are keyed"
            )


_KEYABLE_BASES = (str, bytes, int, float, enum.Enum, type(None))


def _unkeyable(annotation: Any) -> str | None:
    """What in ``annotation`` has no stable text for a key, or None (keyable, or unknown)."""
    if annotation is typing.Any:  # a class since Python 3.11: it says nothing
        return None
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return next((why for arg in typing.get_args(annotation) if (why := _unkeyable(arg))), None)
    if origin is typing.Literal or origin is typing.Annotated:
        return None if origin is typing.Literal else _unkeyable(typing.get_args(annotation)[0])
    if origin in (tuple, frozenset):
        args = [arg for arg in typing.get_args(annotation) if arg is not Ellipsis]
        return next((why for arg in args if (why := _unkeyable(arg))), None)
    if origin is not None:  # list[int], dict[str, int], collections.abc.Mapping[...]
        return repr(annotation)
    supertype = getattr(annotation, "__supertype__", None)  # a NewType
    if supertype is not None:
        return _unkeyable(supertype)
    if isinstance(annotation, type):
        if annotation in (tuple, frozenset, object) or issubclass(annotation, _KEYABLE_BASES):
            return None
        return annotation.__qualname__
    return None  # Any, a TypeVar, a string the hints could not resolve: said at the call


__all__ = ["CachedFunction", "cached"]
