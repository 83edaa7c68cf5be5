"""The cloud set: replaced atomically, checked certificate by certificate, never touching
manual anchors, only with a higher sequence, audited with its diff."""

from __future__ import annotations

from pathlib import Path

import pytest
from truststore_state import NOW, disk_state, write

import certs
from hybridge.core.pki import MAX_INPUT_BYTES, fingerprint_sha256
from hybridge.truststore import (
    AnchorSource,
    CertificatesRejected,
    CloudManagedAnchor,
    StaleCloudSet,
    TrustStore,
    TrustStoreError,
)


def ca(name: str) -> certs.Issued:
    return certs.build(name, key=certs.new_key("ec"))


def fp(issued: certs.Issued) -> str:
    return fingerprint_sha256(issued.der)


def sources(store: TrustStore) -> dict[str, str]:
    return {r.anchor.fingerprint_sha256: r.anchor.source.value for r in store.list_anchors()}


def test_first_cloud_set_is_installed_with_its_sequence(store: TrustStore) -> None:
    a, b = ca("Cloud A"), ca("Cloud B")
    result = store.apply_cloud_set([a.der, b.der], actor="cloud:push", sequence=1)

    assert result.sequence == 1
    assert sorted(result.added) == sorted([fp(a), fp(b)])
    assert (result.removed, result.kept_manual, result.unchanged) == ((), (), ())
    assert store.installed_cloud_sequence() == 1
    assert sources(store) == {fp(a): "cloud", fp(b): "cloud"}
    assert all(r.anchor.cloud_sequence == 1 for r in store.list_anchors())
    [entry] = store.audit_log()
    assert entry.action == "trust.cloud_apply"
    assert entry.actor == "cloud:push"
    assert entry.detail == "sequence 1 installed (was None)"


def test_next_set_replaces_the_previous_one_and_audits_the_diff(store: TrustStore) -> None:
    a, b, c = ca("Cloud A"), ca("Cloud B"), ca("Cloud C")
    store.apply_cloud_set([a.der, b.der], actor="cloud:push", sequence=1)
    result = store.apply_cloud_set([b.der, c.der], actor="cloud:push", sequence=2)

    assert (result.added, result.removed, result.unchanged) == ((fp(c),), (fp(a),), (fp(b),))
    assert sources(store) == {fp(b): "cloud", fp(c): "cloud"}
    entry = store.audit_log()[0]
    assert (entry.added, entry.removed) == ((fp(c),), (fp(a),))
    assert entry.detail == "sequence 2 installed (was 1)"
    bundle = store.bundle_path.read_text()
    assert fp(a) not in bundle and fp(b) in bundle and fp(c) in bundle


def test_cloud_set_never_touches_manual_anchors(store: TrustStore, tmp_path: Path) -> None:
    manual_only, both, cloud_only = ca("Manual Only"), ca("In Both"), ca("Cloud Only")
    store.add_manual_files(
        [write(tmp_path / "m.pem", manual_only.pem + both.pem)],
        actor="admin",
        max_bytes=MAX_INPUT_BYTES,
    )
    result = store.apply_cloud_set([both.der, cloud_only.der], actor="cloud", sequence=1)

    assert result.kept_manual == (fp(both),)
    assert result.added == (fp(cloud_only),)
    assert sources(store) == {
        fp(manual_only): "manual",
        fp(both): "manual",
        fp(cloud_only): "cloud",
    }
    assert f"kept as manual: {fp(both)}" in (store.audit_log()[0].detail or "")

    # A later set without them removes only cloud anchors.
    store.apply_cloud_set([ca("Cloud Next").der], actor="cloud", sequence=2)
    remaining = sources(store)
    assert remaining[fp(manual_only)] == remaining[fp(both)] == "manual"
    assert fp(cloud_only) not in remaining
    manual = [r for r in store.list_anchors() if r.anchor.source is AnchorSource.MANUAL]
    assert all(r.anchor.added_by == "admin" and r.anchor.cloud_sequence is None for r in manual)


