"""Real TLS on loopback: the store's client contexts accept exactly the servers their anchor
set vouches for. Bootstrap anchors work for registration and never for the platform."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hybridge.core.pki import MAX_INPUT_BYTES
from hybridge.truststore import TrustStore, TrustUse, open_trust_store


class OneShotServer:
    """A TLS server on 127.0.0.1 that completes (or fails) one handshake per connection."""

    def __init__(self, ca: trustme.CA) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("connector-cloud.test", "127.0.0.1").configure_cert(self.context)
        self.listener = socket.create_server(("127.0.0.1", 0))
        # Short accept timeout: close() is noticed within 0.1 s (closing a socket does not
        # wake a thread blocked in accept on Linux).
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError):
                pass  # the client refused us: that is what some tests want

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=10)
        self.listener.close()


@pytest.fixture
def cloud_ca() -> trustme.CA:
    return trustme.CA(organization_name="Hybridge cloud test CA")


@pytest.fixture
def server(cloud_ca: trustme.CA) -> Iterator[OneShotServer]:
    running = OneShotServer(cloud_ca)
    yield running
    running.close()


@pytest.fixture
def store(tmp_path: Path, cloud_ca: trustme.CA) -> Iterator[TrustStore]:
    """The cloud's CA is a bootstrap anchor; the platform set holds an unrelated CA."""
    bootstrap = tmp_path / "bootstrap.pem"
    bootstrap.write_bytes(cloud_ca.cert_pem.bytes())
    unrelated = tmp_path / "unrelated.pem"
    unrelated.write_bytes(trustme.CA().cert_pem.bytes())
    with open_trust_store(tmp_path / "data", bootstrap_file=bootstrap) as opened:
        opened.add_manual_files([unrelated], actor="test", max_bytes=MAX_INPUT_BYTES)
        yield opened


def connect(context: ssl.SSLContext, port: int, hostname: str = "connector-cloud.test") -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        return tls.recv(5)


def test_registration_context_trusts_the_bootstrap_ca(
    store: TrustStore, server: OneShotServer
) -> None:
    assert connect(store.ssl_context(TrustUse.REGISTRATION), server.port) == b"hello"


def test_platform_context_never_trusts_a_bootstrap_only_ca(
    store: TrustStore, server: OneShotServer
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        connect(store.ssl_context(TrustUse.PLATFORM), server.port)
    assert caught.value.verify_message == "unable to get local issuer certificate"


def test_platform_context_trusts_the_ca_once_the_cloud_pushes_it(
    store: TrustStore, server: OneShotServer, cloud_ca: trustme.CA
) -> None:
    der = x509.load_pem_x509_certificate(cloud_ca.cert_pem.bytes()).public_bytes(Encoding.DER)
    store.apply_cloud_set([der], actor="cloud", sequence=1)
    assert connect(store.ssl_context(TrustUse.PLATFORM), server.port) == b"hello"


def test_platform_context_trusts_a_manually_added_ca(
    store: TrustStore, server: OneShotServer, cloud_ca: trustme.CA, tmp_path: Path
) -> None:
    path = tmp_path / "cloud-ca.pem"
    path.write_bytes(cloud_ca.cert_pem.bytes())
    store.add_manual_files([path], actor="test", max_bytes=MAX_INPUT_BYTES)
    assert connect(store.ssl_context(TrustUse.PLATFORM), server.port) == b"hello"


def test_a_trusted_ca_does_not_excuse_a_wrong_host_name(
    store: TrustStore, server: OneShotServer
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        connect(store.ssl_context(TrustUse.REGISTRATION), server.port, "attacker.test")
    assert "Hostname mismatch" in caught.value.verify_message
