"""Backend URLs: parsing, option checking, and redaction for messages.

A URL names a backend and its options: ``memory://?capacity=100``,
``redis://:secret@localhost:6379/0?namespace=app``. Every option is checked: an unknown or
malformed one is a :class:`~cachespec.backends.ConfigurationError` naming the URL (with any
password replaced by ``***``), never silently ignored.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

from .contract import ConfigurationError


def redact(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


class BackendURL:
    """A parsed backend URL whose options are consumed as the backend reads them."""

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise TypeError(f"a backend URL must be a str, got {type(url).__name__}")
        self.text = url
        self.safe = redact(url)
        try:
            parts = urlsplit(url)
            self.port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"{self.safe}: {exc}") from None
        if not parts.scheme or "://" not in url:
            raise ConfigurationError(f"{self.safe}: not a URL; expected scheme://...")
        self.scheme = parts.scheme.lower()
        self.host = parts.hostname
        self.username = parts.username
        self.password = parts.password
        self.path = parts.path
        self.options: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
            if name in self.options:
                raise ConfigurationError(f"{self.safe}: option {name!r} given twice")
            self.options[name] = value
        self._known: list[str] = []

    def error(self, message: str) -> ConfigurationError:
        return ConfigurationError(f"{self.safe}: {message}")

    def expect(self, *, host: bool, path: bool) -> None:
        """Refuse a host or a path where the scheme takes none."""
        if not host and (self.host or self.port):
            raise self.error(f"{self.scheme}:// takes no host")
        if not path and self.path not in ("", "/"):
            raise self.error(f"{self.scheme}:// takes no path")

    def pop_str(self, name: str, default: str | None) -> str | None:
        self._known.append(name)
        return self.options.pop(name, default)

    def pop_choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        """An option that takes one of a few words (``default`` when absent)."""
        self._known.append(name)
        raw = self.options.pop(name, default)
        if raw not in choices:
            raise self.error(f"option {name}={raw!r} must be one of {', '.join(choices)}")
        return raw

    def pop_int(
        self, name: str, *, default: int | None, allow_none: bool = False, minimum: int = 0
    ) -> int | None:
        self._known.append(name)
        raw = self.options.pop(name, None)
        if raw is None:
            return default
        if allow_none and raw.lower() == "none":
            return None
        try:
            value = int(raw, 10)
        except ValueError:
            raise self.error(f"option {name}={raw!r} is not a whole number") from None
        if value < minimum:
            raise self.error(f"option {name}={value} must be at least {minimum}")
        return value

    def pop_float(self, name: str, *, default: float, minimum: float = 0.0) -> float:
        self._known.append(name)
        raw = self.options.pop(name, None)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise self.error(f"option {name}={raw!r} is not a number") from None
        if not value >= minimum or value == float("inf"):
            raise self.error(f"option {name}={raw} must be a finite number >= {minimum}")
        return value

    def expect_no_options(self) -> None:
        """Refuse whatever option no reader consumed (a typo must not pass silently)."""
        if self.options:
            unknown = ", ".join(sorted(self.options))
            known = ", ".join(self._known) or "none"
            raise self.error(f"unknown option(s) {unknown} (known: {known})")
