"""TLS client contexts built from an anchor set.

Kept small on purpose: ``hybridge.tls`` builds the fuller TLS integration (client
certificates, path validation with ``cryptography.x509.verification``) on top of the same
``TrustStore.anchors_for``.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

import structlog
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hybridge.core.pki import to_pem
from hybridge.truststore.bootstrap import BootstrapAnchor
from hybridge.truststore.errors import BootstrapUnavailable, NoAnchors, TrustStoreError
from hybridge.truststore.interfaces import TrustUse

log = structlog.get_logger(__name__)


def log_bootstrap_use(origin: str, anchors: Sequence[BootstrapAnchor]) -> None:
    """Record that the bootstrap set was handed out, with every fingerprint in it."""
    # DESIGN.md §3 invariant 1: every use of the bootstrap set is logged with its anchors.
    log.info(
        "truststore.bootstrap_used",
        origin=origin,
        count=len(anchors),
        fingerprints=[anchor.fingerprint_sha256 for anchor in anchors],
    )


def client_context(anchors: Sequence[x509.Certificate], use: TrustUse) -> ssl.SSLContext:
    """A TLS client context (TLS >= 1.2, certificate and host name required) over ``anchors``.

    Raises:
        NoAnchors: ``anchors`` is empty.
        BootstrapUnavailable: OpenSSL refused a registration anchor.
        TrustStoreError: OpenSSL refused a platform anchor.
    """
    if not anchors:
        raise NoAnchors(
            f"no {use.value} anchor is installed, so no server could be verified; "
            "add CA certificates with 'hybridge trust add'"
        )
    # PROTOCOL_TLS_CLIENT already implies CERT_REQUIRED and check_hostname; they are set
    # again so that the rule is visible here. RFC 8996: TLS 1.0 and 1.1 are deprecated.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    pem = "".join(to_pem(cert.public_bytes(Encoding.DER)) for cert in anchors)
    try:
        context.load_verify_locations(cadata=pem)
    except ssl.SSLError as exc:
        error = BootstrapUnavailable if use is TrustUse.REGISTRATION else TrustStoreError
        raise error(f"OpenSSL refused the {use.value} anchors: {exc.reason or exc}") from exc
    return context
