"""The machine of ``ops.clear_namespace``: two namespaces of one backend family, each beside
its own model (split from machines.py, which holds the one-namespace machine)."""

from __future__ import annotations

from typing import ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import rule

from cachespec.backends import NO_VALUE
from cachespec.spec import CacheModel

from .checks import CannotCheck, DoesNotApply
from .machines import clear_as_declared
from .pools import PLAIN_VALUES
from .swarm import FocusedMachine
from .target import Target

# A key neither namespace's rules use: the store probe writes and deletes it.
_PROBE = "cachespec-one-store-probe"


class NamespaceMachine(FocusedMachine):
    """Two namespaces of one backend family, each beside its own model.

    A write, a delete or a ``clear`` in one namespace must leave the other untouched; a
    ``clear`` declared store-wide (``Guarantees.clear_store_wide``) must empty both.
    """

    target: ClassVar[Target]
    NAMESPACES: ClassVar[tuple[str, str]] = ("tenant-a", "tenant-b")

    def __init__(self) -> None:
        super().__init__()
        self.session = self.target.session()
        self.clock = self.session.clock
        try:
            self._check_one_store()
            self.backends = {ns: self.session.backend(ns) for ns in self.NAMESPACES}
        except BaseException:
            self.session.close()
            raise
        self.models = {
            ns: CacheModel(b.guarantees, origin=self.clock.now()) for ns, b in self.backends.items()
        }

    def _check_one_store(self) -> None:
        """Two namespaces test something only if they share a store. A factory that makes a
        store per call (or takes no namespace) passes this property without a check: it is
        then one the harness cannot make here, said so (docs/design.md, "How the suite
        decides"), rather than a pass."""
        if not self.target.takes_namespace:
            raise CannotCheck(
                f"{self.target.name}: the factory takes no namespace argument, so there are "
                "no two namespaces of one store to compare"
            )
        # Both opened before anything is written: opening is all a factory does here.
        first, second = (self.session.backend(self.NAMESPACES[0]) for _ in range(2))
        first.set(_PROBE, b"here")
        try:
            seen = second.get(_PROBE)
        finally:
            first.delete(_PROBE)
        if seen is NO_VALUE and self.target.in_process:
            # memory://: every open is a store of its own, so no two namespaces share one.
            raise DoesNotApply(
                f"{self.target.name}: every open is a store of its own, so no two namespaces "
                "share a store to keep apart"
            )
        if seen is NO_VALUE:
            raise CannotCheck(
                f"{self.target.name}: a second backend of one namespace does not see the "
                "first's write: each call of the factory makes a store of its own, so "
                "namespaces of one store cannot be compared (keep one store per clock: "
                "README, 'Checking your own backend')"
            )

    @rule(
        namespace=st.sampled_from(NAMESPACES),
        key=st.sampled_from(("a", "b")),
        value=PLAIN_VALUES,
    )
    def set(self, namespace: str, key: str, value: bytes) -> None:
        self.backends[namespace].set(key, value)
        self.models[namespace].set(self.clock.now(), key, value, None)

    @rule(namespace=st.sampled_from(NAMESPACES), key=st.sampled_from(("a", "b")))
    def delete(self, namespace: str, key: str) -> None:
        self.backends[namespace].delete(key)
        self.models[namespace].delete(self.clock.now(), key)

    @rule(namespace=st.sampled_from(NAMESPACES))
    def clear(self, namespace: str) -> None:
        backend = self.backends[namespace]
        clear_as_declared(backend, self.models[namespace], self.clock.now())
        if backend.guarantees.clear and backend.guarantees.clear_store_wide:
            # Declared store-wide: the other namespace is emptied too, and checked so.
            for other, model in self.models.items():
                if other != namespace:
                    model.clear(self.clock.now())

    @rule(namespace=st.sampled_from(NAMESPACES))
    def read_all(self, namespace: str) -> None:
        keys = ["a", "b"]
        observed = self.backends[namespace].get_many(keys)
        self.models[namespace].get_many(self.clock.now(), keys, observed)

    def teardown(self) -> None:
        """Read both namespaces once more, so that what a clear or a delete in one did to
        the other shows even when no read followed it."""
        try:
            for namespace in self.NAMESPACES:
                self.read_all(namespace)
        finally:
            self.session.close()


def build_namespace_machine(class_name: str, target: Target) -> type[NamespaceMachine]:
    return type(class_name, (NamespaceMachine,), {"target": target})
