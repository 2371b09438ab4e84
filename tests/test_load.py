"""bench/load.py's checks are not vacuous: a backend that serves another key's value, one
that raises an untyped error, and one that holds more than its capacity each fail the row,
and a correct one passes it. Its figures are measured, never asserted (bench/README.md)."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cachespec import ExactLRU, MemoryBackend
from cachespec.backends.cache import is_lease
from cachespec.spec import NoValue


def _load() -> ModuleType:
    path = Path(__file__).parent.parent / "bench" / "load.py"
    spec = importlib.util.spec_from_file_location("bench_load", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


load = _load()


class OtherKeys(MemoryBackend):
    """Reads every key from key:0's entry: a value under a key it was not written under."""

    def get(self, key: str) -> bytes | NoValue:
        found = super().get("key:0")
        # Only a value is served under the wrong key: a miss or a lease there would only
        # make the key look absent to get while add finds it taken, and the fill wait.
        if isinstance(found, bytes) and not is_lease(found):
            return found
        return super().get(key)


class Untyped(MemoryBackend):
    def delete(self, key: str) -> None:
        raise RuntimeError("not a CacheError")


def _overfull() -> MemoryBackend:
    """Declares an exact LRU of 4 entries and holds them all."""
    backend = MemoryBackend(capacity=None)
    backend.guarantees = dataclasses.replace(backend.guarantees, eviction=ExactLRU(capacity=4))
    return backend


def _row(backend: MemoryBackend) -> object:
    row = load.Row("test", load.OURS.name)
    load.run(row, backend, load.OURS, 0.2, 1)
    return row


def test_a_correct_backend_passes_every_check() -> None:
    row = _row(MemoryBackend(capacity=512))
    assert not row.failed  # type: ignore[attr-defined]
    assert row.calls > 0  # type: ignore[attr-defined]
    assert row.capacity.startswith("held")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("backend", "what"),
    [
        (OtherKeys(capacity=512), "wrong_key"),
        (Untyped(capacity=512), "untyped"),
        (_overfull(), "capacity"),
    ],
    ids=["wrong-key", "untyped", "over-capacity"],
)
def test_each_check_fails_its_broken_backend(backend: MemoryBackend, what: str) -> None:
    row = _row(backend)
    assert row.failed  # type: ignore[attr-defined]
    found = getattr(row, what)
    assert found.startswith("EXCEEDED") if what == "capacity" else found
