"""The suite as pytest tests, for a third party's own test file.

Three lines check a backend in an existing pytest run::

    from cachespec.conformance import conformance_tests
    from mypkg.cache import make_backend          # make_backend(clock) -> a Backend

    TestMyBackend = conformance_tests(make_backend)

``strategy=`` checks a cache-aside or decorator of one's own over it (``"module:Class"``, a
reader function, or a :class:`~cachespec.conformance.staleness.Strategies`), against what
its ``promises`` declare (docs/design.md, "Strategy promises").

Each property becomes one test (``test_ttl_expires``, ...). A property the backend's
guarantees exclude is skipped with the reason; ``expected_failures`` are strict: a
property declared as failing that holds fails the test. With no backend argument the
backend comes from ``pytest --cachespec-backend URL`` (the plugin's option).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from .properties import PROPERTIES, Property
from .runner import SIZES, run_property
from .target import Target, resolve_target
from .under_test import Strategies, resolve_strategies


class _Run:
    """What a test class shares: the target, its guarantees, the budget, the seed."""

    def __init__(self, target: Target, size: str, seed: int) -> None:
        self.target = target
        self.guarantees = target.guarantees()
        self.budget = SIZES[size]
        self.seed = seed


def _target_of(backend: str | Callable[..., Any] | Target) -> Target:
    if isinstance(backend, Target):
        return backend
    if isinstance(backend, str):
        return resolve_target(backend)
    name = f"{getattr(backend, '__module__', '?')}:{getattr(backend, '__qualname__', backend)}"
    return Target(name, backend)


def _test_for(prop: Property) -> Callable[[Any, _Run], None]:
    def test(self: Any, cachespec_run: _Run) -> None:
        import pytest

        result = run_property(
            prop,
            cachespec_run.target,
            cachespec_run.guarantees,
            cachespec_run.budget,
            cachespec_run.seed,
        )
        if result.status == "skip":
            pytest.skip(result.reason)
        if result.status == "fail":
            text = f"{prop.id}: {prop.promise}\n{result.reason}"
            if result.counterexample:
                text += "\n\ncounterexample (runs as Python):\n" + result.counterexample
            text += f"\n\nreproduce with --cachespec-seed {cachespec_run.seed}"
            pytest.fail(text, pytrace=False)

    test.__name__ = "test_" + prop.id.replace(".", "_")
    test.__doc__ = prop.promise
    return test


def conformance_tests(
    backend: str | Callable[..., Any] | Target | None = None,
    *,
    size: str | None = None,
    seed: int | None = None,
    strategy: str | Strategies | None = None,
) -> type:
    """A pytest test class with one test per property, checking ``backend``.

    ``backend``: a URL, ``"module:callable"``, a factory ``f(clock)`` / ``f(clock,
    namespace)``, or ``None`` for the ``--cachespec-backend`` option. ``size`` and ``seed``
    default to ``--cachespec-size`` / ``--cachespec-seed``. ``strategy``: the strategy
    implementations the strategy properties run (ours by default).
    """
    import pytest

    def cachespec_run(cls: type, request: pytest.FixtureRequest) -> _Run:
        config = request.config
        chosen = backend if backend is not None else config.getoption("cachespec_backend", None)
        if chosen is None:
            raise pytest.UsageError(
                "cachespec: no backend to check; pass --cachespec-backend URL "
                "or give conformance_tests() a backend"
            )
        run_size = size or config.getoption("cachespec_size", None) or "default"
        run_seed = seed if seed is not None else config.getoption("cachespec_seed", None)
        if run_seed is None:
            run_seed = random.SystemRandom().randrange(2**32)
        target = _target_of(chosen)
        if strategy is not None:
            target.strategies = resolve_strategies(strategy)
            target.strategy_spec = strategy if isinstance(strategy, str) else None
        return _Run(target, run_size, run_seed)

    # The plugin refuses, once and before any test runs, a class with no backend to check.
    namespace: dict[str, Any] = {
        # A class-scoped fixture must be a classmethod (pytest 9).
        # (pytest accepts it at run time; its typing of fixture() does not say so yet.)
        "cachespec_run": pytest.fixture(scope="class")(classmethod(cachespec_run)),  # type: ignore[arg-type]
        "cachespec_needs_option": backend is None,
    }
    for prop in PROPERTIES:
        namespace["test_" + prop.id.replace(".", "_")] = _test_for(prop)
    return type("ConformanceTests", (), namespace)
