"""Which organisation's edge a TLS peer is, and why a refused one was refused, in one line.

The call service trusts an edge the way the edge trusts the cloud (the seed's rule, turned
around): OpenSSL validates the path to the cloud's anchors during the handshake, then
``hybridge.tls.check_peer`` validates it again with our core and applies the name rule of
each organisation's configured edge name (``callservice_edges.OrgEdge.policy``). The first
organisation whose name matches owns the connection; no match refuses it.

The edge package has the same judge for its zones; roles never import each other, so the
few lines that turn a verdict into a log line live here too.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from hybridge.cloud.callservice_edges import OrgEdge
from hybridge.core.tlsverify import (
    Accepted,
    AnchorSet,
    PeerRole,
    RefusalReason,
    Refused,
    describe_presented_names,
)
from hybridge.tls import check_peer

#: The presented names in the admin's words (shared with the edge through core).
described = describe_presented_names

NO_CERTIFICATE = "no_certificate"
HANDSHAKE_FAILED = "handshake_failed"
HANDSHAKE_TIMEOUT = "handshake_timeout"
NO_EDGE = "no_edge_configured"
TOO_MANY_CONNECTIONS = "too_many_connections"

# OpenSSL's X509_V_ERR_* codes (include/openssl/x509_vfy.h) that name a reason we know.
_VERIFY_CODES: dict[int, RefusalReason] = {
    2: RefusalReason.UNTRUSTED_ISSUER,
    18: RefusalReason.UNTRUSTED_ISSUER,
    19: RefusalReason.UNTRUSTED_ISSUER,
    20: RefusalReason.UNTRUSTED_ISSUER,
    21: RefusalReason.UNTRUSTED_ISSUER,
    9: RefusalReason.NOT_YET_VALID,
    10: RefusalReason.EXPIRED,
    22: RefusalReason.CHAIN_TOO_LONG,
    25: RefusalReason.CHAIN_TOO_LONG,
}


@dataclass(frozen=True, slots=True)
class PeerRefusal:
    """A refused peer: a stable reason code and the one line that says why."""

    reason: str
    line: str


@dataclass(frozen=True, slots=True)
class EdgeAdmitted:
    """A peer accepted as ``edge`` (the organisation's configured edge)."""

    edge: OrgEdge
    verdict: Accepted


def handshake_refusal(exc: BaseException) -> PeerRefusal:
    """The refusal for a TLS handshake that failed (OpenSSL's verdict, or the peer's)."""
    if isinstance(exc, TimeoutError):
        return PeerRefusal(HANDSHAKE_TIMEOUT, "TLS handshake not completed in time; closed")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = _VERIFY_CODES.get(exc.verify_code, RefusalReason.INVALID_CHAIN)
        return PeerRefusal(
            reason.value,
            f"peer certificate refused ({reason.value}): {exc.verify_message} (OpenSSL verify "
            f"code {exc.verify_code}); it must chain to the cloud's trust anchors",
        )
    if isinstance(exc, ssl.SSLError) and exc.reason in (
        "PEER_DID_NOT_RETURN_A_CERTIFICATE",
        "CERTIFICATE_REQUIRED",
    ):
        # RFC 8446 §4.4.2.4: a certificate was requested and none was sent.
        return PeerRefusal(
            NO_CERTIFICATE,
            "peer presented no client certificate; the call service requires mutual TLS",
        )
    if isinstance(exc, ssl.SSLError) and exc.reason in ("TLSV1_ALERT_UNKNOWN_CA",):
        return PeerRefusal(
            RefusalReason.UNTRUSTED_ISSUER.value,
            "the peer refused our certificate (alert unknown_ca): its trust store lacks the "
            "root of the call service's certificate",
        )
    detail = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
    return PeerRefusal(HANDSHAKE_FAILED, f"TLS handshake failed: {detail}")


def judge_edge(
    conn: ssl.SSLObject | ssl.SSLSocket,
    edges: Sequence[OrgEdge],
    *,
    anchors: AnchorSet,
    role: PeerRole,
) -> EdgeAdmitted | PeerRefusal:
    """The first of ``edges`` whose name rule the peer of ``conn`` passes, or a refusal.

    ``role`` is the peer's: ``CLIENT`` for an edge dialling in, ``SERVER`` for the edge a
    test call dials. A refusal that is not about the name is returned at once; a name
    mismatch says what the certificate presents and which names are configured.
    """
    if not edges:
        return PeerRefusal(
            NO_EDGE,
            "no organisation has an edge configured; every edge is refused (set one with "
            "'hybridge cloud edge set --org ORG --subject-name EDGE-NAME')",
        )
    mismatch: Refused | None = None
    for edge in edges:
        verdict = check_peer(conn, names=edge.policy(), anchors=anchors, role=role)
        if isinstance(verdict, Accepted):
            return EdgeAdmitted(edge, verdict)
        if verdict.reason is not RefusalReason.NAME_MISMATCH:
            return PeerRefusal(
                verdict.reason.value,
                f"peer certificate refused ({verdict.reason.value}): {verdict.explanation}",
            )
        mismatch = verdict
    assert mismatch is not None
    expected = ", ".join(f"{e.subject_name} ({e.org_name})" for e in edges[:10])
    more = f" and {len(edges) - 10} more" if len(edges) > 10 else ""
    return PeerRefusal(
        RefusalReason.NAME_MISMATCH.value,
        f"peer certificate identity unacceptable: presented "
        f"{described(mismatch.presented_names)}; "
        f"{'no organisation has an edge of that name: ' if len(edges) > 1 else ''}"
        f"expected {expected}{more}",
    )
