"""``hybridge cloud serve`` as a real process over HTTPS on loopback, with the demo PKI.

The client verifies the server against the demo root only, logs in, approves a connector's
registration and redeems the code with PKCE and a CSR, exactly as a connector would.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from hybridge.core.manifest import verify_manifest
from hybridge.demo.pki import DemoPki, init_demo_pki

PASSWORD = "integration test password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    url: str
    pki: DemoPki
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("cloud-serve")
    pki, _ = init_demo_pki(base / "pki")
    data = base / "data"
    hybridge = [sys.executable, "-m", "hybridge"]
    created = subprocess.run(
        [
            *hybridge,
            "cloud",
            "admin",
            "create",
            "--data-dir",
            str(data),
            "--org",
            "Acme",
            "--email",
            "ops@acme.test",
            "--operator",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    port = _free_port()
    log = base / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                *hybridge,
                "cloud",
                "serve",
                "--data-dir",
                str(data),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--cert",
                str(pki.cloud_cert),
                "--key",
                str(pki.cloud_key),
                "--connector-ca",
                str(pki.connector_ca_cert),
                "--connector-ca-key",
                str(pki.connector_ca_key),
                "--list-signing-key",
                str(pki.list_signing_key),
                "--ca-roots",
                str(pki.cloud_ca_roots),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(pki.root_ca))
    deadline = time.monotonic() + 60
    try:
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", verify=context, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "cloud did not start: " + log.read_text()
            time.sleep(0.2)
        yield Served(url, pki, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _client(served: Served) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(served.pki.root_ca))
    return httpx.Client(base_url=served.url, verify=context, timeout=15)


def test_tls_with_a_client_trusting_only_public_roots_fails(served: Served) -> None:
    # certifi's roots do not include the demo root: the handshake must be refused.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{served.url}/healthz", timeout=5)


def test_register_over_real_https(served: Served) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_fp = hashlib.sha256(spki).hexdigest()
    verifier = secrets.token_urlsafe(48)
    state = secrets.token_urlsafe(16)
    redirect_uri = "https://127.0.0.1:9/registration/callback"
    query = urlencode(
        {
            "response_type": "code",
            "client_id": "hybridge-connector",
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            "connector_hostname": "connector.acme.test",
            "connector_key_fp": key_fp,
            "trust_mode": "auto",
        }
    )
    with _client(served) as browser:
        first = browser.get(f"/oauth/authorize?{query}")
        assert first.status_code == 303 and first.headers["location"].startswith("/login?next=")
        login_page = browser.get(first.headers["location"])
        cookie = next(iter(browser.cookies.jar))
        assert cookie.name == "__Host-hybridge-cloud" and cookie.secure
        logged = browser.post(
            "/login",
            data={
                "login": "ops@acme.test",
                "password": PASSWORD,
                "csrf_token": CSRF.search(login_page.text).group(1),
                "next": f"/oauth/authorize?{query}",
            },
        )
        assert logged.status_code == 303
        approval = browser.get(logged.headers["location"])
        assert "connector.acme.test" in approval.text
        assert " ".join(key_fp[i : i + 4] for i in range(0, 64, 4)) in approval.text
        decided = browser.post(
            "/oauth/authorize",
            data={
                "csrf_token": CSRF.search(approval.text).group(1),
                "request_id": re.search(r'name="request_id" value="([^"]+)"', approval.text).group(
                    1
                ),
                "decision": "approve",
                "manage_ca": "yes",
            },
        )
        assert decided.status_code == 303
        location = decided.headers["location"]
        assert location.startswith(redirect_uri)
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert params["state"] == state

    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "connector.acme.test")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    form = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": redirect_uri,
        "client_id": "hybridge-connector",
        "code_verifier": verifier,
        "csr": csr,
    }
    with _client(served) as connector:  # no cookie: the back channel
        response = connector.post("/oauth/token", data=form)
        assert response.status_code == 200, response.text
        body = response.json()

    signing_key = serialization.load_pem_public_key(body["list_signing_key"].encode())
    assert isinstance(signing_key, Ed25519PublicKey)
    from datetime import UTC, datetime

    manifest = verify_manifest(
        body["ca_manifest"], signing_key, now=datetime.now(UTC), audience=body["connector_id"]
    )
    root = x509.load_pem_x509_certificate(served.pki.root_ca.read_bytes())
    assert manifest.certificates == (root.public_bytes(serialization.Encoding.DER),)
    client_cert = x509.load_pem_x509_certificate(body["client_certificate"].encode())
    assert client_cert.public_key() == key.public_key()

    # Step 7: deregistration over mutual TLS with the issued certificate.
    key_file = served.log.parent / "connector.key"
    cert_file = served.log.parent / "connector.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    cert_file.write_text(body["client_certificate"])
    path = f"/api/connectors/{body['connector_id']}/deregister"
    with _client(served) as anonymous:
        refused = anonymous.post(path)
        assert refused.status_code == 403
        assert "client certificate is required" in refused.json()["detail"]
    context = ssl.create_default_context(cafile=str(served.pki.root_ca))
    context.load_cert_chain(cert_file, key_file)
    with httpx.Client(base_url=served.url, verify=context, timeout=15) as mutual:
        done = mutual.post(path)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "deregistered"
        again = mutual.post(path)
        assert again.status_code == 403
        assert again.json()["detail"].endswith("is deregistered")
        replay = mutual.post("/oauth/token", data=form)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"

    server_log = served.log.read_text()
    assert PASSWORD not in server_log
    assert verifier not in server_log
    assert params["code"] not in server_log
    assert "Traceback" not in server_log
