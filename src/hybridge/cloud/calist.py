"""The CA list the cloud publishes: certificates, versions, and their signed manifests.

Every change (upload, retire, preset, first-start default) makes a new version whose
sequence is one above the last; the version stores its set of fingerprints and the
broadcast manifest (no ``aud``) signed at that moment. A registration delivers the current
version re-signed for the connector (``aud`` = its id, same ``seq``), so a manifest meant for
one connector cannot be replayed to another.

Only CA certificates (basicConstraints cA=TRUE) that are valid now are accepted: a connector
would refuse a manifest carrying anything else (issue 5), so the cloud refuses it first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy.orm import Session

from hybridge.cloud import audit
from hybridge.cloud.errors import CaListError
from hybridge.cloud.keys import CloudKeys
from hybridge.cloud.models import ca_certificate, ca_list_version
from hybridge.core.manifest import CaListManifest, sign_manifest
from hybridge.web.clock import aware

#: Bounds what one upload can make the cloud parse and store.
MAX_UPLOAD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PublishedCa:
    fingerprint: str
    subject: str
    not_after: dt.datetime
    der: bytes


@dataclass(frozen=True)
class CaListVersion:
    sequence: int
    created_at: dt.datetime
    actor: str
    change: str
    fingerprints: tuple[str, ...]
    manifest: str


def fingerprint(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the DER certificate."""
    return cert.fingerprint(hashes.SHA256()).hex()


