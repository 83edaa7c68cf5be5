"""Exceptions of ``hybridge.tls``: TLS setup and connection failures, translated.

    TlsError                 (HybridgeError)
     ├── TlsSetupError       a certificate/key file or an anchor list is unusable (exit 2)
     ├── TlsConnectError     the connection or handshake failed (exit 1)
     └── PeerRefused         the handshake completed but our check refused the peer (exit 1)

``ssl.SSLError`` and ``OSError`` never leave this package untranslated.
"""

from __future__ import annotations

from hybridge.core.errors import HybridgeError
from hybridge.core.tlsverify import Refused


class TlsError(HybridgeError):
    """The root of ``hybridge.tls``'s exceptions."""


class TlsSetupError(TlsError):
    """A context could not be built from the files or anchors given."""


class TlsConnectError(TlsError):
    """A TLS connection could not be made or its handshake failed."""

    exit_code = 1


class PeerRefused(TlsError):
    """The peer completed the handshake but is not who the policy expects."""

    exit_code = 1

    def __init__(self, verdict: Refused) -> None:
        super().__init__(f"peer refused ({verdict.reason.value}): {verdict.explanation}")
        self.verdict = verdict
