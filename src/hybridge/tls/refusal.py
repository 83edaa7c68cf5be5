"""Why a TLS peer was refused, as a stable reason code and one log line, for every role.

The edge (its zones, its dial-out to the cloud) and the cloud's call-service peer (edges
dialling in, test calls dialling out) judge peers the same way (see this package's
docstring): OpenSSL during the handshake, then ``check_peer`` after it. A peer refused by
OpenSSL never reaches our check, so its failure is translated here, from the exception
OpenSSL raised, into the reason codes of ``core.tlsverify.RefusalReason`` plus the few
codes below for failures that are not about a certificate. One module words both stages
so a refusal reads, and is counted, the same on every listener:

- ``peer certificate refused (expired): certificate has expired (OpenSSL verify code
  10); it must chain to the edge's trust store``
- ``peer certificate identity unacceptable: presented SAN DNS:a.example, DNS:b.example;
  zone expects callservice.example.test``
- ``the peer refused our certificate (alert unknown_ca): its trust store lacks the root of
  our certificate``

Nothing here touches a socket: the functions map an exception object or a verdict to a
``Refusal``; the caller logs it and counts ``reason`` (a bounded set: ``REASONS``).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from hybridge.core.tlsverify import RefusalReason, Refused, describe_presented_names

#: The peer sent no certificate although mutual TLS is required.
NO_CERTIFICATE = "no_certificate"
#: The handshake failed for a reason that is not about a certificate (protocol, reset...).
HANDSHAKE_FAILED = "handshake_failed"
#: The handshake did not complete within the listener's deadline.
HANDSHAKE_TIMEOUT = "handshake_timeout"
#: The listener was at its connection limit.
TOO_MANY_CONNECTIONS = "too_many_connections"
#: Dialling out: nothing listens at the peer's address.
CONNECTION_REFUSED = "connection_refused"
#: The peer's TLS stack refused *our* certificate (it sent a certificate alert).
REFUSED_BY_PEER = "refused_by_peer"

#: Every code a refusal made here can carry (metrics pre-declare them; labels stay bounded).
REASONS: tuple[str, ...] = (
    *(r.value for r in RefusalReason),
    NO_CERTIFICATE,
    HANDSHAKE_FAILED,
    HANDSHAKE_TIMEOUT,
    TOO_MANY_CONNECTIONS,
    CONNECTION_REFUSED,
    REFUSED_BY_PEER,
)

# OpenSSL's X509_V_ERR_* codes (include/openssl/x509_vfy.h) mapped to our reason codes;
# any other verify code is ``invalid_chain``.
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

# OpenSSL's reason for a certificate alert received from the peer -> (RFC 8446 §6.2 alert
# name, what it tells about our certificate). A server sends these during its handshake;
# under TLS 1.3 a server judging *our client* certificate sends them after our handshake
# has completed, so a client meets them on its first read.
_PEER_ALERTS: dict[str, tuple[str, str]] = {
    "TLSV1_ALERT_UNKNOWN_CA": ("unknown_ca", "its trust store lacks the root of our certificate"),
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": ("certificate_expired", "it finds our certificate expired"),
    "SSLV3_ALERT_BAD_CERTIFICATE": ("bad_certificate", "it could not verify our certificate"),
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": (
        "certificate_unknown",
        "it would not accept our certificate",
    ),
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": (
        "unsupported_certificate",
        "it does not support our certificate's type or usage",
    ),
    "SSLV3_ALERT_CERTIFICATE_REVOKED": ("certificate_revoked", "it finds our certificate revoked"),
    "TLSV1_ALERT_ACCESS_DENIED": ("access_denied", "it denies our identity access"),
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": (
        "certificate_required",
        "it requires a client certificate and got none from us",
    ),
}

_REASON_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused peer: a stable reason code (a metrics label) and the one line saying why.

    Raises:
        ValueError: ``reason`` is not a lowercase code, or ``line`` is empty or holds a
            line break (a peer's input must never split or forge a log line).
    """

    reason: str
    line: str

    def __post_init__(self) -> None:
        if not _REASON_CODE.fullmatch(self.reason):
            raise ValueError(
                f"refusal reason {self.reason!r} is not a code like 'name_mismatch' "
                "(lowercase letters, digits and '_', at most 64)"
            )
        if not self.line or "\n" in self.line or "\r" in self.line:
            raise ValueError(f"refusal line {self.line!r} must be one non-empty line")


