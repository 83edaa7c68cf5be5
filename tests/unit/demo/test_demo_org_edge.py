"""The demo organisation's own edge CA and edge certificate (``issue_org_edge``)."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from hybridge.core.tlsverify import NamePolicy, PeerRole, anchor_set_for, verify_peer
from hybridge.demo.pki import DemoPkiError, issue_org_edge


def test_the_edge_certificate_chains_to_the_org_ca_and_names_the_edge(tmp_path: Path) -> None:
    identity = issue_org_edge(tmp_path / "edge-identity")
    ca = x509.load_pem_x509_certificate(identity.ca_cert.read_bytes())
    leaf, *rest = x509.load_pem_x509_certificates(identity.edge_cert.read_bytes())
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    now = dt.datetime.now(dt.UTC)
    for role in (PeerRole.SERVER, PeerRole.CLIENT):
        verdict = verify_peer(
            leaf, rest, anchors=anchor_set_for((ca,)), names=NamePolicy("edge.hybridge.test"),
            role=role, at=now,
        )  # fmt: skip
        assert verdict.accepted, verdict
    # the twin: another name is refused
    other = verify_peer(
        leaf, rest, anchors=anchor_set_for((ca,)), names=NamePolicy("edge.example.com"),
        role=PeerRole.SERVER, at=now,
    )  # fmt: skip
    assert not other.accepted and other.reason.value == "name_mismatch"
    assert stat.S_IMODE(identity.edge_key.stat().st_mode) == 0o600


def test_existing_files_are_never_overwritten(tmp_path: Path) -> None:
    issue_org_edge(tmp_path)
    before = (tmp_path / "edge.pem").read_bytes()
    with pytest.raises(DemoPkiError, match="cannot write the organisation's edge identity"):
        issue_org_edge(tmp_path)
    assert (tmp_path / "edge.pem").read_bytes() == before