def test_a_set_with_bad_certificates_is_refused_whole(store: TrustStore) -> None:
    good = ca("Cloud Good")
    store.apply_cloud_set([good.der], actor="cloud", sequence=1)
    before = disk_state(store.data_dir)

    expired = certs.build("Cloud Expired", not_after=NOW.replace(year=2026, month=1))
    leaf = certs.build("leaf.example", issuer=good, key=certs.new_key("ec"), is_ca=False)
    weak = certs.build("Cloud Weak", key_type="rsa", key_size=1024)
    bundle_of_two = good.der + ca("Another").der
    with pytest.raises(CertificatesRejected) as caught:
        store.apply_cloud_set(
            [ca("Cloud New").der, expired.der, leaf.der, b"garbage", weak.der, bundle_of_two],
            actor="cloud",
            sequence=2,
        )

    rejects = [(r.index, r.reason.split(":")[0]) for r in caught.value.rejects]
    assert rejects == [
        (1, "expired"),
        (2, "not a CA certificate (basicConstraints does not say CA"),
        (
            3,
            "no certificate found in 7 bytes of text; expected PEM "
            "(-----BEGIN CERTIFICATE-----), DER, or PKCS#7 (.p7b/.p7c, PEM, DER or base64)",
        ),
        (4, "weak"),
        (5, "the DER certificate is malformed"),
    ]
    assert str(caught.value).startswith(
        "cloud CA set 2 refused, the installed set is kept: 5 certificates refused: "
    )
    assert disk_state(store.data_dir) == before
    assert store.installed_cloud_sequence() == 1


def test_empty_set_is_refused(store: TrustStore) -> None:
    store.apply_cloud_set([ca("Cloud A").der], actor="cloud", sequence=1)
    before = disk_state(store.data_dir)
    with pytest.raises(CertificatesRejected) as caught:
        store.apply_cloud_set([], actor="cloud", sequence=2)
    assert str(caught.value).endswith("cloud set: holds no certificate")
    assert disk_state(store.data_dir) == before


@pytest.mark.parametrize("sequence", [5, 4, 0])
def test_a_sequence_not_above_the_installed_one_is_refused(
    store: TrustStore, sequence: int
) -> None:
    store.apply_cloud_set([ca("Cloud A").der], actor="cloud", sequence=5)
    before = disk_state(store.data_dir)
    with pytest.raises(StaleCloudSet) as caught:
        store.apply_cloud_set([ca("Cloud Replay").der], actor="cloud", sequence=sequence)
    assert str(caught.value) == (
        f"cloud CA set {sequence} refused: sequence 5 is installed and only a higher "
        "sequence replaces it"
    )
    assert disk_state(store.data_dir) == before


@pytest.mark.parametrize("sequence", [-1, True, "3"])
def test_sequence_must_be_a_non_negative_integer(store: TrustStore, sequence: object) -> None:
    with pytest.raises(TrustStoreError, match="a non-negative integer is expected"):
        store.apply_cloud_set([ca("Cloud A").der], actor="cloud", sequence=sequence)  # type: ignore[arg-type]


def test_cloud_anchor_cannot_be_removed_by_hand(store: TrustStore, tmp_path: Path) -> None:
    cloud = ca("Cloud A")
    manual = ca("Manual A")
    store.apply_cloud_set([cloud.der], actor="cloud", sequence=1)
    store.add_manual_files(
        [write(tmp_path / "m.pem", manual.pem)], actor="admin", max_bytes=MAX_INPUT_BYTES
    )
    before = disk_state(store.data_dir)

    # Named together with a manual anchor: all or nothing, so neither is removed.
    with pytest.raises(CloudManagedAnchor) as caught:
        store.remove_manual([fp(manual), fp(cloud)], actor="admin")

    assert str(caught.value) == (
        f"anchor {fp(cloud)} is managed by the cloud; it leaves the store when the cloud's CA "
        "list drops it, it cannot be removed by hand"
    )
    assert disk_state(store.data_dir) == before
