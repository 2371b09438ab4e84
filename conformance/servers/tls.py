"""TLS for harness-started servers: the files a server is run with, as data on its kind.

A :class:`ServerTLS` names the PEM files of one TLS deployment: the CA, the server's
certificate and key, and a client certificate and key that the CA signed. A kind that
carries one (``RedisKind(tls=...)``, see ``start_redis(tls=...)``) runs its server on a TLS
port only, requiring client certificates, and the harness's own probes (readiness, clock,
flush) speak TLS with the client certificate: nothing reaches the server in plaintext.

The files are the caller's (a test makes them in its temp dir with the ``openssl`` CLI);
the harness never generates, copies or shows key material. docs/design.md, "Mutual TLS".
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerTLS"]


@dataclass(frozen=True)
class ServerTLS:
    """The PEM files of a TLS server and of a client it accepts."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    client_cert_file: Path
    client_key_file: Path

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context with the client certificate: the harness's probes'.

        Built per call (a few files read): the probes are rare, and a context is then never
        shared between threads that load files into it.
        """
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.client_cert_file), str(self.client_key_file))
        return context
