"""HTTPS to the cloud: which anchors verify it, and what a refusal means to the admin.

DESIGN.md §3 invariant 1: the registration exchange (``/oauth/token``) is verified by the
bootstrap anchors and nothing else (``TrustUse.REGISTRATION``); every later connection
(deregistration, health, control channel) by the platform trust store (``PLATFORM``:
manual + cloud anchors), never by the bootstrap set. Both contexts require a certificate
and check the host name (RFC 6125 via OpenSSL's ``check_hostname``).

When OpenSSL refuses the cloud's certificate, the error must tell the admin what to do. A
second, non-verifying handshake (``hybridge.tls.probe``, which sends nothing after the
handshake) fetches the chain the cloud presents, so the message can name the CA it would
take — the issuer at the top of the presented chain — or the names the certificate does
hold.

``CloudLink`` takes an optional ``wrap_transport``: tests put a real-network transport
inside their own (e.g. to alter a response in flight, as an attacker on the path would)
without patching anything.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import structlog
from cryptography import x509

from hybridge.connector.errors import CloudNameMismatch, CloudUnreachable, CloudUntrusted
from hybridge.connector.flow import Flow, run_flow
from hybridge.core.errors import HybridgeError
from hybridge.core.tlsverify import NamePolicy
from hybridge.tls import probe
from hybridge.truststore import TrustStore, TrustUse
from hybridge.truststore.contexts import client_context

log = structlog.get_logger(__name__)

T = TypeVar("T")
TransportWrapper = Callable[[httpx.BaseTransport], httpx.BaseTransport]

#: OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH: the chain verified, the name did not.
_HOSTNAME_MISMATCH = 62


@dataclass(frozen=True)
class ClientIdentity:
    """The connector's client certificate and private key (PEM) for mutual TLS."""

    certificate_pem: bytes
    key_pem: bytes

    def __repr__(self) -> str:
        return "ClientIdentity(<certificate>, <key hidden>)"


def needed_ca(chain: tuple[x509.Certificate, ...]) -> str | None:
    """The subject of the CA the presented chain ends at: the root an admin would upload."""
    if not chain:
        return None
    top = chain[-1]
    return (top.subject if top.subject == top.issuer else top.issuer).rfc4514_string()


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [cert.subject.rfc4514_string()]
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    ]


