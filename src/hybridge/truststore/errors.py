"""The trust store's exceptions, rooted at ``TrustStoreError``.

    TrustStoreError                 (a HybridgeError: one sentence for the admin)
     ├── CertificatesRejected       add or cloud apply refused whole; lists each bad certificate
     ├── InvalidFingerprint         not a SHA-256 fingerprint or a long enough prefix of one
     ├── AnchorNotFound             no manual or cloud anchor has that fingerprint
     ├── AmbiguousFingerprint       a prefix matches several anchors; lists them
     ├── CloudManagedAnchor         a cloud anchor cannot be removed by hand
     ├── StaleCloudSet              a cloud set whose sequence is not above the installed one
     ├── BootstrapUnavailable       the bootstrap PEM file is missing or unreadable
     ├── NoAnchors                  an SSL context was asked for a use with no anchor
     └── TrustStoreIOError          the data directory or the bundle file cannot be written

Every one of them leaves the store as it was (the checks run before the one transaction
that changes anything), except a ``TrustStoreIOError`` raised after the commit, whose
message says that the change was saved and the bundle is rewritten at the next open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hybridge.core.errors import HybridgeError


class TrustStoreError(HybridgeError):
    """The trust store refused an operation (see the module docstring for what changed)."""


@dataclass(frozen=True)
class Reject:
    """One certificate (or one whole input) that was refused, and why.

    ``index`` is the 0-based position of the certificate inside its input, ``None`` when the
    whole input was refused (empty, too large, not a certificate format).
    """

    source: str
    index: int | None
    reason: str

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError("a Reject needs the name of its input")
        if self.index is not None and self.index < 0:
            raise ValueError(f"certificate index must be >= 0, got {self.index!r}")
        if not self.reason:
            raise ValueError("a Reject needs a reason")

    def __str__(self) -> str:
        # Humans count certificates from 1; the JSON output keeps the 0-based index.
        where = self.source if self.index is None else f"{self.source} certificate {self.index + 1}"
        return f"{where}: {self.reason}"


class CertificatesRejected(TrustStoreError):
    """At least one certificate was refused, so nothing was added or applied."""

    def __init__(self, what: str, rejects: Sequence[Reject]) -> None:
        self.rejects = tuple(rejects)
        count = len(self.rejects)
        noun = "certificate" if count == 1 else "certificates"
        listed = "; ".join(str(r) for r in self.rejects)
        super().__init__(f"{what}: {count} {noun} refused: {listed}")


class InvalidFingerprint(TrustStoreError):
    """The text given is not a SHA-256 fingerprint or an accepted prefix of one."""


class AnchorNotFound(TrustStoreError):
    """No manual or cloud anchor matches the fingerprint."""


class AmbiguousFingerprint(TrustStoreError):
    """A fingerprint prefix matches more than one anchor."""

    def __init__(self, prefix: str, candidates: Sequence[str]) -> None:
        self.prefix = prefix
        self.candidates = tuple(candidates)
        super().__init__(
            f"fingerprint prefix {prefix!r} matches {len(self.candidates)} anchors "
            f"({', '.join(self.candidates)}); give more hex digits"
        )


class CloudManagedAnchor(TrustStoreError):
    """A cloud anchor was named for removal; only the cloud changes its set."""


class StaleCloudSet(TrustStoreError):
    """A cloud set's sequence is not higher than the installed one (replay or reordering)."""


class BootstrapUnavailable(TrustStoreError):
    """The bootstrap anchor file cannot be read or holds a certificate that does not load."""


class NoAnchors(TrustStoreError):
    """There is no anchor for the requested use, so no TLS peer could ever be verified."""


class TrustStoreIOError(TrustStoreError):
    """The data directory or the exported bundle cannot be created or written."""
