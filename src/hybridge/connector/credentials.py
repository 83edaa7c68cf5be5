"""What registration leaves on the connector: the stored registration and its private key.

- The registration (connector id, organisation, client certificate, connector CA, the
  list-signing public key, trust mode, CA hint) is one row of ``connector_registration``.
- The private key (EC P-256, PKCS#8 PEM) is a vault secret (AES-256-GCM under a master key
  kept apart from the database, DESIGN.md §3 invariant 5): purpose ``connector.private_key``,
  record ``pending`` while the admin is on the cloud's portal, then the connector id.
- ``clear_cloud_anchors`` empties the trust store's cloud set at deregistration.
  ``TrustStore`` has no public call for that yet (``apply_cloud_set`` refuses an empty
  set), so it is done here with the store's own row helpers, under the store's directory
  lock, followed by the store's atomic bundle export; it belongs in ``TrustStore`` later.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hybridge.storage.db import Database
from hybridge.truststore import AnchorSource, TrustStore
from hybridge.truststore.bundle import render_bundle, write_atomically
from hybridge.truststore.models import AnchorRow, TrustStateRow
from hybridge.truststore.records import CLOUD_SEQUENCE, add_audit, anchor_rows, bundle_pairs
from hybridge.truststore.services import LOCK_NAME
from hybridge.vault import Secret, Vault
from hybridge.web.clock import aware

KEY_PURPOSE = "connector.private_key"
PENDING = "pending"

metadata = sa.MetaData()

registration_table = sa.Table(
    "connector_registration",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("connector_id", sa.String(36), nullable=False),
    sa.Column("cloud_url", sa.String(2000), nullable=False),
    sa.Column("organisation_id", sa.String(36), nullable=False),
    sa.Column("organisation_name", sa.String(200), nullable=False),
    sa.Column("hostname", sa.String(253), nullable=False),
    sa.Column("key_fp", sa.String(64), nullable=False),
    sa.Column("key_secret_id", sa.String(32), nullable=False),
    sa.Column("client_certificate_pem", sa.Text, nullable=False),
    sa.Column("connector_ca_pem", sa.Text, nullable=False),
    sa.Column("list_signing_key_pem", sa.Text, nullable=False),
    sa.Column("trust_mode", sa.String(8), nullable=False),
    sa.Column("cloud_ca_hint", sa.String(1000), nullable=False),
    sa.Column("control_url", sa.String(2000), nullable=False),
    sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("registered_by", sa.String(320), nullable=False),
)


@dataclass(frozen=True)
class Registration:
    """The connector's registration to a cloud (public material only; the key is vaulted)."""

    connector_id: str
    cloud_url: str
    organisation_id: str
    organisation_name: str
    hostname: str
    key_fp: str
    key_secret_id: str
    client_certificate_pem: str
    connector_ca_pem: str
    list_signing_key_pem: str
    trust_mode: str
    cloud_ca_hint: str
    control_url: str
    registered_at: dt.datetime
    registered_by: str

    def __post_init__(self) -> None:
        if self.trust_mode not in ("auto", "manual"):
            raise ValueError(f"trust mode {self.trust_mode!r}; 'auto' or 'manual'")
        if len(self.key_fp) != 64:
            raise ValueError(f"key fingerprint {self.key_fp!r} is not a SHA-256 hex digest")

    @property
    def key_fp_grouped(self) -> str:
        """The key fingerprint in groups of four, as the cloud's approval page shows it."""
        return " ".join(self.key_fp[i : i + 4] for i in range(0, len(self.key_fp), 4))

    def public_view(self) -> dict[str, object]:
        """What pages and the API show (all public; the key never leaves the vault)."""
        return {
            "connector_id": self.connector_id,
            "cloud_url": self.cloud_url,
            "organisation": {"id": self.organisation_id, "name": self.organisation_name},
            "hostname": self.hostname,
            "key_fp": self.key_fp,
            "key_fp_grouped": self.key_fp_grouped,
            "trust_mode": self.trust_mode,
            "cloud_ca_hint": self.cloud_ca_hint,
            "control_url": self.control_url,
            "registered_at": self.registered_at.isoformat(),
            "registered_by": self.registered_by,
        }


