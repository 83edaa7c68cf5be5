"""TLS on the wire: contexts for both sides, the post-handshake peer check, a probe.

How the work is split between OpenSSL and our code, and why it is safe
---------------------------------------------------------------------

1. **OpenSSL, during the handshake** (``contexts.py``): the context trusts exactly the
   anchors our check will use and requires a peer certificate (``CERT_REQUIRED``). OpenSSL
   checks that the peer *holds the private key* of the leaf it sent (CertificateVerify /
   the server's signature), and builds and validates a path from that leaf to one of the
   anchors: signatures, validity now, CA flags, path lengths. A peer that fails any of it
   never completes the handshake. Two things are deliberately left to us: the *name*
   (``check_hostname`` is off: OpenSSL knows neither SIP URI SANs nor "CN only when no
   SAN") and, on the server side, the client leaf's *EKU* (purpose relaxed to "any", so
   serverAuth-only client certificates can pass; see ``contexts.py``).

2. **Our core, right after the handshake** (``peer.check_peer``): it takes the
   certificates the peer *sent* — the leaf OpenSSL proved key possession for, plus the
   peer's intermediates — and runs ``core.tlsverify.verify_peer`` against the same anchors
   at the current time: a second, independent path validation (cryptography's Rust
   verifier, WebPKI profile, bounds on intermediates and depth), key strength, EKU per
   role, then the zone's name rule. Only an ``Accepted`` verdict lets the caller use the
   connection.

Why this is safe: every certificate we accept has passed *both* validators against the
same anchors, so the combination can only be stricter than either. The leaf we judge is
the one whose key the peer proved in this handshake (OpenSSL binds ``get_peer_certificate``
to the handshake; the chain we read starts with that same leaf). Intermediates are
untrusted input to both validators, bounded by us before any work. Where Python gives us
only the leaf (no ``get_unverified_chain``), our check has no intermediates and refuses
anything not issued directly by an anchor: fail-closed. Session resumption is off on our
server contexts (a resumed session carries no chain and skips validation against the
current anchors), and Python clients resume only when handed a ``session``, which we never
do: every connection is a full handshake, judged against the anchors of that moment. The
one relaxation — OpenSSL's purpose check on client leaves — is replaced, not dropped: our
EKU rule refuses codeSigning- or emailProtection-only certificates in both roles.

The caller's duty: no application data may be read or written before ``check_peer``
returns ``Accepted``; on ``Refused`` close the connection and log the verdict (it holds no
secret). ``require_peer`` raises ``PeerRefused`` for the common case.
"""

from hybridge.tls.contexts import client_context, relax_client_purpose, server_context
from hybridge.tls.errors import PeerRefused, TlsConnectError, TlsError, TlsSetupError
from hybridge.tls.peer import check_peer, peer_chain_der, require_peer
from hybridge.tls.probe import ProbeResult, parse_target, probe

__all__ = [
    "PeerRefused",
    "ProbeResult",
    "TlsConnectError",
    "TlsError",
    "TlsSetupError",
    "check_peer",
    "client_context",
    "parse_target",
    "peer_chain_der",
    "probe",
    "relax_client_purpose",
    "require_peer",
    "server_context",
]
