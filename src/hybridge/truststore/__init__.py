"""The connector's CA trust store: bootstrap, manual and cloud anchor sets.

- ``interfaces``: ``TrustUse``, ``AnchorSource``, the values returned, ``TrustStoreService``;
- ``services``: ``TrustStore`` (every change) and ``open_trust_store``;
- ``view``: ``TrustStoreView``, the read and use side (list, find, export, SSL contexts);
- ``records``: the rows read and written inside a transaction;
- ``fingerprints``: naming anchors by fingerprint or unique prefix;
- ``models``: the SQLAlchemy rows (``anchors``, ``trust_state``, the shared ``audit_log``);
- ``checks``: what may enter the manual and the cloud sets;
- ``bootstrap``: the read-only set shipped in the package (``bootstrap.pem``);
- ``bundle``: the atomically rewritten ``trust-bundle.pem``;
- ``contexts``: ``ssl.SSLContext`` for a ``TrustUse``;
- ``errors``: ``TrustStoreError`` and its subclasses.
"""

from hybridge.truststore.errors import (
    AmbiguousFingerprint,
    AnchorNotFound,
    BootstrapUnavailable,
    CertificatesRejected,
    CloudManagedAnchor,
    InvalidFingerprint,
    NoAnchors,
    Reject,
    StaleCloudSet,
    TrustStoreError,
    TrustStoreIOError,
)
from hybridge.truststore.interfaces import (
    AddResult,
    AnchorReport,
    AnchorSource,
    AuditEntry,
    CertificateSource,
    CloudApplyResult,
    Duplicate,
    TrustAnchor,
    TrustStoreService,
    TrustUse,
)
from hybridge.truststore.services import TrustStore, open_trust_store
from hybridge.truststore.view import TrustStoreView

__all__ = [
    "AddResult",
    "AmbiguousFingerprint",
    "AnchorNotFound",
    "AnchorReport",
    "AnchorSource",
    "AuditEntry",
    "BootstrapUnavailable",
    "CertificateSource",
    "CertificatesRejected",
    "CloudApplyResult",
    "CloudManagedAnchor",
    "Duplicate",
    "InvalidFingerprint",
    "NoAnchors",
    "Reject",
    "StaleCloudSet",
    "TrustAnchor",
    "TrustStore",
    "TrustStoreError",
    "TrustStoreIOError",
    "TrustStoreService",
    "TrustStoreView",
    "TrustUse",
    "open_trust_store",
]