def key_fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """docs/registration.md step 1: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo."""
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def new_key() -> tuple[ec.EllipticCurvePrivateKey, Secret]:
    """A fresh EC P-256 key and its PKCS#8 PEM wrapped in a ``Secret`` (never printed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key, Secret(pem)


def load_key(secret: Secret) -> ec.EllipticCurvePrivateKey:
    """The EC key held by ``secret`` (PKCS#8 PEM)."""
    key = serialization.load_pem_private_key(secret.reveal(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the stored connector key is not an EC key")
    return key


class CredentialStore:
    """The registration row and the vaulted key, read and written together."""

    def __init__(self, database: Database, vault: Vault) -> None:
        self._db = database
        self._vault = vault

    # -- the key ----------------------------------------------------------------------

    def put_pending_key(self, secret: Secret, *, actor: str) -> None:
        """Keep the key of a registration in progress (replaces an older pending one)."""
        self._vault.put(KEY_PURPOSE, PENDING, secret, actor=actor)

    def pending_key(self) -> Secret | None:
        """The pending key, or ``None`` when no registration is in progress."""
        ref = self._vault.find(KEY_PURPOSE, PENDING)
        return None if ref is None else self._vault.get(ref)

    def drop_pending_key(self, *, actor: str) -> None:
        """Forget the pending key (registration finished or abandoned)."""
        ref = self._vault.find(KEY_PURPOSE, PENDING)
        if ref is not None:
            self._vault.delete(ref, actor=actor)

    def key_for(self, registration: Registration) -> Secret:
        """The private key of ``registration`` (for mutual TLS)."""
        ref = self._vault.find(KEY_PURPOSE, registration.connector_id)
        if ref is None:
            raise ValueError(f"no key in the vault for connector {registration.connector_id}")
        return self._vault.get(ref)

    # -- the registration -------------------------------------------------------------

    def current(self) -> Registration | None:
        """The stored registration, or ``None``."""
        with self._db.transaction() as session:
            row = session.execute(sa.select(registration_table)).first()
        if row is None:
            return None
        values = dict(row._mapping)
        values.pop("id")
        values["registered_at"] = aware(values["registered_at"])
        return Registration(**values)

    def save(self, registration: Registration, key: Secret, *, actor: str) -> Registration:
        """Store the key under the connector id, then the row; the pending key is dropped.

        The key goes first: a crash in between leaves a key without a registration (which a
        new registration replaces), never a registration whose key is missing.
        """
        ref = self._vault.put(KEY_PURPOSE, registration.connector_id, key, actor=actor)
        stored = Registration(**{**registration.__dict__, "key_secret_id": ref.secret_id})
        values = dict(stored.__dict__)
        with self._db.transaction() as session:
            session.execute(sa.insert(registration_table).values(id=1, **values))
        self.drop_pending_key(actor=actor)
        return stored

    def delete(self, registration: Registration, *, actor: str) -> None:
        """Remove the row and the key."""
        with self._db.transaction() as session:
            session.execute(sa.delete(registration_table))
        ref = self._vault.find(KEY_PURPOSE, registration.connector_id)
        if ref is not None:
            self._vault.delete(ref, actor=actor)

    def secret_count(self) -> int:
        """How many connector keys the vault holds (tests check nothing is left behind)."""
        return len(self._vault.list(KEY_PURPOSE))


def clear_cloud_anchors(
    store: TrustStore, database: Database, *, actor: str, now: dt.datetime
) -> tuple[str, ...]:
    """Remove every cloud anchor and the installed cloud sequence; manual anchors stay.

    The sequence goes too: it protects against a rollback *within* one registration; a new
    registration starts a new relation whose first list is accepted at any sequence.

    Returns the fingerprints removed.
    """
    lock = store.data_dir / LOCK_NAME
    with open(lock, "a+b") as handle:
        # The trust store's own lock (flock on its data directory): no CLI change interleaves.
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        with database.transaction() as session:
            removed = []
            for row in anchor_rows(session):
                if row.source == AnchorSource.CLOUD.value:
                    removed.append(row.fingerprint_sha256)
                    session.delete(row)
            session.execute(sa.delete(TrustStateRow).where(TrustStateRow.name == CLOUD_SEQUENCE))
            add_audit(
                session,
                at=now,
                actor=actor,
                action="trust.cloud_clear",
                removed=removed,
                detail=f"deregistered: {len(removed)} cloud anchors removed",
            )
        with database.transaction() as session:
            pairs = bundle_pairs(session)
        write_atomically(store.bundle_path, render_bundle(pairs))
    return tuple(sorted(removed))


__all__ = [
    "AnchorRow",
    "CredentialStore",
    "Registration",
    "clear_cloud_anchors",
    "key_fingerprint",
    "load_key",
    "new_key",
]
