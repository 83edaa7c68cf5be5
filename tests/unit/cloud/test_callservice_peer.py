"""How the call service words a refused edge (pure: no socket)."""

from __future__ import annotations

import ssl

from hybridge.cloud.callservice_peer import described, handshake_refusal


def test_presented_names_read_as_the_admin_says_them() -> None:
    assert described(("dns:a.example", "uri:sip:b.example", "cn:c")) == (
        "SAN DNS:a.example, URI:sip:b.example and CN c"
    )
    assert described(()) == "no name at all"


def test_handshake_failures_have_a_reason_and_a_line() -> None:
    timeout = handshake_refusal(TimeoutError())
    assert (timeout.reason, timeout.line) == (
        "handshake_timeout",
        "TLS handshake not completed in time; closed",
    )
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_code = 20
    untrusted.verify_message = "unable to get local issuer certificate"
    refusal = handshake_refusal(untrusted)
    assert refusal.reason == "untrusted_issuer"
    assert refusal.line == (
        "peer certificate refused (untrusted_issuer): unable to get local issuer certificate "
        "(OpenSSL verify code 20); it must chain to the cloud's trust anchors"
    )
    expired = ssl.SSLCertVerificationError(1, "certificate verify failed")
    expired.verify_code, expired.verify_message = 10, "certificate has expired"
    assert handshake_refusal(expired).reason == "expired"
    other = handshake_refusal(ConnectionResetError("reset"))
    assert other.reason == "handshake_failed" and other.line.startswith("TLS handshake failed")