def _load_identity(context: ssl.SSLContext, identity: ClientIdentity) -> None:
    # ssl wants files: a private directory (0700) with 0600 files, removed at once.
    with tempfile.TemporaryDirectory(prefix="hybridge-mtls-") as directory:
        cert_path = Path(directory) / "cert.pem"
        key_path = Path(directory) / "key.pem"
        for path, data in ((cert_path, identity.certificate_pem), (key_path, identity.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        try:
            context.load_cert_chain(str(cert_path), str(key_path))
        except ssl.SSLError as exc:
            raise CloudUnreachable(
                f"the connector's client certificate is unusable: {exc}"
            ) from exc


class CloudLink:
    """Opens verified HTTPS clients to the cloud and runs registration flows over them."""

    def __init__(
        self,
        store: TrustStore,
        *,
        timeout: float = 15.0,
        wrap_transport: TransportWrapper | None = None,
    ) -> None:
        self._store = store
        self._timeout = timeout
        self._wrap = wrap_transport

    def _client(
        self, use: TrustUse, identity: ClientIdentity | None
    ) -> tuple[httpx.Client, tuple[x509.Certificate, ...]]:
        anchors = self._store.anchors_for(use)
        # One lookup: for registration, each lookup is a logged use of the bootstrap set.
        context = client_context(anchors, use)
        if identity is not None:
            _load_identity(context, identity)
        transport: httpx.BaseTransport = httpx.HTTPTransport(verify=context, retries=0)
        if self._wrap is not None:
            transport = self._wrap(transport)
        # No redirects: the protocol has none, and a redirect could take the code elsewhere.
        client = httpx.Client(transport=transport, timeout=self._timeout, follow_redirects=False)
        return client, anchors

    def run(
        self,
        cloud_url: str,
        flow: Flow[T],
        *,
        use: TrustUse,
        identity: ClientIdentity | None = None,
    ) -> T:
        """Run ``flow`` against ``cloud_url`` over TLS verified for ``use``.

        Raises:
            CloudUntrusted: the certificate does not chain to the anchors of ``use``
                (names the CA that would be needed).
            CloudNameMismatch: it chains, but is not for the cloud's host name.
            CloudUnreachable: no connection, timeout, or no usable answer.
            NoAnchors: ``use`` has no anchor at all (e.g. manual mode before an upload).
            Whatever ``flow`` raises.
        """
        client, anchors = self._client(use, identity)
        with client:
            try:
                return run_flow(flow, client)
            except httpx.TransportError as exc:
                raise self._translate(cloud_url, use, anchors, exc) from exc
            finally:
                flow.close()

    def session(
        self, cloud_url: str, *, use: TrustUse, identity: ClientIdentity | None = None
    ) -> CloudSession:
        """A verified client kept open for many flows (keep-alive: one TLS handshake, not
        one per request), for callers that talk to the cloud often (the calendar link).

        The anchors are read now: a session must be short-lived (its owner replaces it
        after a while) so that a changed trust store governs the next connections.
        """
        client, anchors = self._client(use, identity)
        return CloudSession(self, client, cloud_url, use, anchors)

    def _translate(
        self,
        cloud_url: str,
        use: TrustUse,
        anchors: tuple[x509.Certificate, ...],
        exc: httpx.TransportError,
    ) -> HybridgeError:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
            cause = cause.__cause__ or cause.__context__
        if not isinstance(cause, ssl.SSLCertVerificationError):
            if isinstance(exc, httpx.TimeoutException):
                return CloudUnreachable(f"the cloud at {cloud_url!r} did not answer in time")
            return CloudUnreachable(f"cannot reach the cloud at {cloud_url!r}: {exc}")
        anchor_text = (
            "the bootstrap anchors (used only for registration)"
            if use is TrustUse.REGISTRATION
            else "the trust store (manual and cloud anchors)"
        )
        parts = urlsplit(cloud_url)
        host, port = parts.hostname or "", parts.port or 443
        chain: tuple[x509.Certificate, ...] = ()
        try:
            chain = probe(host, port, names=NamePolicy(host), anchors=anchors, timeout=5).chain
        except HybridgeError as probe_exc:
            log.info("connector.cloud_probe_failed", cloud=cloud_url, error=str(probe_exc))
        log.warning(
            "connector.cloud_certificate_refused",
            cloud=cloud_url,
            use=use.value,
            verify_code=cause.verify_code,
            openssl=cause.verify_message,
        )
        if cause.verify_code == _HOSTNAME_MISMATCH:
            names = ", ".join(_names(chain[0])) if chain else "unknown"
            return CloudNameMismatch(
                f"the cloud's certificate chains to {anchor_text} but is not valid for "
                f"{host!r}; it names {names}. Use the cloud's own URL, or have its "
                f"certificate issued for {host!r}"
            )
        needed = needed_ca(chain)
        return CloudUntrusted(
            f"the cloud's certificate at {cloud_url} does not chain to {anchor_text} "
            f"({cause.verify_message}); it would need the CA {needed or 'unknown'!r}"
            + (
                ", which is not a bootstrap anchor: only the connector's shipped bootstrap "
                "set may verify the registration"
                if use is TrustUse.REGISTRATION
                else "; upload that CA certificate on the trust page"
            ),
            needed,
        )


class CloudSession:
    """One verified HTTPS client to the cloud, for several flows (see ``CloudLink.session``).

    Not thread-safe to close while in use: give each thread its own.
    """

    def __init__(
        self,
        link: CloudLink,
        client: httpx.Client,
        cloud_url: str,
        use: TrustUse,
        anchors: tuple[x509.Certificate, ...],
    ) -> None:
        self.cloud_url = cloud_url
        self._link = link
        self._client = client
        self._use = use
        self._anchors = anchors

    def run(self, flow: Flow[T]) -> T:
        """Run ``flow`` over the kept client; raises as ``CloudLink.run`` does."""
        try:
            return run_flow(flow, self._client)
        except httpx.TransportError as exc:
            raise self._link._translate(self.cloud_url, self._use, self._anchors, exc) from exc
        finally:
            flow.close()

    def close(self) -> None:
        self._client.close()
