"""The SSL context builders: what they set, and the errors they give for bad input.

Handshakes with these contexts are in tests/integration/tls; here only their construction.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from certs import load_tlspki
from hybridge.core.tlsverify import RefusalReason, Refused
from hybridge.tls import (
    PeerRefused,
    TlsSetupError,
    client_context,
    relax_client_purpose,
    server_context,
)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pki: Any = load_tlspki()
    directory = tmp_path_factory.mktemp("contexts")
    root = pki.make_ca("Context Root")
    leaf = pki.make_leaf(root, dns=["localhost"])
    other = pki.make_leaf(root, dns=["other"])
    cert = directory / "leaf.pem"
    cert.write_bytes(leaf.pem)
    key = directory / "leaf.key"
    key.write_bytes(leaf.key_pem())
    wrong_key = directory / "other.key"
    wrong_key.write_bytes(other.key_pem())
    return {"root": root.cert, "cert": cert, "key": key, "wrong_key": wrong_key}


def test_client_context_verifies_against_the_anchors_but_leaves_names_to_us(
    material: dict[str, Any],
) -> None:
    context = client_context([material["root"]])
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is False
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.cert_store_stats()["x509_ca"] == 1


def test_server_context_requires_a_client_certificate(material: dict[str, Any]) -> None:
    context = server_context(
        [material["root"]], cert_file=material["cert"], key_file=material["key"]
    )
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    # Full handshake every time, so every connection is checked against current anchors.
    assert context.num_tickets == 0
    assert context.options & ssl.OP_NO_TICKET


def test_no_anchors_is_refused(material: dict[str, Any]) -> None:
    with pytest.raises(TlsSetupError, match="no trust anchors given"):
        client_context([])
    with pytest.raises(TlsSetupError, match="no trust anchors given"):
        server_context([], cert_file=material["cert"], key_file=material["key"])


def test_mismatched_key_is_refused_naming_the_files(material: dict[str, Any]) -> None:
    with pytest.raises(TlsSetupError) as info:
        server_context(
            [material["root"]], cert_file=material["cert"], key_file=material["wrong_key"]
        )
    assert repr(str(material["cert"])) in str(info.value)
    assert repr(str(material["wrong_key"])) in str(info.value)


def test_certificate_without_key_is_refused(material: dict[str, Any]) -> None:
    with pytest.raises(TlsSetupError, match="both a certificate file and its private key"):
        client_context([material["root"]], cert_file=material["cert"])


def test_missing_files_are_refused(material: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(TlsSetupError, match="cannot use certificate"):
        server_context(
            [material["root"]], cert_file=tmp_path / "none.pem", key_file=material["key"]
        )


def test_purpose_relaxation_checks_the_context_it_writes_to() -> None:
    # A context that does not require a peer certificate is not the one server_context
    # builds: the cross-check refuses to touch it.
    loose = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(TlsSetupError, match="does not look like the one Python built"):
        relax_client_purpose(loose)


def test_peer_refused_carries_the_verdict_and_exit_status_one() -> None:
    verdict = Refused(RefusalReason.NAME_MISMATCH, "the certificate does not name 'x'")
    error = PeerRefused(verdict)
    assert error.verdict is verdict
    assert error.exit_code == 1
    assert str(error) == "peer refused (name_mismatch): the certificate does not name 'x'"


def test_refused_explanation_is_always_one_line() -> None:
    verdict = Refused(RefusalReason.MALFORMED, "line one\nline two")
    assert verdict.explanation == "line one line two"
