"""``TrustStoreView``: reading the trust store and using it, without changing anything.

The read side of ``TrustStore`` (which adds the changes): what the edge, the calendar
connector and the TLS clients need. Bootstrap anchors are reachable only through
``anchors_for(TrustUse.REGISTRATION)``, which logs every use.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

from cryptography import x509

from hybridge.core.pki import assess, describe, load_certificates
from hybridge.storage.db import Database
from hybridge.truststore.bootstrap import load_bootstrap
from hybridge.truststore.bundle import BUNDLE_NAME, render_bundle
from hybridge.truststore.contexts import client_context, log_bootstrap_use
from hybridge.truststore.errors import TrustStoreError
from hybridge.truststore.fingerprints import resolve
from hybridge.truststore.interfaces import AnchorReport, AuditEntry, TrustUse
from hybridge.truststore.models import AnchorRow
from hybridge.truststore.records import (
    anchor_rows,
    audit_entries,
    bundle_pairs,
    cloud_sequence,
    fingerprint_of,
    to_anchor,
)


def utc_now() -> datetime:
    """The current time, aware and in UTC (the store's default clock)."""
    return datetime.now(UTC)


class TrustStoreView:
    """Read and use the manual and cloud anchors of one data directory (and bootstrap)."""

    def __init__(
        self,
        database: Database,
        data_dir: Path,
        *,
        bootstrap_file: Path | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = database
        self.data_dir = data_dir
        self._bootstrap_file = bootstrap_file
        self._clock = clock

    # -- paths and plumbing ---------------------------------------------------------------

    @property
    def bundle_path(self) -> Path:
        """The exported platform bundle (manual + cloud anchors, PEM)."""
        return self.data_dir / BUNDLE_NAME

    def close(self) -> None:
        """Release the database engine."""
        self._db.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError(f"the trust store's clock must return aware UTC times, got {now!r}")
        return now.astimezone(UTC)

    def installed_cloud_sequence(self) -> int | None:
        """The sequence of the installed cloud set, or ``None`` before the first one."""
        with self._db.transaction() as session:
            return cloud_sequence(session)

    def _report(self, row: AnchorRow, *, now: datetime, warn_days: int) -> AnchorReport:
        anchor = to_anchor(row)
        cert = load_certificates(row.der)[0].certificate
        if cert is None:  # pragma: no cover - only certificates that load are stored
            raise TrustStoreError(f"stored anchor {row.fingerprint_sha256} no longer loads")
        assessment = assess(cert, now, warn_days=warn_days)
        info = describe(cert)
        return AnchorReport(
            anchor=anchor,
            certificate=cert,
            info=info,
            assessment=assessment,
            # The same rule as assess()'s expiry warning, kept as a flag so that a caller
            # need not recognise the warning's text.
            expiring_soon=now <= info.not_after <= now + timedelta(days=warn_days),
        )

    def list_anchors(self, *, warn_days: int = 30) -> tuple[AnchorReport, ...]:
        """The manual and cloud anchors, described and assessed now, by source then subject."""
        now = self._now()
        with self._db.transaction() as session:
            rows = anchor_rows(session)
        reports = [self._report(row, now=now, warn_days=warn_days) for row in rows]
        return tuple(sorted(reports, key=lambda r: (r.anchor.source.value, r.info.subject.lower())))

    def find(self, fingerprint_or_prefix: str, *, warn_days: int = 30) -> AnchorReport:
        """The manual or cloud anchor whose fingerprint starts with the given hex digits.

        Raises:
            InvalidFingerprint, AnchorNotFound, AmbiguousFingerprint.
        """
        with self._db.transaction() as session:
            rows = anchor_rows(session)
        return self._report(
            resolve(rows, fingerprint_or_prefix, fingerprint_of),
            now=self._now(),
            warn_days=warn_days,
        )

    def export_pem(self) -> str:
        """The platform-wide bundle (manual + cloud anchors) as PEM text; never bootstrap."""
        with self._db.transaction() as session:
            pairs = bundle_pairs(session)
        return render_bundle(pairs).decode("ascii")

    def audit_log(self, *, limit: int = 100) -> tuple[AuditEntry, ...]:
        """The newest ``limit`` audit records, newest first."""
        with self._db.transaction() as session:
            return audit_entries(session, limit)

    # -- use ------------------------------------------------------------------------------

    def anchors_for(self, use: TrustUse) -> tuple[x509.Certificate, ...]:
        """The anchors a TLS client may verify ``use`` connections with.

        ``REGISTRATION``: the bootstrap set only, and every call is logged with the
        fingerprints handed out. ``PLATFORM``: manual + cloud anchors.

        Raises:
            BootstrapUnavailable: the bootstrap file cannot be loaded.
        """
        if use is TrustUse.REGISTRATION:
            origin, anchors = load_bootstrap(self._bootstrap_file)
            log_bootstrap_use(origin, anchors)
            return tuple(anchor.certificate for anchor in anchors)
        if use is TrustUse.PLATFORM:
            with self._db.transaction() as session:
                ders = [row.der for row in anchor_rows(session)]
            certs = [load_certificates(der)[0].certificate for der in ders]
            return tuple(cert for cert in certs if cert is not None)
        raise TrustStoreError(f"unknown trust use {use!r}; expected one of {list(TrustUse)}")

    def ssl_context(self, use: TrustUse) -> ssl.SSLContext:
        """A TLS client context (TLS >= 1.2, certificate and host name required) for ``use``.

        Raises:
            NoAnchors: the set for ``use`` is empty.
            BootstrapUnavailable: ``use`` is registration and the bootstrap file is unusable.
        """
        return client_context(self.anchors_for(use), use)