def parse_ca_pem(data: bytes, now: dt.datetime) -> list[x509.Certificate]:
    """The CA certificates in PEM ``data``, each checked to be a CA and valid at ``now``.

    Raises:
        CaListError: too large, no certificate, unparseable, not a CA, or not valid now.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise CaListError(f"upload of {len(data)} bytes; at most {MAX_UPLOAD_BYTES} accepted")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CaListError(f"not a PEM certificate bundle: {exc}") from exc
    for cert in certs:
        check_ca(cert, now)
    return certs


def check_ca(cert: x509.Certificate, now: dt.datetime) -> None:
    """Raise ``CaListError`` unless ``cert`` is a CA certificate valid at ``now``."""
    subject = cert.subject.rfc4514_string()
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    # RFC 5280 §4.2.1.9: only cA=TRUE certificates may be trust anchors that issue others.
    if constraints is None or not constraints.ca:
        raise CaListError(f"{subject!r} is not a CA certificate (basicConstraints cA is not TRUE)")
    if cert.not_valid_after_utc <= now:
        raise CaListError(f"{subject!r} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if cert.not_valid_before_utc > now:
        raise CaListError(f"{subject!r} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")


#: The PostgreSQL advisory-lock key that serialises CA-list publishers ("HYBCALST").
PUBLISH_LOCK_KEY = 0x4859_4243_414C_5354


def lock_for_publishing(session: Session) -> None:
    """Hold, until ``session``'s transaction ends, the right to publish the next version.

    Every change reads the current version and writes the next one. Two admins (or two
    cloud processes sharing one database) doing that at once would both compute the same
    sequence: one insert then fails on the primary key, and a naive retry would publish a
    list without the other's change. Taking this lock *before* reading serialises them:
    the second reads the first's committed version and builds on it.
    """
    if session.get_bind().dialect.name == "postgresql":
        # Transaction-scoped: released at commit or rollback, even if the process dies.
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(PUBLISH_LOCK_KEY)))
    else:
        # SQLite has one writer at a time: a write statement (even one matching no row)
        # takes the database's write lock now and holds it to the end of the transaction;
        # a second publisher waits here (busy_timeout) rather than at its insert.
        session.execute(
            sa.update(ca_list_version).where(sa.false()).values(actor=ca_list_version.c.actor)
        )


def current_version(session: Session) -> CaListVersion | None:
    """The newest version, or ``None`` before the first."""
    row = session.execute(
        sa.select(ca_list_version).order_by(ca_list_version.c.sequence.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return CaListVersion(
        row.sequence,
        aware(row.created_at),
        row.actor,
        row.change,
        tuple(row.fingerprints),
        row.manifest,
    )


def versions(session: Session, limit: int = 50) -> list[CaListVersion]:
    """The newest versions, newest first."""
    rows = session.execute(
        sa.select(ca_list_version).order_by(ca_list_version.c.sequence.desc()).limit(limit)
    ).all()
    return [
        CaListVersion(
            r.sequence, aware(r.created_at), r.actor, r.change, tuple(r.fingerprints), r.manifest
        )
        for r in rows
    ]


def certificates(session: Session, fingerprints: tuple[str, ...]) -> list[PublishedCa]:
    """The stored certificates of ``fingerprints``, in that order."""
    if not fingerprints:
        return []
    rows = session.execute(
        sa.select(ca_certificate).where(ca_certificate.c.fingerprint.in_(fingerprints))
    ).all()
    by_fp = {
        r.fingerprint: PublishedCa(r.fingerprint, r.subject, aware(r.not_after), r.der)
        for r in rows
    }
    return [by_fp[fp] for fp in fingerprints if fp in by_fp]


def current_certificates(session: Session) -> list[PublishedCa]:
    version = current_version(session)
    return certificates(session, version.fingerprints) if version else []


def _store(session: Session, cert: x509.Certificate, now: dt.datetime) -> str:
    fp = fingerprint(cert)
    exists = session.execute(
        sa.select(ca_certificate.c.fingerprint).where(ca_certificate.c.fingerprint == fp)
    ).first()
    if exists is None:
        session.execute(
            sa.insert(ca_certificate).values(
                fingerprint=fp,
                der=cert.public_bytes(serialization.Encoding.DER),
                subject=cert.subject.rfc4514_string(),
                not_after=cert.not_valid_after_utc,
                added_at=now,
            )
        )
    return fp


def _publish(
    session: Session,
    fingerprints: tuple[str, ...],
    actor: str,
    change: str,
    keys: CloudKeys,
    issuer: str,
    now: dt.datetime,
) -> CaListVersion:
    previous = current_version(session)
    sequence = (previous.sequence if previous else 0) + 1
    ders = tuple(ca.der for ca in certificates(session, fingerprints))
    manifest = sign_manifest(
        CaListManifest(issuer, sequence, int(now.timestamp()), ders), keys.list_signing_key
    )
    session.execute(
        sa.insert(ca_list_version).values(
            sequence=sequence,
            created_at=now,
            actor=actor,
            change=change[:1000],
            fingerprints=list(fingerprints),
            manifest=manifest,
        )
    )
    before = set(previous.fingerprints) if previous else set()
    audit.record(
        session,
        now,
        actor,
        "ca_list.published",
        {
            "sequence": sequence,
            "change": change[:1000],
            "added": sorted(set(fingerprints) - before),
            "removed": sorted(before - set(fingerprints)),
        },
    )
    return CaListVersion(sequence, now, actor, change, fingerprints, manifest)


def add_certificates(
    session: Session,
    certs: list[x509.Certificate],
    actor: str,
    keys: CloudKeys,
    issuer: str,
    now: dt.datetime,
    change: str | None = None,
) -> CaListVersion:
    """Publish a new version: the current list plus ``certs`` (already-listed ones ignored).

    Raises:
        CaListError: nothing new to add, or a certificate is not a valid CA now.
    """
    if not certs:
        raise CaListError("no certificate to add")
    for cert in certs:
        check_ca(cert, now)
    lock_for_publishing(session)
    version = current_version(session)
    listed = list(version.fingerprints) if version else []
    added = []
    for cert in certs:
        fp = _store(session, cert, now)
        if fp not in listed:
            listed.append(fp)
            added.append(cert.subject.rfc4514_string())
    if not added:
        raise CaListError("every uploaded certificate is already in the published list")
    return _publish(
        session, tuple(listed), actor, change or f"added {', '.join(added)}", keys, issuer, now
    )


def retire(
    session: Session, fp: str, actor: str, keys: CloudKeys, issuer: str, now: dt.datetime
) -> CaListVersion:
    """Publish a new version without the certificate ``fp``.

    Raises:
        CaListError: ``fp`` is not in the current list.
    """
    lock_for_publishing(session)
    version = current_version(session)
    listed = list(version.fingerprints) if version else []
    if fp not in listed:
        raise CaListError(f"certificate {fp!r} is not in the published list")
    subject = certificates(session, (fp,))[0].subject
    listed.remove(fp)
    return _publish(session, tuple(listed), actor, f"retired {subject}", keys, issuer, now)


def replace_with(
    session: Session,
    certs: list[x509.Certificate],
    actor: str,
    change: str,
    keys: CloudKeys,
    issuer: str,
    now: dt.datetime,
) -> CaListVersion:
    """Publish a new version holding exactly ``certs`` (a preset)."""
    for cert in certs:
        check_ca(cert, now)
    lock_for_publishing(session)
    fps = tuple(dict.fromkeys(_store(session, cert, now) for cert in certs))
    return _publish(session, fps, actor, change, keys, issuer, now)


def find_roots(
    chains: list[tuple[x509.Certificate, ...]], candidates: list[x509.Certificate]
) -> tuple[list[x509.Certificate], list[str]]:
    """The root each chain ends at: its last certificate when self-signed, else the
    candidate whose subject is that certificate's issuer and whose key verifies it.

    Returns:
        The roots found (no duplicates) and, for each chain without one, the issuer name
        that would be needed.
    """
    roots: dict[str, x509.Certificate] = {}
    missing = []
    for chain in chains:
        if not chain:
            continue
        last = chain[-1]
        if last.subject == last.issuer:
            roots[fingerprint(last)] = last
            continue
        found = None
        for candidate in candidates:
            if candidate.subject != last.issuer:
                continue
            try:
                last.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            found = candidate
            break
        if found is None:
            missing.append(last.issuer.rfc4514_string())
        else:
            roots[fingerprint(found)] = found
    return list(roots.values()), missing


def seed_default(
    session: Session, roots: list[x509.Certificate], keys: CloudKeys, issuer: str, now: dt.datetime
) -> CaListVersion | None:
    """On first start, publish version 1 = the roots of the cloud's own certificates.

    Cloud processes starting together on one database: the first to take the publishing
    lock seeds, the others then see its version and return ``None``.
    """
    if not roots:
        return None
    lock_for_publishing(session)
    if current_version(session) is not None:
        return None
    return replace_with(
        session,
        roots,
        "system",
        "default: roots of the cloud's server and call-service certificates",
        keys,
        issuer,
        now,
    )


def manifest_for(
    session: Session, audience: str, keys: CloudKeys, issuer: str, now: dt.datetime
) -> str | None:
    """The current version signed for connector ``audience`` (``None`` before any version)."""
    version = current_version(session)
    if version is None:
        return None
    ders = tuple(ca.der for ca in certificates(session, version.fingerprints))
    manifest = CaListManifest(issuer, version.sequence, int(now.timestamp()), ders, audience)
    return sign_manifest(manifest, keys.list_signing_key)
