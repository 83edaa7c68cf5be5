"""The demo PKI: real chains that verify, 0600 keys, idempotent, never overwrites."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.verification import PolicyBuilder, Store

from hybridge.demo.pki import DemoPki, DemoPkiError, init_demo_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    made, created = init_demo_pki(tmp_path_factory.mktemp("demo") / "pki")
    assert created
    return made


def _verify(pki: DemoPki, chain_file: Path, name: x509.verification.Subject):
    chain = x509.load_pem_x509_certificates(chain_file.read_bytes())
    store = Store(x509.load_pem_x509_certificates(pki.root_ca.read_bytes()))
    verifier = (
        PolicyBuilder().store(store).time(dt.datetime.now(dt.UTC)).build_server_verifier(name)
    )
    return verifier.verify(chain[0], chain[1:])


def test_cloud_certificate_verifies_for_each_name(pki: DemoPki) -> None:
    for name in (
        x509.DNSName("localhost"),
        x509.DNSName("cloud.hybridge.test"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ):
        assert _verify(pki, pki.cloud_cert, name)


def test_cloud_certificate_does_not_verify_for_another_name(pki: DemoPki) -> None:
    with pytest.raises(x509.verification.VerificationError):
        _verify(pki, pki.cloud_cert, x509.DNSName("callservice.hybridge.test"))


def test_callservice_edge_and_connector_names(pki: DemoPki) -> None:
    assert _verify(pki, pki.callservice_cert, x509.DNSName("callservice.hybridge.test"))
    assert _verify(pki, pki.edge_cert, x509.DNSName("edge.hybridge.test"))
    assert _verify(pki, pki.connector_cert, x509.DNSName("connector.hybridge.test"))


def test_bootstrap_bundle_and_published_roots_are_the_demo_root(pki: DemoPki) -> None:
    root = pki.root_ca.read_bytes()
    assert pki.bootstrap_bundle.read_bytes() == root
    assert pki.cloud_ca_roots.read_bytes() == root


def test_private_keys_are_0600_and_match(pki: DemoPki) -> None:
    for name, path in pki.files().items():
        mode = stat.S_IMODE(path.stat().st_mode)
        if name.endswith("_key"):
            assert mode == 0o600, name
        else:
            assert mode & 0o077 in (0o044, 0o004, 0o040), name
    key = serialization.load_pem_private_key(pki.list_signing_key.read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    public = serialization.load_pem_public_key(pki.list_signing_public.read_bytes())
    assert public == key.public_key()


def test_second_run_is_a_no_op_and_foreign_directory_is_refused(pki: DemoPki, tmp_path) -> None:
    before = {path: path.read_bytes() for path in pki.files().values()}
    again, created = init_demo_pki(pki.directory)
    assert not created and again == pki
    assert {path: path.read_bytes() for path in pki.files().values()} == before
    other = tmp_path / "busy"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(DemoPkiError, match="nothing is overwritten"):
        init_demo_pki(other)
    assert (other / "keep.txt").read_text() == "mine"


def test_cli_init_demo(tmp_path: Path) -> None:
    target = tmp_path / "cli-pki"
    result = subprocess.run(
        [sys.executable, "-m", "hybridge", "pki", "init-demo", str(target), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"created": true' in result.stdout
    assert "PRIVATE KEY" not in result.stdout
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    refused = subprocess.run(
        [sys.executable, "-m", "hybridge", "pki", "init-demo", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "is not an empty directory or a complete demo PKI" in refused.stderr
