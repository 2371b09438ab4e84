"""TLS options of a ``rediss://`` URL: the CA, and a client certificate for mutual TLS.

``ssl_ca_certs`` (the CA file that signs the server's certificate; default: the system's
store), ``ssl_certfile`` and ``ssl_keyfile`` (the client's certificate and key, for a
server run with ``--tls-auth-clients yes``; the key may also sit in the certificate's file).
The names are redis-py's own (``redis.Redis(ssl_ca_certs=...)``, and its URL parser's).

Verification is always on: the server's certificate must chain to the CA and name the host
(redis-py's ``ssl_cert_reqs="required"`` and ``ssl_check_hostname=True``, passed explicitly
so that a change of redis-py's defaults cannot turn them off). There is no option to turn it
off (docs/design.md, "Mutual TLS").

Every file is loaded here, into a throwaway context, before any connection: a missing,
unreadable or malformed file, a key that does not match its certificate, or an encrypted
key is a ConfigurationError naming the option and the path, never a connection error later.
No error shows a byte of a file: only OpenSSL's reason code, which names no key material.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Final

from ..urls import BackendURL

__all__ = ["TLS_OPTIONS", "TLSFiles", "pop_tls"]

TLS_OPTIONS: Final = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


@dataclass(frozen=True)
class TLSFiles:
    """The files of a ``rediss://`` URL, each loaded once already (None: not given)."""

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None


class _EncryptedKey(Exception):
    """OpenSSL asked for the key's passphrase: the key file is encrypted."""


def _no_passphrase() -> str:
    # Without a callback OpenSSL would prompt on the terminal; a cache URL carries no
    # passphrase (it would be a secret on a command line), so an encrypted key is refused.
    raise _EncryptedKey


def _reason(exc: BaseException) -> str:
    """What OpenSSL refused, by its reason code only (never the file's contents)."""
    reason = exc.reason if isinstance(exc, ssl.SSLError) else None
    return f"not a usable PEM file ({reason or 'rejected by OpenSSL'})"


def _check_files(url: BackendURL, ca: str | None, cert: str | None, key: str | None) -> None:
    """Load every given file as redis-py will, so a bad one fails now, with its option."""
    # OpenSSL's errors name no file: open each first, so a missing one names its option.
    for name, path in zip(TLS_OPTIONS, (ca, cert, key), strict=True):
        if path is not None:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise url.error(f"{name}={path}: {exc.strerror or type(exc).__name__}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is not None:
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise url.error(f"ssl_ca_certs={ca}: {_reason(exc)}") from None
    if cert is not None:
        try:
            context.load_cert_chain(cert, key, password=_no_passphrase)
        except _EncryptedKey:
            raise url.error(
                f"ssl_keyfile={key or cert}: the key is encrypted; give an unencrypted key "
                "file readable only by this user"
            ) from None
        except (OSError, ValueError) as exc:
            # A certificate and a key that do not go together fail as one: name both.
            shown = f"ssl_certfile={cert}" + (f", ssl_keyfile={key}" if key else "")
            raise url.error(f"{shown}: {_reason(exc)}") from None


def pop_tls(url: BackendURL) -> TLSFiles | None:
    """The TLS files of ``url``, checked; None for a URL without TLS.

    ``ssl_*`` options on a scheme without TLS are refused: they would be silently ignored,
    and a user who asked for a verified connection would get a plaintext one.
    """
    ca = url.pop_str("ssl_ca_certs", None)
    cert = url.pop_str("ssl_certfile", None)
    key = url.pop_str("ssl_keyfile", None)
    values = (ca, cert, key)
    given = [name for name, value in zip(TLS_OPTIONS, values, strict=True) if value is not None]
    if url.scheme not in ("rediss", "rediss+cluster"):
        if given:
            raise url.error(f"{', '.join(given)}: TLS options need a rediss:// URL")
        return None
    for name, value in zip(TLS_OPTIONS, (ca, cert, key), strict=True):
        if value == "":
            raise url.error(f"option {name} is empty; give a file's path")
    if key is not None and cert is None:
        raise url.error("ssl_keyfile without ssl_certfile: give the client's certificate too")
    _check_files(url, ca, cert, key)
    return TLSFiles(ca, cert, key)
