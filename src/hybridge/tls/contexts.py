"""``ssl.SSLContext`` builders for both sides of a Hybridge connection.

Both contexts make OpenSSL validate the peer's path against the *same* anchors our core
check uses (``verify_mode = CERT_REQUIRED``), TLS 1.2 at least. Host-name checking in
OpenSSL is off: the name rule is ours (``core.tlsverify.names``), applied by
``hybridge.tls.peer.check_peer`` right after the handshake — see the package docstring for
why that split is safe and what the caller must do.

One deliberate change to OpenSSL's defaults, on the server side only: OpenSSL checks a
client certificate for the "SSL client" purpose, which refuses a leaf whose EKU is
serverAuth only. DESIGN §3.4 requires such certificates to be accepted (public CAs stopped
issuing clientAuth in 2026), and Python's ``ssl`` has no knob for the purpose, so the
server context's purpose is set to "any" through ``SSL_CTX_set_purpose`` (ctypes, on the
very libssl ``_ssl`` is linked to). OpenSSL still checks signatures, validity, CA flags and
path lengths; the EKU decision moves to our core check, which accepts clientAuth or
serverAuth and refuses codeSigning-/emailProtection-only certificates. Where that call is
not possible (not CPython, no shared ``_ssl``), ``server_context`` raises rather than
silently refusing every serverAuth-only client.
"""

from __future__ import annotations

import ctypes
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hybridge.tls.errors import TlsSetupError


def _cadata(anchors: Sequence[x509.Certificate]) -> str:
    if not anchors:
        raise TlsSetupError(
            "no trust anchors given; add CA certificates to the trust store (or pass "
            "--ca-file) before opening verified TLS connections"
        )
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in anchors)


def _base(protocol: int, anchors: Sequence[x509.Certificate]) -> ssl.SSLContext:
    context = ssl.SSLContext(protocol)
    # RFC 8996: TLS 1.0 and 1.1 are deprecated; RFC 9325 §3.1.1: 1.2 at least.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cadata=_cadata(anchors))
    except ssl.SSLError as exc:
        raise TlsSetupError(f"OpenSSL refused the trust anchors: {exc}") from exc
    return context


def _load_identity(context: ssl.SSLContext, cert_file: Path | None, key_file: Path | None) -> None:
    if cert_file is None and key_file is None:
        return
    if cert_file is None or key_file is None:
        raise TlsSetupError("give both a certificate file and its private key file, or neither")
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (ssl.SSLError, OSError) as exc:
        raise TlsSetupError(
            f"cannot use certificate {str(cert_file)!r} with key {str(key_file)!r}: {exc}; "
            "give a PEM certificate (chain) and its unencrypted PEM private key"
        ) from exc


def client_context(
    anchors: Sequence[x509.Certificate],
    *,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext:
    """A context for connecting to a server whose certificate must chain to ``anchors``.

    ``check_hostname`` is off: the caller must run ``check_peer(..., role=SERVER)`` on the
    connection before sending anything (``hybridge.tls.peer.connect`` does). Raises
    ``TlsSetupError`` for empty anchors or an unusable certificate/key.
    """
    context = _base(ssl.PROTOCOL_TLS_CLIENT, anchors)
    # Our name rule replaces OpenSSL's (SIP URI SANs, CN only when no SAN); see the
    # package docstring: the check runs before any application data is exchanged.
    context.check_hostname = False
    _load_identity(context, cert_file, key_file)
    return context


def server_context(
    anchors: Sequence[x509.Certificate],
    *,
    cert_file: Path,
    key_file: Path,
) -> ssl.SSLContext:
    """A context for a server that requires a client certificate chaining to ``anchors``.

    The client certificate's purpose check is relaxed to "any" (module docstring): its EKU
    is decided by ``check_peer(..., role=CLIENT)``, which the caller must run on every
    accepted connection before reading application data. Raises ``TlsSetupError``.
    """
    context = _base(ssl.PROTOCOL_TLS_SERVER, anchors)
    _load_identity(context, cert_file, key_file)
    relax_client_purpose(context)
    # No session resumption: a resumed session carries no certificate chain (OpenSSL's
    # SSL_get_peer_cert_chain is empty), so our check could not see the intermediates, and
    # it would skip validation against the *current* anchors after a trust-store change.
    # Every connection therefore makes a full handshake (TLS 1.3 tickets and 1.2 tickets
    # off; Python's server-side session cache is not enabled).
    context.options |= ssl.OP_NO_TICKET
    context.num_tickets = 0
    return context


_X509_PURPOSE_ANY_SNAME = b"any"


def relax_client_purpose(context: ssl.SSLContext) -> None:
    """Make OpenSSL accept any EKU on the peer's leaf (the EKU rule is applied by our core).

    Raises ``TlsSetupError`` when it cannot be done safely on this interpreter.
    """
    if sys.implementation.name != "cpython" or not (3, 10) <= sys.version_info[:2] <= (3, 14):
        raise TlsSetupError(
            "cannot relax OpenSSL's client-certificate purpose check on this Python "
            f"({sys.implementation.name} {sys.version.split()[0]}); CPython 3.10-3.14 is needed"
        )
    libssl = _libssl()
    # CPython's PySSLContext starts with PyObject_HEAD followed by ``SSL_CTX *ctx``
    # (Modules/_ssl.c, unchanged from 3.7 to 3.14): the pointer sits right after the header.
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer:
        raise TlsSetupError("could not reach OpenSSL's context behind ssl.SSLContext")
    libssl.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    libssl.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    # Cross-check the pointer before writing through it: OpenSSL's own view of the verify
    # mode must equal what Python set (SSL_VERIFY_PEER | FAIL_IF_NO_PEER_CERT = 3).
    if libssl.SSL_CTX_get_verify_mode(pointer) != 3 or context.verify_mode != ssl.CERT_REQUIRED:
        raise TlsSetupError("OpenSSL's context does not look like the one Python built")
    libssl.X509_PURPOSE_get_by_sname.restype = ctypes.c_int
    libssl.X509_PURPOSE_get_by_sname.argtypes = [ctypes.c_char_p]
    libssl.X509_PURPOSE_get0.restype = ctypes.c_void_p
    libssl.X509_PURPOSE_get0.argtypes = [ctypes.c_int]
    libssl.X509_PURPOSE_get_id.restype = ctypes.c_int
    libssl.X509_PURPOSE_get_id.argtypes = [ctypes.c_void_p]
    libssl.SSL_CTX_set_purpose.restype = ctypes.c_int
    libssl.SSL_CTX_set_purpose.argtypes = [ctypes.c_void_p, ctypes.c_int]
    index = libssl.X509_PURPOSE_get_by_sname(_X509_PURPOSE_ANY_SNAME)
    purpose = libssl.X509_PURPOSE_get0(index) if index >= 0 else None
    if not purpose:
        raise TlsSetupError("OpenSSL has no 'any' certificate purpose")
    purpose_id = libssl.X509_PURPOSE_get_id(purpose)
    if libssl.SSL_CTX_set_purpose(pointer, purpose_id) != 1:
        raise TlsSetupError("OpenSSL refused to relax the client-certificate purpose")


def _libssl() -> ctypes.CDLL:
    import _ssl

    path = getattr(_ssl, "__file__", None)
    # dlsym on the _ssl extension's handle resolves symbols in the libssl/libcrypto it is
    # linked against — never a different OpenSSL found on the library path.
    try:
        return ctypes.CDLL(path) if path else ctypes.CDLL(None)
    except OSError as exc:
        raise TlsSetupError(f"cannot load the OpenSSL library behind Python's ssl: {exc}") from exc