def handshake_refusal(exc: BaseException, *, trust_store: str) -> Refusal:
    """The refusal for a TLS connection that failed in or right after its handshake.

    ``exc`` is what the handshake (or the first read after it) raised: OpenSSL's verdict
    on the peer's certificate, the peer's alert about ours, a timeout, a reset.
    ``trust_store`` names the store the peer had to chain to, e.g. ``"the edge's trust
    store"``. Returns a ``Refusal`` whose reason is a ``RefusalReason`` value or one of
    this module's codes (``REASONS``); never raises.
    """
    if isinstance(exc, TimeoutError):
        return Refusal(HANDSHAKE_TIMEOUT, "TLS handshake not completed in time; closed")
    if isinstance(exc, ConnectionRefusedError):
        return Refusal(CONNECTION_REFUSED, "connection refused: nothing listens at that address")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = _VERIFY_CODES.get(exc.verify_code, RefusalReason.INVALID_CHAIN)
        return Refusal(
            reason.value,
            f"peer certificate refused ({reason.value}): {exc.verify_message} "
            f"(OpenSSL verify code {exc.verify_code}); it must chain to {trust_store}",
        )
    ssl_reason = exc.reason if isinstance(exc, ssl.SSLError) else None
    if ssl_reason in ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "CERTIFICATE_REQUIRED"):
        # RFC 8446 §4.4.2.4: the server requested a certificate and the client sent none.
        return Refusal(
            NO_CERTIFICATE,
            "peer presented no client certificate; mutual TLS is required on this listener",
        )
    if ssl_reason == "EXCESSIVE_MESSAGE_SIZE":
        # The Certificate message is above OpenSSL's max_cert_list (100 KiB): a peer that
        # sends hundreds of intermediates is stopped before any signature is checked.
        return Refusal(
            RefusalReason.CHAIN_TOO_LONG.value,
            "peer certificate refused (chain_too_long): its certificate message is over "
            "OpenSSL's size limit",
        )
    if ssl_reason in _PEER_ALERTS:
        alert, meaning = _PEER_ALERTS[ssl_reason]
        return Refusal(
            REFUSED_BY_PEER, f"the peer refused our certificate (alert {alert}): {meaning}"
        )
    detail = ssl_reason or getattr(exc, "strerror", None) or type(exc).__name__
    return Refusal(HANDSHAKE_FAILED, f"TLS handshake failed: {detail}")


def is_refused_by_peer(exc: BaseException) -> bool:
    """True when ``exc`` is the peer's certificate alert about our certificate."""
    return isinstance(exc, ssl.SSLError) and exc.reason in _PEER_ALERTS


def verdict_refusal(verdict: Refused) -> Refusal:
    """The refusal for a verdict of our post-handshake check, worded like OpenSSL's ones.

    A name mismatch is better worded by ``name_mismatch_refusal``, which knows what the
    listener expected.
    """
    return Refusal(
        verdict.reason.value,
        f"peer certificate refused ({verdict.reason.value}): {verdict.explanation}",
    )


def name_mismatch_refusal(
    presented_names: Sequence[str], *, expected_by: str, expected: str
) -> Refusal:
    """The refusal for a valid certificate whose names match no configured name.

    ``presented_names`` are ``Refused.presented_names``; ``expected_by`` says who expects
    (``"zone"``, ``"the call service"``) and ``expected`` what, already worded. Returns
    ``name_mismatch`` with ``peer certificate identity unacceptable: presented SAN
    DNS:a.example; zone expects callservice.example.test``.
    """
    return Refusal(
        RefusalReason.NAME_MISMATCH.value,
        f"peer certificate identity unacceptable: presented "
        f"{describe_presented_names(presented_names)}; {expected_by} expects {expected}",
    )
