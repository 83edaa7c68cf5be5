"""The stored registration, the vaulted key, and clearing the cloud set at deregistration."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from connector_app import App

import certs
from hybridge.connector.credentials import Registration, clear_cloud_anchors, new_key
from hybridge.truststore import CertificateSource


def _registration(key_fp: str) -> Registration:
    return Registration(
        connector_id="6d1c2c8e-1111-4222-8333-444455556666",
        cloud_url="https://cloud.test",
        organisation_id="org-1",
        organisation_name="Acme",
        hostname="connector.test",
        key_fp=key_fp,
        key_secret_id="0" * 32,
        client_certificate_pem="-----BEGIN CERTIFICATE-----",
        connector_ca_pem="-----BEGIN CERTIFICATE-----",
        list_signing_key_pem="-----BEGIN PUBLIC KEY-----",
        trust_mode="auto",
        cloud_ca_hint="CN=Root",
        control_url="wss://cloud.test/control",
        registered_at=dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
        registered_by="web:admin",
    )


def test_private_key_is_encrypted_at_rest_and_removed_with_the_registration(
    app: App, tmp_path: Path
) -> None:
    credentials = app.services.credentials
    _key, secret = new_key()
    credentials.put_pending_key(secret, actor="test")
    stored = credentials.save(_registration("ab" * 32), secret, actor="test")
    assert credentials.current() == stored
    assert credentials.key_for(stored).reveal() == secret.reveal()
    assert credentials.pending_key() is None  # promoted, not copied
    # Nothing on disk holds the key in the clear: not the database, not any other file.
    for path in (tmp_path / "connector").rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes(), path
    with app.services.database.transaction() as db:
        ciphertexts = db.execute(sa.text("SELECT ciphertext FROM vault_secrets")).scalars().all()
    assert len(ciphertexts) == 1 and b"PRIVATE KEY" not in ciphertexts[0]
    credentials.delete(stored, actor="test")
    assert credentials.current() is None and credentials.secret_count() == 0


def test_registration_refuses_a_bad_trust_mode_or_fingerprint() -> None:
    import pytest

    with pytest.raises(ValueError, match="trust mode 'sometimes'"):
        Registration(**{**_registration("ab" * 32).__dict__, "trust_mode": "sometimes"})
    with pytest.raises(ValueError, match="is not a SHA-256 hex digest"):
        _registration("abc")


def test_clear_cloud_anchors_keeps_manual_ones_and_forgets_the_sequence(app: App) -> None:
    store = app.services.store
    manual, cloud_a, cloud_b = (certs.build(f"Clear Root {n}") for n in "MAB")
    store.add_manual([CertificateSource("m.pem", manual.pem)], actor="test")
    applied = store.apply_cloud_set([cloud_a.der, cloud_b.der], actor="cloud", sequence=7)
    removed = clear_cloud_anchors(
        store, app.services.database, actor="test", now=dt.datetime.now(dt.UTC)
    )
    assert removed == tuple(sorted(applied.added))
    assert [r.anchor.source.value for r in store.list_anchors()] == ["manual"]
    assert store.installed_cloud_sequence() is None
    assert store.bundle_path.read_text().count("BEGIN CERTIFICATE") == 1
    entry = store.audit_log(limit=1)[0]
    assert entry.action == "trust.cloud_clear" and entry.removed == removed
    # A new cloud set at any sequence is accepted again (a new registration).
    store.apply_cloud_set([cloud_a.der], actor="cloud", sequence=1)
