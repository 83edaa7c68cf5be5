"""The post-handshake check: the peer's chain from a live connection, through our core.

``check_peer`` takes an established ``ssl.SSLSocket`` or ``ssl.SSLObject`` (asyncio:
``writer.get_extra_info("ssl_object")``), reads the certificates the peer *sent*, and
returns the verdict of ``core.tlsverify.verify_peer`` on them — the very function the CLI's
``tls verify`` runs on a PEM file, so a live connection and a file get the same decision.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Sequence

from cryptography import x509

from hybridge.core.tlsverify import (
    Accepted,
    AnchorSet,
    ChainLimits,
    NamePolicy,
    PeerRole,
    RefusalReason,
    Refused,
    Use,
    Verdict,
    anchor_set_for,
    verify_peer,
)
from hybridge.tls.errors import PeerRefused

#: _ssl's constant for DER output of its private ``Certificate`` objects (3.10-3.12).
_ENCODING_DER = 2

Connection = ssl.SSLSocket | ssl.SSLObject


def peer_chain_der(conn: Connection) -> list[bytes]:
    """The certificates the peer sent, DER, leaf first; empty when it sent none.

    The *unverified* chain (what the peer sent) is used, not OpenSSL's verified one: our
    core builds its own path from the same leaf through these untrusted intermediates,
    counts them against the bound, and so does not inherit any choice OpenSSL made.

    Python 3.13+ exposes ``get_unverified_chain()``. On 3.10-3.12 the same method exists on
    the underlying ``_ssl`` object (it wraps ``SSL_get_peer_cert_chain`` and puts the leaf
    first on the server side too). Only if neither exists do we fall back to the leaf alone
    (``getpeercert(binary_form=True)``): the core then finds no intermediates and refuses
    unless the leaf's issuer is itself an anchor — fail-closed, never a wider acceptance.
    """
    public = getattr(conn, "get_unverified_chain", None)
    raw: Sequence[object] | None = None
    if public is not None:
        raw = public()
    else:
        private = getattr(getattr(conn, "_sslobj", None), "get_unverified_chain", None)
        if private is not None:
            raw = private()
    if raw:
        return [
            bytes(item) if isinstance(item, bytes | bytearray) else item.public_bytes(_ENCODING_DER)  # type: ignore[attr-defined]
            for item in raw
        ]
    leaf = conn.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def check_peer(
    conn: Connection,
    *,
    names: NamePolicy,
    anchors: Sequence[x509.Certificate] | AnchorSet,
    role: PeerRole,
    use: Use = Use.PLATFORM,
    at: dt.datetime | None = None,
    limits: ChainLimits | None = None,
) -> Verdict:
    """Our verdict on the peer of an established TLS connection.

    ``anchors`` must be the anchors the context was built from (a sequence is turned into
    a cached ``AnchorSet``). ``at`` defaults to now (UTC). Returns ``Refused`` with reason
    ``untrusted_issuer`` when the peer sent no certificate, ``malformed`` when one cannot
    be parsed. Never raises for a bad peer.
    """
    ders = peer_chain_der(conn)
    if not ders:
        return Refused(
            RefusalReason.UNTRUSTED_ISSUER,
            "the peer presented no certificate; a certificate chaining to the trust store "
            "is required",
        )
    try:
        certs = [x509.load_der_x509_certificate(der) for der in ders]
    except ValueError as exc:
        return Refused(RefusalReason.MALFORMED, f"the peer's certificate cannot be parsed: {exc}")
    anchor_set = anchors if isinstance(anchors, AnchorSet) else anchor_set_for(anchors)
    return verify_peer(
        certs[0],
        certs[1:],
        anchors=anchor_set,
        names=names,
        role=role,
        use=use,
        at=at or dt.datetime.now(dt.UTC),
        limits=limits or ChainLimits(),
    )


def require_peer(
    conn: Connection,
    *,
    names: NamePolicy,
    anchors: Sequence[x509.Certificate] | AnchorSet,
    role: PeerRole,
    use: Use = Use.PLATFORM,
    at: dt.datetime | None = None,
    limits: ChainLimits | None = None,
) -> Accepted:
    """Like ``check_peer``, but raise ``PeerRefused`` on refusal; returns the ``Accepted``.

    The caller closes the connection when it raises.
    """
    verdict = check_peer(
        conn, names=names, anchors=anchors, role=role, use=use, at=at, limits=limits
    )
    if isinstance(verdict, Refused):
        raise PeerRefused(verdict)
    return verdict
