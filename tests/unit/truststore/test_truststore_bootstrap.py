"""The bootstrap set: shipped, hidden, only for registration, every use logged."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import structlog
from cryptography.hazmat.primitives.serialization import Encoding
from truststore_state import write

import certs
from hybridge.core.pki import MAX_INPUT_BYTES, describe, fingerprint_sha256
from hybridge.truststore import (
    AnchorNotFound,
    BootstrapUnavailable,
    NoAnchors,
    TrustStore,
    TrustUse,
    open_trust_store,
)
from hybridge.truststore.bootstrap import BOOTSTRAP_ENV, load_bootstrap


def der_of(cert) -> bytes:
    return cert.public_bytes(Encoding.DER)


def test_bootstrap_anchors_are_never_listed_exported_or_shown(
    store: TrustStore, bootstrap_ca: certs.Issued, root: certs.Issued, tmp_path: Path
) -> None:
    store.add_manual_files(
        [write(tmp_path / "m.pem", root.pem)], actor="admin", max_bytes=MAX_INPUT_BYTES
    )
    store.apply_cloud_set(
        [certs.build("Cloud", key=certs.new_key("ec")).der], actor="c", sequence=1
    )
    hidden = fingerprint_sha256(bootstrap_ca.der)

    assert hidden not in {r.anchor.fingerprint_sha256 for r in store.list_anchors()}
    assert len(store.list_anchors()) == 2
    assert hidden not in store.export_pem()
    assert bootstrap_ca.pem.decode() not in store.export_pem()
    assert bootstrap_ca.pem not in store.bundle_path.read_bytes()
    with pytest.raises(AnchorNotFound):
        store.find(hidden)
    with pytest.raises(AnchorNotFound):
        store.find(hidden[:16])
    assert bootstrap_ca.der not in [der_of(c) for c in store.anchors_for(TrustUse.PLATFORM)]


def test_registration_gets_only_the_bootstrap_set_and_the_use_is_logged(
    store: TrustStore,
    bootstrap_ca: certs.Issued,
    bootstrap_file: Path,
    root: certs.Issued,
    tmp_path: Path,
) -> None:
    store.add_manual_files(
        [write(tmp_path / "m.pem", root.pem)], actor="admin", max_bytes=MAX_INPUT_BYTES
    )
    with structlog.testing.capture_logs() as logs:
        anchors = store.anchors_for(TrustUse.REGISTRATION)

    assert [der_of(c) for c in anchors] == [bootstrap_ca.der]
    assert logs == [
        {
            "event": "truststore.bootstrap_used",
            "log_level": "info",
            "origin": str(bootstrap_file),
            "count": 1,
            "fingerprints": [fingerprint_sha256(bootstrap_ca.der)],
        }
    ]


def test_platform_use_does_not_log_bootstrap(store: TrustStore) -> None:
    with structlog.testing.capture_logs() as logs, pytest.raises(NoAnchors):
        store.ssl_context(TrustUse.PLATFORM)
    assert logs == []


def test_environment_variable_overrides_the_packaged_file(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = certs.build("Operator Bootstrap Root", key=certs.new_key("ec"))
    monkeypatch.setenv(BOOTSTRAP_ENV, str(write(tmp_path / "operator.pem", other.pem)))
    with open_trust_store(data_dir) as store:
        assert [der_of(c) for c in store.anchors_for(TrustUse.REGISTRATION)] == [other.der]


def test_packaged_bootstrap_set_is_mozillas_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BOOTSTRAP_ENV, raising=False)
    origin, anchors = load_bootstrap()
    assert origin == "package file hybridge/truststore/bootstrap.pem"
    # Mozilla's program holds well over 100 roots; every one is a CA.
    assert len(anchors) > 100
    assert all(describe(a.certificate).is_ca for a in anchors)
    assert len({a.fingerprint_sha256 for a in anchors}) == len(anchors)


def test_missing_bootstrap_file_is_a_clear_error(store: TrustStore, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with (
        open_trust_store(store.data_dir, bootstrap_file=missing) as other,
        pytest.raises(BootstrapUnavailable) as caught,
    ):
        other.ssl_context(TrustUse.REGISTRATION)
    assert str(caught.value) == (
        f"cannot read the bootstrap CA file {str(missing)!r}: No such file or directory; "
        f"set {BOOTSTRAP_ENV} to a readable PEM file"
    )


def test_malformed_bootstrap_file_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.pem", certs.build("X").pem[:200])
    with (
        open_trust_store(data_dir, bootstrap_file=broken) as store,
        pytest.raises(BootstrapUnavailable, match=r"bootstrap CA file .* is unusable: PEM"),
    ):
        store.anchors_for(TrustUse.REGISTRATION)


def test_registration_context_is_a_strict_client_context(store: TrustStore) -> None:
    context = store.ssl_context(TrustUse.REGISTRATION)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert len(context.get_ca_certs()) == 1


def test_platform_context_holds_manual_and_cloud_anchors(
    store: TrustStore, root: certs.Issued, tmp_path: Path
) -> None:
    store.add_manual_files(
        [write(tmp_path / "m.pem", root.pem)], actor="admin", max_bytes=MAX_INPUT_BYTES
    )
    cloud = certs.build("Cloud CA", key=certs.new_key("ec"))
    store.apply_cloud_set([cloud.der], actor="cloud", sequence=1)
    context = store.ssl_context(TrustUse.PLATFORM)
    subjects = sorted(
        dict(x[0] for x in c["subject"])["commonName"] for c in context.get_ca_certs()
    )
    assert subjects == ["Cloud CA", "Hybridge Test Root A"]
