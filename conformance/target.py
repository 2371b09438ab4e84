"""What the suite checks: a target hands out sessions, each a fresh backend on a harness clock.

* ``memory://...`` or any registered URL: built in this process with :func:`open_backend`.
* ``module:callable``: a third party's factory, called as ``factory(clock)`` or
  ``factory(clock, namespace)``; it returns a backend whose ``guarantees`` say what it
  promises. The clock is a :class:`~cachespec.conformance.clock.ManualClock`: call it for
  the time in seconds; the harness moves it.

Each example of each property gets a new session, so examples never see each other's data.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from cachespec.backends import Backend, ConfigurationError, open_backend
from cachespec.spec import Guarantees

from .clock import HarnessClock, ManualClock

BackendFactory = Callable[..., Backend]


class TargetError(Exception):
    """The target could not be resolved or reached (a usage error: exit status 2)."""


class Session:
    """One example's world: a clock and the backends (one per namespace) that follow it."""

    def __init__(self, clock: HarnessClock, open_namespace: Callable[[str], Backend]) -> None:
        self.clock = clock
        self._open_namespace = open_namespace
        self._opened: list[Backend] = []

    def backend(self, namespace: str = "main") -> Backend:
        backend = self._open_namespace(namespace)
        self._opened.append(backend)
        return backend

    def close(self) -> None:
        for backend in self._opened:
            backend.close()
        self._opened.clear()


class Target:
    """A backend family the suite can open sessions on."""

    def __init__(self, name: str, factory: BackendFactory) -> None:
        self.name = name
        self._factory = factory
        try:
            parameters = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            parameters = {}  # type: ignore[assignment]
        self._takes_namespace = "namespace" in parameters

    def session(self) -> Session:
        clock = ManualClock()

        def open_namespace(namespace: str) -> Backend:
            if self._takes_namespace:
                backend = self._factory(clock, namespace=namespace)
            else:
                backend = self._factory(clock)
            guarantees = getattr(backend, "guarantees", None)
            if not isinstance(guarantees, Guarantees):
                raise TargetError(
                    f"{self.name}: the factory returned {type(backend).__name__} without a "
                    "`guarantees` attribute (a cachespec.Guarantees)"
                )
            return backend

        return Session(clock, open_namespace)

    def guarantees(self) -> Guarantees:
        session = self.session()
        try:
            return session.backend().guarantees
        finally:
            session.close()

    def close(self) -> None:
        """Release what the target holds (servers it started); sessions are closed already."""


def _url_factory(url: str) -> BackendFactory:
    def factory(clock: ManualClock, namespace: str = "main") -> Backend:
        return open_backend(url, clock=clock, namespace=namespace)

    return factory


def resolve_target(text: str | None) -> Target:
    """``None``/``memory``/a URL/``module:callable`` -> a :class:`Target`."""
    if text is None or text in {"", "memory"}:
        text = "memory://"
    if "://" in text:
        try:
            open_backend(text, clock=ManualClock()).close()  # fail fast on a bad URL
        except ConfigurationError as exc:
            raise TargetError(str(exc)) from None
        return Target(text, _url_factory(text))
    module_name, colon, attr = text.partition(":")
    if not colon or not module_name or not attr:
        raise TargetError(
            f"not a backend: {text!r} (expected a URL such as memory://?capacity=100, "
            "or module:callable)"
        )
    try:
        target: object = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise TargetError(f"cannot load {text!r}: {exc}") from None
    if isinstance(target, Target):
        return target
    if not callable(target):
        raise TargetError(f"{text!r} is not callable")
    return Target(text, target)
