"""Throwaway certificates for the TLS tests, made with the ``openssl`` CLI in a temp dir.

Two CAs: ``ca`` signs the server's certificate (for 127.0.0.1, as a subjectAltName) and a
client certificate; ``other_ca`` signs nothing the server shows, so a client that trusts
only it must fail verification. P-256 keys: generated in milliseconds. Valid from now for
two days, so a server that checks client certificates must run on real time (the fake
clock starts on 2026-01-01: docs/facts.md, "TLS").
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cachespec.conformance.servers import ServerTLS

__all__ = ["PKI", "make_pki"]

_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_CA_EXTENSIONS = [
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    "-addext", "subjectKeyIdentifier=hash",
]  # fmt: skip


@dataclass(frozen=True)
class PKI:
    """The server's files (what ``start_redis(tls=...)`` takes) and a CA that is not its."""

    server: ServerTLS
    other_ca: Path


def _openssl(folder: Path, *args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl not found on PATH (install the Debian package openssl)")
    result = subprocess.run(
        [openssl, *args], cwd=folder, capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()[-500:]}")


def _ca(folder: Path, name: str) -> None:
    _openssl(
        folder, "req", "-x509", *_KEY, "-keyout", f"{name}.key", "-out", f"{name}.crt",
        "-days", "2", "-subj", f"/CN=cachespec test {name}", *_CA_EXTENSIONS,
    )  # fmt: skip


def _leaf(folder: Path, name: str, ca: str, extensions: str) -> None:
    """A key and a certificate signed by ``ca``, with ``extensions`` (one per line)."""
    (folder / f"{name}.ext").write_text(
        f"{extensions}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    _openssl(
        folder, "req", "-new", *_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr",
        "-subj", f"/CN=cachespec test {name}",
    )  # fmt: skip
    _openssl(
        folder, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-set_serial", str(secrets.randbits(63)),
        "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
    )  # fmt: skip


def make_pki(folder: Path) -> PKI:
    """Two CAs, a server certificate for 127.0.0.1 and a client certificate, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    _ca(folder, "ca")
    _ca(folder, "other_ca")
    _leaf(folder, "server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    _leaf(folder, "client", "ca", "extendedKeyUsage=clientAuth")
    return PKI(
        server=ServerTLS(
            ca_file=folder / "ca.crt",
            cert_file=folder / "server.crt",
            key_file=folder / "server.key",
            client_cert_file=folder / "client.crt",
            client_key_file=folder / "client.key",
        ),
        other_ca=folder / "other_ca.crt",
    )
