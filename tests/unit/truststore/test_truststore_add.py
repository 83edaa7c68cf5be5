"""Manual anchors: add all or nothing, duplicates, non-CAs, statuses, audit, bundle."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from truststore_state import NOW, disk_state, write

import certs
from hybridge.core.pki import MAX_INPUT_BYTES, fingerprint_sha256, load_certificates
from hybridge.truststore import (
    AnchorSource,
    CertificateSource,
    CertificatesRejected,
    TrustStore,
    TrustStoreService,
    open_trust_store,
)
from hybridge.truststore.checks import NOT_A_CA


def add_files(store: TrustStore, *paths: Path, allow_non_ca: bool = False):
    return store.add_manual_files(
        list(paths), actor="test:admin", allow_non_ca=allow_non_ca, max_bytes=MAX_INPUT_BYTES
    )


def test_add_stores_the_anchor_audits_it_and_exports_the_bundle(
    store: TrustStore, root: certs.Issued, tmp_path: Path
) -> None:
    result = add_files(store, write(tmp_path / "root.pem", root.pem))

    fingerprint = fingerprint_sha256(root.der)
    assert result.added == (fingerprint,)
    assert result.duplicates == ()
    assert result.subjects == {fingerprint: "CN=Hybridge Test Root A,O=Hybridge Tests,C=US"}
    [report] = store.list_anchors()
    assert report.anchor.source is AnchorSource.MANUAL
    assert report.anchor.added_by == "test:admin"
    assert report.anchor.added_at == NOW
    assert report.assessment.status == "valid"
    [entry] = store.audit_log()
    assert (entry.action, entry.actor, entry.added, entry.removed) == (
        "trust.add",
        "test:admin",
        (fingerprint,),
        (),
    )
    bundle = store.bundle_path.read_bytes()
    assert [p.der for p in load_certificates(bundle)] == [root.der]


def test_data_dir_is_private_and_holds_the_sqlite_database(store: TrustStore) -> None:
    mode = stat.S_IMODE(store.data_dir.stat().st_mode)
    assert mode == 0o700
    assert (store.data_dir / "hybridge.db").is_file()


def test_one_add_of_many_files_is_one_audit_record(
    store: TrustStore, root: certs.Issued, other_root: certs.Issued, tmp_path: Path
) -> None:
    result = add_files(
        store, write(tmp_path / "a.pem", root.pem), write(tmp_path / "b.der", other_root.der)
    )
    assert len(result.added) == 2
    assert len(store.audit_log()) == 1
    assert sorted(store.audit_log()[0].added) == sorted(result.added)


def test_duplicates_are_reported_and_skipped(
    store: TrustStore, root: certs.Issued, other_root: certs.Issued, tmp_path: Path
) -> None:
    first = write(tmp_path / "root.pem", root.pem)
    add_files(store, first)
    before = disk_state(store.data_dir)

    # Same certificate again, and twice within one batch next to a new one.
    result = add_files(store, first, write(tmp_path / "both.pem", other_root.pem * 2))

    fingerprint, other = fingerprint_sha256(root.der), fingerprint_sha256(other_root.der)
    assert result.added == (other,)
    assert [(d.source, d.index, d.fingerprint_sha256, d.already_in) for d in result.duplicates] == [
        (str(first), 0, fingerprint, "manual"),
        (str(tmp_path / "both.pem"), 1, other, "batch"),
    ]
    assert len(disk_state(store.data_dir).anchors) == len(before.anchors) + 1


def test_only_duplicates_change_nothing(
    store: TrustStore, root: certs.Issued, tmp_path: Path
) -> None:
    path = write(tmp_path / "root.pem", root.pem)
    add_files(store, path)
    before = disk_state(store.data_dir)
    result = add_files(store, path)
    assert result.added == ()
    assert disk_state(store.data_dir) == before


def test_non_ca_is_refused_and_nothing_is_added(
    store: TrustStore, root: certs.Issued, tmp_path: Path
) -> None:
    leaf = certs.build("leaf.example", issuer=root, key=certs.new_key("ec"), is_ca=False)
    before = disk_state(store.data_dir)
    good = write(tmp_path / "root.pem", root.pem)
    bad = write(tmp_path / "leaf.pem", leaf.pem)

    with pytest.raises(CertificatesRejected) as caught:
        add_files(store, good, bad)

    assert [(r.source, r.index, r.reason) for r in caught.value.rejects] == [
        (str(bad), 0, NOT_A_CA)
    ]
    assert str(caught.value) == (
        f"nothing was added: 1 certificate refused: {bad} certificate 1: {NOT_A_CA}"
    )
    assert disk_state(store.data_dir) == before


def test_certificate_without_basic_constraints_is_not_a_ca(
    store: TrustStore, tmp_path: Path
) -> None:
    no_bc = certs.build("No Basic Constraints", basic_constraints=False)
    with pytest.raises(CertificatesRejected) as caught:
        add_files(store, write(tmp_path / "nobc.pem", no_bc.pem))
    assert caught.value.rejects[0].reason == NOT_A_CA


def test_non_ca_is_added_when_allowed(
    store: TrustStore, root: certs.Issued, tmp_path: Path
) -> None:
    leaf = certs.build("leaf.example", issuer=root, key=certs.new_key("ec"), is_ca=False)
    result = add_files(store, write(tmp_path / "leaf.pem", leaf.pem), allow_non_ca=True)
    assert result.added == (fingerprint_sha256(leaf.der),)
    [report] = store.list_anchors()
    assert report.assessment.status == "not_a_ca"


def test_forged_self_signature_is_refused(store: TrustStore, tmp_path: Path) -> None:
    forged = certs.tamper_signature(certs.build("Forged Root", key=certs.new_key("ec")).certificate)
    before = disk_state(store.data_dir)
    with pytest.raises(CertificatesRejected) as caught:
        add_files(store, write(tmp_path / "forged.der", forged))
    [reject] = caught.value.rejects
    assert reject.index == 0
    assert "self-signature does not verify" in reject.reason
    assert disk_state(store.data_dir) == before


def test_error_lists_every_bad_certificate_by_file_and_index(
    store: TrustStore, root: certs.Issued, tmp_path: Path
) -> None:
    leaf = certs.build("leaf.example", issuer=root, key=certs.new_key("ec"), is_ca=False)
    mixed = write(tmp_path / "mixed.pem", root.pem + leaf.pem)
    empty = write(tmp_path / "empty.pem", b"")
    missing = tmp_path / "missing.pem"

    with pytest.raises(CertificatesRejected) as caught:
        add_files(store, mixed, empty, missing)

    assert [(r.source, r.index) for r in caught.value.rejects] == [
        (str(missing), None),
        (str(mixed), 1),
        (str(empty), None),
    ]
    reasons = [r.reason for r in caught.value.rejects]
    assert reasons[0] == "cannot read it: No such file or directory"
    assert reasons[1] == NOT_A_CA
    assert reasons[2] == "the input is empty; expected PEM, DER or PKCS#7 certificates"
    assert store.list_anchors() == ()


def test_expired_and_weak_cas_are_kept_with_their_status(store: TrustStore, tmp_path: Path) -> None:
    # The seed's Baltimore CyberTrust Root expired on 2025-05-12; GoDaddy Class 2 has a
    # SHA-1 self-signature and serial 0. Both must load and be shown, not hidden.
    baltimore = write(tmp_path / "baltimore.pem", certs.real_root("baltimore-cybertrust-root.pem"))
    expired = certs.build("Expired Root", not_after=NOW.replace(year=2026, month=1))
    add_files(store, baltimore, write(tmp_path / "expired.pem", expired.pem))
    statuses = {r.info.subject: r.assessment.status.value for r in store.list_anchors()}
    assert statuses == {
        "CN=Baltimore CyberTrust Root,OU=CyberTrust,O=Baltimore,C=IE": "expired",
        "CN=Expired Root,O=Hybridge Tests,C=US": "expired",
    }


def test_sources_in_memory_use_their_names_in_errors(store: TrustStore) -> None:
    with pytest.raises(CertificatesRejected) as caught:
        store.add_manual([CertificateSource("upload #1", b"")], actor="web:admin")
    assert str(caught.value).startswith("nothing was added: 1 certificate refused: upload #1: ")


def test_reopening_keeps_the_anchors(
    data_dir: Path, bootstrap_file: Path, root: certs.Issued, tmp_path: Path
) -> None:
    with open_trust_store(data_dir, bootstrap_file=bootstrap_file) as first:
        add_files(first, write(tmp_path / "root.pem", root.pem))
        bundle = first.bundle_path.read_bytes()
    with open_trust_store(data_dir, bootstrap_file=bootstrap_file) as second:
        assert [r.anchor.der for r in second.list_anchors()] == [root.der]
        assert second.bundle_path.read_bytes() == bundle
        assert [e.action for e in second.audit_log()] == ["trust.add"]


def test_store_implements_the_service_interface(store: TrustStore) -> None:
    assert isinstance(store, TrustStoreService)


def test_expiring_soon_follows_the_warning_window(store: TrustStore, tmp_path: Path) -> None:
    soon = certs.build("Soon Root", not_after=NOW + dt.timedelta(days=10))
    add_files(store, write(tmp_path / "soon.pem", soon.pem))
    [within] = store.list_anchors(warn_days=30)
    assert (within.assessment.status.value, within.expiring_soon, within.ok) == (
        "valid",
        True,
        False,
    )
    [outside] = store.list_anchors(warn_days=9)
    assert (outside.expiring_soon, outside.ok) == (False, True)


def test_informational_warnings_do_not_make_an_anchor_bad(
    store: TrustStore, tmp_path: Path
) -> None:
    # GoDaddy Class 2: serial number 0 (a warning), valid until 2034.
    add_files(store, write(tmp_path / "gd.pem", certs.real_root("go-daddy-class-2-ca.pem")))
    [report] = store.list_anchors()
    assert report.assessment.warnings
    assert report.ok
