"""Connector authentication by mutual TLS: the peer certificate, from uvicorn to the route.

uvicorn verifies an offered client certificate against the connector CA
(``ssl_cert_reqs=CERT_OPTIONAL``: browsers reach the portal without one) but does not hand
the certificate to the application. ``PeerCertH11Protocol`` fills that gap for one
connection: after the handshake it puts the DER peer certificate into the connection's copy
of the ASGI ``state`` (``request.state.tls_peer_der``). It touches only documented protocol
hooks (``connection_made``) and the ``app_state`` dict uvicorn copies into every scope;
``tests/integration/cloud`` proves it against the real server so an upgrade that breaks it
fails loudly. ``cloud serve`` runs on uvloop, whose SSL transport is not asyncio's but
answers ``get_extra_info("ssl_object")`` with the same ``ssl.SSLObject`` once the handshake
is done; ``tests/integration/control/test_control_reconnect.py`` checks the real process
runs uvloop and authenticates a connector by certificate.

The route-side dependency re-checks what the handshake checked (issued by our connector CA,
clientAuth) and maps the certificate to a connector: by the URN in its SAN and the serial
stored at registration, and only while the connector is active.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID
from uvicorn.protocols.http.h11_impl import H11Protocol

from hybridge.cloud.errors import CloudError
from hybridge.cloud.keys import CloudKeys
from hybridge.cloud.models import connector

PEER_STATE_KEY = "tls_peer_der"
URN_PREFIX = "urn:hybridge:connector:"


class ConnectorAuthError(CloudError):
    """The request is not from an active, registered connector (403)."""


class PeerCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the client certificate in ``request.state``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        # A per-connection copy: one connection's certificate never shows in another's state.
        self.app_state = {**self.app_state, PEER_STATE_KEY: der}


def peer_der(state: Any) -> bytes | None:
    """The DER client certificate of the request's connection, or ``None``."""
    der = getattr(state, PEER_STATE_KEY, None)
    return der if isinstance(der, bytes) and der else None


def peer_certificate_from_der(der: bytes | None) -> x509.Certificate | None:
    """``der`` parsed, or ``None`` when there is none.

    Raises:
        ConnectorAuthError: the bytes are not a DER certificate (the handshake accepted it,
            so this is a bug or an attack on the plumbing, refused all the same).
    """
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise ConnectorAuthError("the client certificate cannot be parsed") from exc


def peer_certificate(state: Any) -> x509.Certificate | None:
    """The client certificate of the request's connection, or ``None``."""
    return peer_certificate_from_der(peer_der(state))


def authenticate_connector(
    session: Any, cert: x509.Certificate | None, keys: CloudKeys, now: dt.datetime
) -> str:
    """The id of the active connector ``cert`` belongs to.

    Raises:
        ConnectorAuthError: no certificate, not ours, expired, not clientAuth, unknown or
            no longer active connector.
    """
    if cert is None:
        raise ConnectorAuthError("a connector client certificate is required (mutual TLS)")
    ca = keys.connector_ca
    try:
        # Defence in depth: the handshake already chained it to the connector CA.
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ConnectorAuthError("client certificate is not issued by the connector CA") from exc
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise ConnectorAuthError("client certificate is not valid now")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        urns = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound as exc:
        raise ConnectorAuthError("client certificate lacks EKU or SAN") from exc
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise ConnectorAuthError("client certificate is not for clientAuth")
    ids = [u.removeprefix(URN_PREFIX) for u in urns if u.startswith(URN_PREFIX)]
    if len(ids) != 1:
        raise ConnectorAuthError("client certificate names no single connector")
    row = session.execute(sa.select(connector).where(connector.c.id == ids[0])).first()
    # The serial pins the certificate issued at registration: a certificate from a replayed
    # registration (revoked) or any other one for the same id does not pass.
    if row is None or row.certificate_serial != format(cert.serial_number, "x"):
        raise ConnectorAuthError(f"connector {ids[0]!r} is unknown")
    if row.status != "active":
        raise ConnectorAuthError(f"connector {ids[0]!r} is {row.status}")
    return str(row.id)
