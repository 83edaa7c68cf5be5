"""``probe``: connect to a peer, show the chain it sends and our verdict on it.

A diagnostic for admins (``hybridge tls probe``). The handshake is made *without*
OpenSSL's verification, so that a chain OpenSSL would reject can still be shown and
judged; the verdict is then exactly ``core.tlsverify.verify_peer``'s, the check every live
connection runs after its own (verifying) handshake. Nothing but the handshake is sent.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from hybridge.core.tlsverify import (
    AnchorSet,
    NamePolicy,
    PeerRole,
    RefusalReason,
    Refused,
    Use,
    Verdict,
    anchor_set_for,
    verify_peer,
)
from hybridge.tls.errors import TlsConnectError, TlsSetupError
from hybridge.tls.peer import peer_chain_der


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What the peer sent and what we decide: chain (leaf first), TLS version, verdict."""

    host: str
    port: int
    tls_version: str
    cipher: str
    chain: tuple[x509.Certificate, ...]
    verdict: Verdict


def parse_target(target: str) -> tuple[str, int]:
    """(host, port) from ``HOST:PORT`` or ``[IPv6]:PORT``; raises ``TlsSetupError``."""
    host, sep, port_text = target.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise TlsSetupError(
            f"target {target!r} is not HOST:PORT; give e.g. 'callservice.example.com:5062' "
            "or '[::1]:5062'"
        )
    return host.strip("[]"), int(port_text)


def probe(
    host: str,
    port: int,
    *,
    names: NamePolicy,
    anchors: Sequence[x509.Certificate] | AnchorSet,
    use: Use = Use.PLATFORM,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    timeout: float = 10.0,
    at: dt.datetime | None = None,
) -> ProbeResult:
    """Handshake with ``host:port`` as a TLS client and judge the server's chain.

    Raises ``TlsConnectError`` when no handshake completes, ``TlsSetupError`` for an
    unusable client certificate/key.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Diagnostic only: collect whatever the server sends, then judge it with our core.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if client_cert is not None or client_key is not None:
        if client_cert is None or client_key is None:
            raise TlsSetupError("give both --client-cert and --client-key, or neither")
        try:
            context.load_cert_chain(str(client_cert), str(client_key))
        except (ssl.SSLError, OSError) as exc:
            raise TlsSetupError(
                f"cannot use client certificate {str(client_cert)!r} with key "
                f"{str(client_key)!r}: {exc}"
            ) from exc
    server_hostname = None if names.is_ip else names.expected
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            ders = peer_chain_der(tls)
            version = tls.version() or "?"
            cipher = (tls.cipher() or ("?",))[0]
    except (OSError, ssl.SSLError) as exc:
        raise TlsConnectError(f"TLS handshake with {host}:{port} failed: {exc}") from exc
    try:
        chain = tuple(x509.load_der_x509_certificate(d) for d in ders)
    except ValueError as exc:
        verdict: Verdict = Refused(
            RefusalReason.MALFORMED, f"the server's certificate cannot be parsed: {exc}"
        )
        return ProbeResult(host, port, version, cipher, (), verdict)
    if not chain:
        verdict = Refused(RefusalReason.UNTRUSTED_ISSUER, "the server presented no certificate")
    else:
        anchor_set = anchors if isinstance(anchors, AnchorSet) else anchor_set_for(anchors)
        verdict = verify_peer(
            chain[0],
            chain[1:],
            anchors=anchor_set,
            names=names,
            role=PeerRole.SERVER,
            use=use,
            at=at or dt.datetime.now(dt.UTC),
        )
    return ProbeResult(host, port, version, cipher, chain, verdict)
