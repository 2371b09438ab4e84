"""Names and URLs to backends: built-in schemes, entry points, run-time registration."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from cachespec.backends import (
    ConfigurationError,
    MemoryBackend,
    open_backend,
    redact,
    register_scheme,
    registry,
    schemes,
)
from cachespec.backends.urls import BackendURL


def test_memory_is_built_in() -> None:
    assert "memory" in schemes()
    assert isinstance(open_backend("MEMORY://"), MemoryBackend)


def test_register_scheme_adds_a_backend() -> None:
    made: list[BackendURL] = []

    def factory(url: BackendURL, **kwargs: Any) -> MemoryBackend:
        made.append(url)
        return MemoryBackend(url.pop_int("size", default=3))

    register_scheme("tiny", factory)
    try:
        backend = open_backend("tiny://?size=2")
        assert isinstance(backend, MemoryBackend)
        assert made[0].scheme == "tiny"
        assert "tiny" in schemes()
    finally:
        registry._registered.pop("tiny")


def test_entry_points_add_schemes(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint(
        name="viaplugin",
        value="cachespec.backends.memory:memory_from_url",
        group=registry.ENTRY_POINT_GROUP,
    )
    monkeypatch.setattr(registry, "entry_points", lambda group: [point])
    assert "viaplugin" in schemes()
    assert isinstance(open_backend("viaplugin://?capacity=2"), MemoryBackend)


def test_an_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"no backend for scheme 'gopher'.*memory"):
        open_backend("gopher://x")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:secret@host/0", "redis://user:***@host/0"),
        ("redis://host:6379", "redis://host:6379"),
        ("memory://", "memory://"),
    ],
)
def test_passwords_are_redacted(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_url_error_never_shows_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_backend("nosuch://user:topsecret@host/0")
    assert "topsecret" not in str(caught.value)
    assert "user:***@host" in str(caught.value)


def test_a_port_out_of_range_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="out of range"):
        BackendURL("redis://host:99999")
