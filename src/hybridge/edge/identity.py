"""Which zone a TLS peer belongs to, and why a refused one was refused, in one line.

Every connection is judged twice, as ``hybridge.tls`` explains: OpenSSL during the
handshake (path to the edge's anchors), then ``core.tlsverify.verify_peer`` through
``hybridge.tls.check_peer`` (second path validation, chain bounds, EKU, the zone's name
rule). A peer refused by OpenSSL never reaches our check, so its failure is translated here
from OpenSSL's verify code into the same reason codes, and every refusal — at either stage —
is logged as one line and counted under one reason label.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from hybridge.core.tlsverify import (
    Accepted,
    AnchorSet,
    ChainLimits,
    PeerRole,
    RefusalReason,
    Refused,
)
from hybridge.edge.zones import Zone
from hybridge.tls import check_peer

#: Reason labels beyond ``RefusalReason``: failures before or outside the certificate check.
NO_CERTIFICATE = "no_certificate"
HANDSHAKE_FAILED = "handshake_failed"
HANDSHAKE_TIMEOUT = "handshake_timeout"
NO_ZONE = "no_zone"
TOO_MANY_CONNECTIONS = "too_many_connections"

# OpenSSL's X509_V_ERR_* codes (include/openssl/x509_vfy.h) mapped to our reason codes.
_VERIFY_CODES: dict[int, RefusalReason] = {
    2: RefusalReason.UNTRUSTED_ISSUER,  # unable to get issuer certificate
    18: RefusalReason.UNTRUSTED_ISSUER,  # self-signed certificate
    19: RefusalReason.UNTRUSTED_ISSUER,  # self-signed certificate in chain
    20: RefusalReason.UNTRUSTED_ISSUER,  # unable to get local issuer certificate
    21: RefusalReason.UNTRUSTED_ISSUER,  # unable to verify the first certificate
    9: RefusalReason.NOT_YET_VALID,  # certificate is not yet valid
    10: RefusalReason.EXPIRED,  # certificate has expired
    22: RefusalReason.CHAIN_TOO_LONG,  # certificate chain too long
    25: RefusalReason.CHAIN_TOO_LONG,  # path length constraint exceeded
    26: RefusalReason.BAD_KEY_USAGE,  # unsupported certificate purpose
    28: RefusalReason.BAD_KEY_USAGE,  # certificate rejected
    7: RefusalReason.MALFORMED,  # certificate signature failure
    47: RefusalReason.NAME_CONSTRAINTS,  # permitted subtree violation
    48: RefusalReason.NAME_CONSTRAINTS,  # excluded subtree violation
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused connection: the metrics label and the one log line that says why."""

    reason: str
    line: str


@dataclass(frozen=True, slots=True)
class Admitted:
    """A peer accepted for ``zone``, with the verdict that accepted it."""

    zone: Zone
    verdict: Accepted


def handshake_refusal(exc: BaseException) -> Refusal:
    """The refusal for a TLS handshake that failed (OpenSSL's verdict, or the peer's)."""
    if isinstance(exc, TimeoutError):
        return Refusal(HANDSHAKE_TIMEOUT, "TLS handshake not completed in time; closed")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = _VERIFY_CODES.get(exc.verify_code, RefusalReason.INVALID_CHAIN)
        return Refusal(
            reason.value,
            f"peer certificate refused ({reason.value}): {exc.verify_message} "
            f"(OpenSSL verify code {exc.verify_code}); it must chain to the edge's trust store",
        )
    if isinstance(exc, ssl.SSLError) and exc.reason in (
        "PEER_DID_NOT_RETURN_A_CERTIFICATE",
        "CERTIFICATE_REQUIRED",
    ):
        # RFC 8446 §4.4.2.4: the server requested a certificate and the client sent none.
        return Refusal(
            NO_CERTIFICATE,
            "peer presented no client certificate; mutual TLS is required on this listener",
        )
    if isinstance(exc, ssl.SSLError) and exc.reason in ("EXCESSIVE_MESSAGE_SIZE",):
        # The Certificate message is above OpenSSL's max_cert_list (100 KiB): a peer that
        # sends hundreds of intermediates is stopped before any signature is checked.
        return Refusal(
            RefusalReason.CHAIN_TOO_LONG.value,
            "peer certificate refused (chain_too_long): its certificate message is over "
            "OpenSSL's size limit",
        )
    detail = getattr(exc, "reason", None) or type(exc).__name__
    return Refusal(HANDSHAKE_FAILED, f"TLS handshake failed: {detail}")


def _described(names: Sequence[str]) -> str:
    # "dns:a.example" -> "SAN DNS:a.example": the admin's vocabulary (Expressway's "CN or SAN").
    sans: list[str] = []
    cns: list[str] = []
    for name in names:
        kind, _, value = name.partition(":")
        if kind == "cn":
            cns.append(value)
        else:
            sans.append(f"{kind.upper()}:{value}")
    parts = ([f"SAN {', '.join(sans)}"] if sans else []) + ([f"CN {', '.join(cns)}"] if cns else [])
    return " and ".join(parts) if parts else "no name at all"


def judge(
    conn: ssl.SSLObject | ssl.SSLSocket,
    zones: Sequence[Zone],
    *,
    anchors: AnchorSet,
    role: PeerRole,
    limits: ChainLimits,
) -> Admitted | Refusal:
    """The first of ``zones`` whose name rule the peer of ``conn`` passes, or a ``Refusal``.

    A refusal that is not about the name (untrusted, expired, too many intermediates, ...)
    is the same for every zone and is returned as soon as it is seen; a name mismatch lists
    what the certificate presents and every name the zones expect.
    """
    if not zones:
        return Refusal(NO_ZONE, "no zone is configured for this listener; every peer is refused")
    mismatch: Refused | None = None
    for zone in zones:
        verdict = check_peer(conn, names=zone.policy(), anchors=anchors, role=role, limits=limits)
        if isinstance(verdict, Accepted):
            return Admitted(zone, verdict)
        if verdict.reason is not RefusalReason.NAME_MISMATCH:
            return Refusal(
                verdict.reason.value,
                f"peer certificate refused ({verdict.reason.value}): {verdict.explanation}",
            )
        mismatch = verdict
    assert mismatch is not None
    expected = " or ".join(
        f"{z.subject_name} (cn={z.cn_rule.value}, wildcards={'on' if z.wildcards else 'off'})"
        for z in zones
    )
    return Refusal(
        RefusalReason.NAME_MISMATCH.value,
        f"peer certificate identity unacceptable: presented "
        f"{_described(mismatch.presented_names)}; zone expects {expected}",
    )
