"""Which organisation's edge a TLS peer is, and why a refused one was refused, in one line.

The call service trusts an edge the way the edge trusts the cloud (the seed's rule, turned
around): OpenSSL validates the path to the cloud's anchors during the handshake, then
``hybridge.tls.check_peer`` validates it again with our core and applies the name rule of
each organisation's configured edge name (``callservice_edges.OrgEdge.policy``). The first
organisation whose name matches owns the connection; no match refuses it.

The edge package has the same judge for its zones; roles never import each other, so both
word their refusals through ``hybridge.tls.refusal`` (same reason codes, same lines).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from hybridge.cloud.callservice_edges import OrgEdge
from hybridge.core.tlsverify import Accepted, AnchorSet, PeerRole, RefusalReason, Refused
from hybridge.tls import check_peer
from hybridge.tls.refusal import (
    HANDSHAKE_FAILED,
    HANDSHAKE_TIMEOUT,
    NO_CERTIFICATE,
    REASONS,
    TOO_MANY_CONNECTIONS,
    Refusal,
    name_mismatch_refusal,
    verdict_refusal,
)
from hybridge.tls.refusal import handshake_refusal as tls_handshake_refusal

#: The call service's own reason label, beside ``hybridge.tls.refusal.REASONS``.
NO_EDGE = "no_edge_configured"

# ``Refusal`` and the shared codes are re-exported: the call service's modules import
# them from here, the one place its refusals are made.
__all__ = [
    "HANDSHAKE_FAILED",
    "HANDSHAKE_TIMEOUT",
    "NO_CERTIFICATE",
    "NO_EDGE",
    "REASONS",
    "TOO_MANY_CONNECTIONS",
    "EdgeAdmitted",
    "Refusal",
    "handshake_refusal",
    "judge_edge",
]


@dataclass(frozen=True, slots=True)
class EdgeAdmitted:
    """A peer accepted as ``edge`` (the organisation's configured edge)."""

    edge: OrgEdge
    verdict: Accepted


def handshake_refusal(exc: BaseException) -> Refusal:
    """The refusal for a TLS handshake that failed (OpenSSL's verdict, or the peer's).

    ``hybridge.tls.refusal.handshake_refusal`` worded for the cloud; never raises.
    """
    return tls_handshake_refusal(exc, trust_store="the cloud's trust store")


def judge_edge(
    conn: ssl.SSLObject | ssl.SSLSocket,
    edges: Sequence[OrgEdge],
    *,
    anchors: AnchorSet,
    role: PeerRole,
) -> EdgeAdmitted | Refusal:
    """The first of ``edges`` whose name rule the peer of ``conn`` passes, or a refusal.

    ``role`` is the peer's: ``CLIENT`` for an edge dialling in, ``SERVER`` for the edge a
    test call dials. A refusal that is not about the name is returned at once; a name
    mismatch says what the certificate presents and which names are configured.
    """
    if not edges:
        return Refusal(
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
            return verdict_refusal(verdict)
        mismatch = verdict
    assert mismatch is not None
    expected = " or ".join(f"{e.subject_name} ({e.org_name})" for e in edges[:10])
    more = f" and {len(edges) - 10} more" if len(edges) > 10 else ""
    return name_mismatch_refusal(
        mismatch.presented_names, expected_by="the call service", expected=expected + more
    )
