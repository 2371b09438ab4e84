"""Mutual TLS for Redis: ``rediss://`` with a CA, a client certificate and its key.

Against a harness-started redis-server that speaks only TLS and requires client
certificates (``start_redis(tls=...)``), with certificates the ``openssl`` CLI makes in the
test's temp dir (tests/certificates.py). The server runs on real time: it checks the
client's certificate's dates on its own clock, and the certificates are issued now
(docs/facts.md, "TLS"). Nothing here waits on that clock.

The bad-file cases need no server: the files are loaded before any connection, so they
point at a port where nothing listens and must still raise ConfigurationError (a
connection attempt would raise BackendUnavailable instead).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from certificates import PKI, make_pki

from cachespec.backends import BackendUnavailable, ConfigurationError, open_backend
from cachespec.backends.cache import Cache
from cachespec.backends.redis import tls
from cachespec.conformance import servers

pytestmark = pytest.mark.redis

PASSWORD = "s3cr3t-tls-pw"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(pki: PKI) -> Iterator[servers.ManagedServer]:
    reason = servers.harness_available("redis", fake_time=False)
    if reason is not None:
        if os.environ.get("CACHESPEC_ALLOW_NO_SERVERS") == "1":
            pytest.skip(f"{reason} (CACHESPEC_ALLOW_NO_SERVERS=1)")
        pytest.fail(f"{reason} (set CACHESPEC_ALLOW_NO_SERVERS=1 to skip)")
    with servers.start_redis(fake_time=False, tls=pki.server) as server:
        yield server


def rediss(port: int, **files: Path | str) -> str:
    query = "&".join(f"{name}={quote(str(path), safe='/')}" for name, path in files.items())
    return f"rediss://127.0.0.1:{port}/0?timeout=5&{query}"


def key_material(path: Path) -> list[str]:
    """The base64 lines of a PEM file: none of them may appear in any output."""
    return [line for line in path.read_text().splitlines() if line and "-----" not in line]


# ---------------------------------------------------------------------------------------------
# Against the TLS server


def test_mutual_tls_works_end_to_end(tls_server: servers.ManagedServer, pki: PKI) -> None:
    assert tls_server.url.startswith("rediss://")
    backend = open_backend(tls_server.url, namespace="mtls")
    try:
        backend.set("k", b"over tls", None)
        assert backend.get("k") == b"over tls"
        cache = Cache(backend, default_ttl=60)
        assert cache.get_or_compute("answer", lambda: {"n": 42}) == {"n": 42}
        assert cache.get("answer") == {"n": 42}  # a hit, read back over TLS
        shown = repr(backend)
    finally:
        backend.close()
    tls_server.flush()  # the harness's own probe speaks TLS too
    # TLS only: no plaintext port besides (redis-server would open 6379 without --port 0).
    tls = pki.server
    direct = redis.Redis(
        host="127.0.0.1",
        port=tls_server.port,
        ssl=True,
        ssl_ca_certs=str(tls.ca_file),
        ssl_certfile=str(tls.client_cert_file),
        ssl_keyfile=str(tls.client_key_file),
    )
    try:
        assert direct.config_get("port") == {"port": "0"}
        assert direct.config_get("tls-auth-clients") == {"tls-auth-clients": "yes"}
    finally:
        direct.close()
    for path in (pki.server.client_key_file, pki.server.key_file):
        assert not any(line in shown for line in key_material(path))


def test_a_client_without_a_certificate_is_refused(
    tls_server: servers.ManagedServer, pki: PKI
) -> None:
    url = rediss(tls_server.port, ssl_ca_certs=pki.server.ca_file)
    url = url.replace("rediss://", f"rediss://:{PASSWORD}@")
    with pytest.raises(BackendUnavailable) as refused:
        open_backend(url).close()
    assert PASSWORD not in str(refused.value)
    assert PASSWORD not in repr(refused.value)


def test_a_server_certificate_from_another_ca_fails_verification(
    tls_server: servers.ManagedServer, pki: PKI
) -> None:
    url = rediss(
        tls_server.port,
        ssl_ca_certs=pki.other_ca,
        ssl_certfile=pki.server.client_cert_file,
        ssl_keyfile=pki.server.client_key_file,
    )
    with pytest.raises(BackendUnavailable, match="certificate verify failed"):
        open_backend(url).close()


def test_a_plaintext_client_gets_a_typed_error(tls_server: servers.ManagedServer) -> None:
    with pytest.raises(BackendUnavailable):
        open_backend(f"redis://127.0.0.1:{tls_server.port}/0?timeout=5").close()


def test_cachespec_check_runs_against_a_tls_url(tls_server: servers.ManagedServer) -> None:
    run = subprocess.run(
        [
            *(sys.executable, "-m", "cachespec", "check", tls_server.url),
            *("--size", "quick", "--only", "ops.get_set", "--seed", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ops.get_set                   pass" in run.stdout
    assert "1 passed, 0 failed, 0 skipped" in run.stdout


# ---------------------------------------------------------------------------------------------
# Bad files: typed, before any connection (port 1: nothing listens there)


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    secret_key = tmp_path / "garbage.key"
    secret_key.write_text(
        "-----BEGIN PRIVATE KEY-----\nS3CR3TKEYMATERIALdoNotShow0123\n-----END PRIVATE KEY-----\n"
    )
    return {"missing": tmp_path / "missing.pem", "garbage": secret_key, "folder": tmp_path}


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"ssl_ca_certs": "missing"}, "ssl_ca_certs"),
        ({"ssl_ca_certs": "garbage"}, "ssl_ca_certs"),
        ({"ssl_ca_certs": "folder"}, "ssl_ca_certs"),
        ({"ssl_certfile": "client_cert", "ssl_keyfile": "missing"}, "ssl_keyfile"),
        ({"ssl_certfile": "missing", "ssl_keyfile": "client_key"}, "ssl_certfile"),
        ({"ssl_certfile": "client_cert", "ssl_keyfile": "garbage"}, "ssl_keyfile"),
        ({"ssl_certfile": "client_cert", "ssl_keyfile": "server_key"}, "ssl_keyfile"),
        ({"ssl_certfile": "client_cert"}, "ssl_certfile"),  # no key in the file
        ({"ssl_keyfile": "client_key"}, "ssl_certfile"),
    ],
)
def test_a_bad_or_missing_file_is_a_configuration_error_before_connecting(
    pki: PKI, bad_files: dict[str, Path], options: dict[str, str], option: str
) -> None:
    known = {
        **bad_files,
        "client_cert": pki.server.client_cert_file,
        "client_key": pki.server.client_key_file,
        "server_key": pki.server.key_file,
    }
    url = rediss(1, **{name: known[which] for name, which in options.items()})
    url = url.replace("rediss://", f"rediss://:{PASSWORD}@")
    with pytest.raises(ConfigurationError) as refused:
        open_backend(url)
    message = str(refused.value)
    assert option in message
    assert PASSWORD not in message
    assert "S3CR3TKEYMATERIAL" not in message
    for path in (pki.server.client_key_file, pki.server.key_file):
        assert not any(line in message for line in key_material(path))


def test_an_encrypted_key_is_refused_without_prompting(pki: PKI, tmp_path: Path) -> None:
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(
        [
            *("openssl", "pkey", "-in", str(pki.server.client_key_file), "-aes256"),
            *("-passout", "pass:hunter2", "-out", str(encrypted)),
        ],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    url = rediss(1, ssl_certfile=pki.server.client_cert_file, ssl_keyfile=encrypted)
    with pytest.raises(ConfigurationError, match=r"ssl_keyfile=.*encrypted"):
        open_backend(url)


@pytest.mark.parametrize("scheme", ["redis", "unix"])
def test_tls_options_without_tls_are_refused(scheme: str, pki: PKI) -> None:
    where = "127.0.0.1:1/0?" if scheme == "redis" else "/tmp/redis.sock?"
    url = f"{scheme}://{where}ssl_ca_certs={pki.server.ca_file}"
    with pytest.raises(ConfigurationError, match=r"ssl_ca_certs: TLS options need a rediss://"):
        open_backend(url)


def test_an_empty_option_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="option ssl_ca_certs is empty"):
        open_backend("rediss://127.0.0.1:1/0?ssl_ca_certs=")


def test_efficacy_a_factory_that_skipped_verification_would_connect(
    tls_server: servers.ManagedServer, pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The twin of the verification test: the refusal there is verification's, not some
    other failure. A factory that turned it off connects through the same URL."""
    verifying = redis.Redis

    def unverified(*args: Any, **kwargs: Any) -> redis.Redis:
        kwargs.update(ssl_cert_reqs="none", ssl_check_hostname=False)
        return verifying(*args, **kwargs)

    monkeypatch.setattr(redis, "Redis", unverified)  # the factory reads redis.Redis per call
    url = rediss(
        tls_server.port,
        ssl_ca_certs=pki.other_ca,
        ssl_certfile=pki.server.client_cert_file,
        ssl_keyfile=pki.server.client_key_file,
    )
    backend = open_backend(url, namespace="unverified")
    try:
        backend.set("k", b"v", None)
        assert backend.get("k") == b"v"
    finally:
        backend.clear()
        backend.close()


def test_efficacy_without_the_early_load_a_bad_file_would_fail_as_a_connection_error(
    pki: PKI, bad_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The twin of the bad-file tests: they tell a check before connecting from a failure
    while connecting. Without the early load, the same URL fails as BackendUnavailable."""
    monkeypatch.setattr(tls, "_check_files", lambda *args: None)
    url = rediss(1, ssl_certfile=pki.server.client_cert_file, ssl_keyfile=bad_files["garbage"])
    with pytest.raises(BackendUnavailable):
        open_backend(url)
