"""Names and URLs to backends: built-in schemes, entry points, run-time registration."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path
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


# A password whose parts are easy to look for: each piece must be absent from any message.
PIECES = ("Xq7k", "Zr9m", "Wt3p")


@pytest.mark.parametrize("mark", ["#", "/", "?", "@#", "@/"])
def test_a_url_that_does_not_parse_one_way_is_refused_showing_no_password(mark: str) -> None:
    # Unencoded, `redis://:Xq7k@Zr9m#Wt3p@127.0.0.1:6390` would connect to host "Zr9m".
    url = f"redis://:{PIECES[0]}{mark}{PIECES[1]}{mark[-1]}{PIECES[2]}@127.0.0.1:6390/0"
    with pytest.raises(ConfigurationError) as caught:
        open_backend(url)
    message = str(caught.value)
    assert "does not parse one way only" in message
    assert message.startswith("redis://***: ")
    assert not [piece for piece in PIECES if piece in message], message
    assert not [piece for piece in PIECES if piece in redact(url)]


def test_an_encoded_password_parses() -> None:
    url = BackendURL("redis://:Xq7k%40Zr9m%23Wt3p@127.0.0.1:6390/0")
    assert url.host == "127.0.0.1"
    assert url.pop_password() == "Xq7k@Zr9m#Wt3p"
    assert url.safe == "redis://:***@127.0.0.1:6390/0"


def test_a_password_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHESPEC_TEST_PASSWORD", "Xq7k")
    assert BackendURL("redis://h/0?password_env=CACHESPEC_TEST_PASSWORD").pop_password() == "Xq7k"
    secret = tmp_path / "secret"
    secret.write_text("Zr9m\n", encoding="utf-8")
    assert BackendURL(f"redis://h/0?password_file={secret}").pop_password() == "Zr9m"
    assert BackendURL("redis://h/0").pop_password() is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("password_env=CACHESPEC_NO_SUCH_VARIABLE", "no such environment variable"),
        ("password_file=/nonexistent/secret", "No such file"),
        ("password_env=CACHESPEC_TEST_PASSWORD&password_file=/x", "give one"),
    ],
)
def test_a_password_source_that_fails_is_a_configuration_error(
    query: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHESPEC_TEST_PASSWORD", "Xq7k")
    with pytest.raises(ConfigurationError, match=message) as caught:
        open_backend(f"redis://127.0.0.1:1/0?{query}")
    assert "Xq7k" not in str(caught.value)


def test_a_password_in_the_url_and_elsewhere_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="the URL and password_env: give one") as caught:
        open_backend("redis://:Xq7k@127.0.0.1:1/0?password_env=HOME")
    assert "Xq7k" not in str(caught.value)
