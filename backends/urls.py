"""Backend URLs: parsing, option checking, and redaction for messages.

A URL names a backend and its options: ``memory://?capacity=100``,
``redis://:secret@localhost:6379/0?namespace=app``. Every option is checked: an unknown or
malformed one is a :class:`~cachespec.backends.ConfigurationError` naming the URL (with any
password replaced by ``***``), never silently ignored.

A password may also come from the environment (``password_env=NAME``) or a file
(``password_file=PATH``), so that it need not appear on a command line, where ``ps`` shows
it. A URL that does not parse one way only (an ``@`` after the host, or a ``#``: characters
of a password left unencoded) is refused before any connection, with nothing after its
scheme shown (docs/design.md, "Secrets").
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from .contract import ConfigurationError

HIDDEN = "***"


def _ambiguity(url: str) -> str | None:
    """Why ``url`` does not parse one way only, or None. Unencoded ``#``, ``/``, ``?`` or
    ``@`` in a password move the split: ``redis://:pa@ss#w/x@host`` would connect to a
    host named ``ss``, with the password's first half."""
    if "#" in url:
        return "a '#' (a backend URL has no fragment)"
    _, sep, rest = url.partition("://")
    if not sep:
        return None
    authority_end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    if "@" in rest[authority_end:]:
        return "an '@' after the host"
    return None


def _hidden(url: str) -> str:
    """What is shown of a URL that cannot be parsed safely: its scheme only."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://{HIDDEN}" if sep and scheme.isascii() and scheme.isalnum() else HIDDEN


def redact(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (and everything after the
    scheme, if the URL does not parse one way only)."""
    if _ambiguity(url) is not None:
        return _hidden(url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return _hidden(url) if "@" in url else url
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{HIDDEN}@{hostinfo}"))


def _one_host(text: str) -> tuple[str | None, int | None]:
    """One ``host[:port]`` of a list; ``ValueError`` for an empty one or a bad port."""
    parts = urlsplit(f"//{text}")
    if not parts.hostname:
        raise ValueError(f"an empty host in the list of hosts: {text!r}")
    return parts.hostname, parts.port


class BackendURL:
    """A parsed backend URL whose options are consumed as the backend reads them."""

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise TypeError(f"a backend URL must be a str, got {type(url).__name__}")
        self.text = url
        self.safe = redact(url)
        ambiguous = _ambiguity(url)
        if ambiguous is not None:
            raise ConfigurationError(
                f"{self.safe}: the URL has {ambiguous}, so it does not parse one way only; "
                "percent-encode those characters in a user name or password (%23 for #, "
                "%2F for /, %3F for ?, %40 for @), or pass the password with "
                "password_env=NAME or password_file=PATH (the URL is not shown: it may hold "
                "a password)"
            )
        try:
            parts = urlsplit(url)
            # Several hosts (redis+cluster://h1:p1,h2:p2): each one parsed alone.
            hostinfo = parts.netloc.rpartition("@")[2]
            self.hosts = (
                [_one_host(item) for item in hostinfo.split(",")]
                if "," in hostinfo
                else [(parts.hostname, parts.port)]
            )
        except ValueError as exc:
            raise ConfigurationError(f"{self.safe}: {exc}") from None
        if not parts.scheme or "://" not in url:
            raise ConfigurationError(f"{self.safe}: not a URL; expected scheme://...")
        self.scheme = parts.scheme.lower()
        self.username = parts.username
        self.password = parts.password
        self.path = parts.path
        self.options: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
            if name in self.options:
                raise ConfigurationError(f"{self.safe}: option {name!r} given twice")
            self.options[name] = value
        self._known: list[str] = []

    @property
    def host(self) -> str | None:
        """The host; a ConfigurationError if the URL names several (only schemes that take
        several read :attr:`hosts`)."""
        return self._single()[0]

    @property
    def port(self) -> int | None:
        """The port, or None; a ConfigurationError if the URL names several hosts."""
        return self._single()[1]

    def _single(self) -> tuple[str | None, int | None]:
        if len(self.hosts) > 1:
            raise self.error(f"{self.scheme}:// takes one host, not {len(self.hosts)}")
        return self.hosts[0]

    def error(self, message: str) -> ConfigurationError:
        return ConfigurationError(f"{self.safe}: {message}")

    def expect(self, *, host: bool, path: bool) -> None:
        """Refuse a host or a path where the scheme takes none."""
        if not host and (self.host or self.port):
            raise self.error(f"{self.scheme}:// takes no host")
        if not path and self.path not in ("", "/"):
            raise self.error(f"{self.scheme}:// takes no path")

    def pop_password(self) -> str | None:
        """The password: from the URL (percent-decoded), the environment variable that
        ``password_env`` names, or the file ``password_file`` names (one trailing newline
        dropped). More than one of them is a ConfigurationError, as is a variable that is
        not set or a file that cannot be read; no error shows the password."""
        from_env = self.pop_str("password_env", None)
        from_file = self.pop_str("password_file", None)
        given = [
            s
            for s, v in (
                ("the URL", self.password),
                ("password_env", from_env),
                ("password_file", from_file),
            )
            if v is not None
        ]
        if len(given) > 1:
            raise self.error(f"a password from {' and '.join(given)}: give one")
        if from_env is not None:
            if from_env not in os.environ:
                raise self.error(f"password_env={from_env}: no such environment variable")
            return os.environ[from_env]
        if from_file is not None:
            try:
                text = Path(from_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise self.error(f"password_file={from_file}: {reason}") from None
            return text[:-1] if text.endswith("\n") else text
        return unquote(self.password) if self.password else None

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
