"""What the trust store offers, as values and one interface; ``services`` implements it.

The connector keeps three anchor sets (DESIGN.md §3, invariant 1 and 2):

- *bootstrap*: shipped read-only with the package, used only to reach the cloud's
  registration endpoints, never listed, never exported;
- *manual*: what an admin uploads;
- *cloud*: what the cloud pushes; replaced as a whole, never touching manual entries.

``TrustUse`` names what an anchor set may be used for, so that a caller asks for "the
anchors for registration" and cannot pick the bootstrap set by accident.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, runtime_checkable

from cryptography import x509

from hybridge.core.pki import Assessment, CertificateInfo, Status

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


class TrustUse(StrEnum):
    """What TLS connection the anchors will verify."""

    #: Only the cloud's registration endpoints, before any cloud set is installed:
    #: the bootstrap anchors and nothing else.
    REGISTRATION = "registration"
    #: Everything else (cloud API after registration, Exchange, the edge): manual + cloud.
    PLATFORM = "platform"


class AnchorSource(StrEnum):
    """Where a listed anchor came from (bootstrap anchors are never listed)."""

    MANUAL = "manual"
    CLOUD = "cloud"


def _check_fingerprint(value: str) -> None:
    if not _FINGERPRINT.fullmatch(value):
        raise ValueError(f"not a lowercase SHA-256 hex fingerprint: {value!r}")


def _check_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError(f"{name} must be an aware UTC datetime, got {value!r}")


@dataclass(frozen=True)
class TrustAnchor:
    """A manual or cloud anchor as stored: the certificate's DER and its provenance."""

    fingerprint_sha256: str
    der: bytes = field(repr=False)
    source: AnchorSource
    added_at: datetime
    added_by: str
    #: The cloud set sequence that installed the anchor; ``None`` for manual anchors.
    cloud_sequence: int | None = None

    def __post_init__(self) -> None:
        _check_fingerprint(self.fingerprint_sha256)
        _check_aware("added_at", self.added_at)
        if not self.der:
            raise ValueError("an anchor needs its certificate's DER")
        if not self.added_by:
            raise ValueError("an anchor needs the actor that added it")
        if (self.source is AnchorSource.CLOUD) != (self.cloud_sequence is not None):
            raise ValueError(
                f"cloud_sequence is set for cloud anchors only (source {self.source.value!r}, "
                f"cloud_sequence {self.cloud_sequence!r})"
            )


@dataclass(frozen=True)
class AnchorReport:
    """An anchor with its decoded description and its assessment at a given time."""

    anchor: TrustAnchor
    certificate: x509.Certificate = field(repr=False, compare=False)
    info: CertificateInfo
    assessment: Assessment
    #: Not expired, but notAfter is within the ``warn_days`` the report was made with.
    expiring_soon: bool = False

    @property
    def ok(self) -> bool:
        """Valid and not expiring soon: what ``trust check`` wants of every anchor.

        Other warnings (a non-positive serial, a version 1 root) are information only.
        """
        return self.assessment.status is Status.VALID and not self.expiring_soon


@dataclass(frozen=True)
class Duplicate:
    """A certificate skipped because the store (or the same batch) already holds it."""

    source: str
    index: int
    fingerprint_sha256: str
    #: ``manual``, ``cloud`` or ``batch`` (seen earlier in the same add).
    already_in: str


@dataclass(frozen=True)
class AddResult:
    """What ``add_manual`` did: the fingerprints added, and the duplicates it skipped."""

    added: tuple[str, ...]
    duplicates: tuple[Duplicate, ...] = ()
    #: RFC 4514 subject of each added anchor, by fingerprint (what the CLI prints).
    subjects: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class CloudApplyResult:
    """What ``apply_cloud_set`` changed, for the audit log and the caller."""

    sequence: int
    added: tuple[str, ...]
    removed: tuple[str, ...]
    #: Fingerprints of the cloud set that the store keeps as manual anchors (never touched).
    kept_manual: tuple[str, ...]
    unchanged: tuple[str, ...]


@dataclass(frozen=True)
class AuditEntry:
    """One audit record: when, who or what, which action, the fingerprints it changed."""

    id: int
    at: datetime
    actor: str
    action: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    detail: str | None

    def __post_init__(self) -> None:
        _check_aware("at", self.at)


@dataclass(frozen=True)
class CertificateSource:
    """The bytes of one input (a file, an upload) and the name used in error messages."""

    name: str
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a certificate source needs a name for error messages")


@runtime_checkable
class TrustStoreService(Protocol):
    """The connector's trust store, as the CLI, the web UI and the TLS clients see it."""

    def add_manual(
        self, sources: Sequence[CertificateSource], *, actor: str, allow_non_ca: bool = False
    ) -> AddResult: ...

    def remove_manual(self, fingerprints: Sequence[str], *, actor: str) -> tuple[str, ...]: ...

    def apply_cloud_set(
        self, certs_der: Sequence[bytes], *, actor: str, sequence: int
    ) -> CloudApplyResult: ...

    def list_anchors(self, *, warn_days: int = 30) -> tuple[AnchorReport, ...]: ...

    def find(self, fingerprint_or_prefix: str, *, warn_days: int = 30) -> AnchorReport: ...

    def export_pem(self) -> str: ...

    def anchors_for(self, use: TrustUse) -> tuple[x509.Certificate, ...]: ...

    def ssl_context(self, use: TrustUse) -> ssl.SSLContext: ...

    def audit_log(self, *, limit: int = 100) -> tuple[AuditEntry, ...]: ...
