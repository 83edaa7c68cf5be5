"""Path validation with ``cryptography.x509.verification``, for either TLS role.

What cryptography does for us: chain building from the peer's leaf through the
intermediates it sent to an anchor, signatures, validity periods, basic constraints and
path lengths, name constraints, key usage of CAs, the CA/B Forum profile, a depth bound and
a defence against pathological chains (the x509-limbo suite is its test bed).

What we change, through its extension policies (cryptography >= 45):

- The *same* verifier type is used for both roles: ``build_client_verifier()``, which
  builds and checks the path but matches no name. The name rule is ours (``names.py``):
  the server verifier's built-in check knows neither SIP URIs nor "CN when no SAN".
- The end-entity's subjectAltName becomes optional (a CN-only certificate is decided by the
  name rule, not refused by the path check), with RFC 5280's criticality rule kept.
- Extended key usage is checked per role by our callbacks: a *server* peer needs
  serverAuth; a *client* peer needs clientAuth **or serverAuth** — public CAs stopped
  issuing clientAuth in 2026 and a cloud's SIP certificate may carry serverAuth only —
  and codeSigning/emailProtection-only certificates are refused in both roles.

Refusals come back as ``(RefusalReason, explanation)``; cryptography's error text is mapped
to our reason codes here and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import VerificationError as CryptoVerificationError

from hybridge.core.tlsverify.errors import InvalidVerifyInput
from hybridge.core.tlsverify.result import RefusalReason

# RSA below 2048 bits is refused everywhere in the path (NIST SP 800-131A Rev. 2; CA/B
# Forum BR §6.1.5). cryptography enforces this for keys that *sign*; the leaf's own key is
# checked by us, since an RSA-1024 leaf would otherwise pass.
MIN_RSA_BITS = 2048


class PeerRole(StrEnum):
    """The TLS role of the peer whose certificate is checked."""

    #: We are the client; the peer is a server (connector to cloud, edge to cloud).
    SERVER = "server"
    #: We are the server; the peer presented a client certificate (the edge's listener).
    CLIENT = "client"


@dataclass(frozen=True, slots=True)
class ChainLimits:
    """Bounds on what a peer may make us process.

    ``max_intermediates``: certificates a peer may send besides its leaf (8: Go's and
    rustls' verifiers stop at similar depths, and no public hierarchy needs more than 3).
    ``max_chain_depth``: intermediates on the validated path, passed to cryptography
    (whose default is also 8).
    """

    max_intermediates: int = 8
    max_chain_depth: int = 8

    def __post_init__(self) -> None:
        for name in ("max_intermediates", "max_chain_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0 or value > 255:
                raise InvalidVerifyInput(
                    f"{name} {value!r} is not usable; give an integer from 0 to 255"
                )


class _Refusal(ValueError):
    """Raised inside our extension callbacks; cryptography embeds the text in its error."""

    def __init__(self, reason: RefusalReason, text: str) -> None:
        super().__init__(f"[{reason.value}] {text}")


_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}


def _eku_text(eku: x509.ExtendedKeyUsage) -> str:
    return ", ".join(_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku)


def _allowed_eku(role: PeerRole) -> frozenset[x509.ObjectIdentifier]:
    if role is PeerRole.SERVER:
        return frozenset({ExtendedKeyUsageOID.SERVER_AUTH})
    # DESIGN §3.4: a client certificate whose EKU is serverAuth only is accepted (public
    # CAs stopped issuing clientAuth in 2026); clientAuth is of course accepted too.
    return frozenset({ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH})


def _ee_eku_validator(
    role: PeerRole,
) -> Callable[[Policy, x509.Certificate, x509.ExtendedKeyUsage | None], None]:
    allowed = _allowed_eku(role)

    def check(_policy: Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
        # RFC 5280 §4.2.1.12: an absent EKU restricts nothing (CA/B Forum requires one, but
        # every TLS stack, pyca's default included, accepts its absence).
        if eku is None:
            return
        # CA/B Forum BR §7.1.2.7.10: the leaf must name the purpose itself, and
        # anyExtendedKeyUsage is forbidden in a subscriber certificate.
        if ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku:
            raise _Refusal(
                RefusalReason.BAD_KEY_USAGE,
                f"the certificate's extended key usage ({_eku_text(eku)}) includes "
                "anyExtendedKeyUsage, which a TLS peer's certificate must not carry",
            )
        if not allowed.intersection(eku):
            raise _Refusal(
                RefusalReason.BAD_KEY_USAGE,
                f"the certificate's extended key usage ({_eku_text(eku)}) does not allow a "
                f"TLS {role.value}",
            )

    return check


def _ca_eku_validator(
    role: PeerRole,
) -> Callable[[Policy, x509.Certificate, x509.ExtendedKeyUsage | None], None]:
    allowed = _allowed_eku(role) | {ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}

    def check(_policy: Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
        # An EKU on a CA constrains what it may issue for (the de facto rule of every
        # browser and of pyca); absent, it constrains nothing.
        if eku is not None and not allowed.intersection(eku):
            raise _Refusal(
                RefusalReason.BAD_KEY_USAGE,
                f"CA {cert.subject.rfc4514_string()!r} is restricted to {_eku_text(eku)}, "
                f"which does not cover a TLS {role.value}",
            )

    return check


def san_criticality_problem(leaf: x509.Certificate) -> str | None:
    """Why the leaf's subjectAltName has the wrong criticality, or None when it is right.

    Checked by us after path building rather than in a verifier callback: the callback
    would parse the leaf's extensions a second time on every connection.
    """
    try:
        extension = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return None
    subject_empty = len(leaf.subject) == 0
    # RFC 5280 §4.2.1.6: with an empty subject the SAN MUST be critical.
    if subject_empty and not extension.critical:
        return "the subject is empty but the subjectAltName is not critical (RFC 5280 §4.2.1.6)"
    # CA/B Forum BR §7.1.2.7.12: with a non-empty subject it MUST NOT be (pyca's default).
    if not subject_empty and extension.critical:
        return (
            "the subjectAltName is critical beside a non-empty subject (CA/B Forum BR §7.1.2.7.12)"
        )
    return None


@cache
def _extension_policies(role: PeerRole) -> tuple[ExtensionPolicy, ExtensionPolicy]:
    """(ca_policy, ee_policy) for ``role``: WebPKI defaults with our EKU and SAN rules."""
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _ca_eku_validator(role)
    )
    ee_policy = (
        ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _ee_eku_validator(role))
        # The SAN is optional here: a CN-only certificate is for the name rule to decide
        # (CnRule.WHEN_NO_SAN), not a path failure. Its criticality: san_criticality_problem.
        .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    )
    return ca_policy, ee_policy


@dataclass(frozen=True, slots=True)
class PathRefusal:
    """Why no valid path was found."""

    reason: RefusalReason
    explanation: str


def validate_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    *,
    store: Store,
    role: PeerRole,
    at: dt.datetime,
    limits: ChainLimits,
) -> list[x509.Certificate] | PathRefusal:
    """The validated path (leaf first, anchor last), or why there is none.

    ``at`` must be timezone-aware (``InvalidVerifyInput`` otherwise): the verifier never
    reads a clock.
    """
    if at.tzinfo is None:
        raise InvalidVerifyInput(
            f"validation time {at.isoformat()!r} has no timezone; give an aware datetime (UTC)"
        )
    ca_policy, ee_policy = _extension_policies(role)
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(at.astimezone(dt.UTC).replace(tzinfo=None))
        .max_chain_depth(limits.max_chain_depth)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        return list(verifier.verify(leaf, list(intermediates)).chain)
    except CryptoVerificationError as exc:
        return _explain(str(exc), leaf, intermediates, at, limits)


_OUR_REASON = re.compile(r"\[([a-z_]+)\] (.*?)(?: \(encountered processing .*)?$")


def _explain(
    message: str,
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    at: dt.datetime,
    limits: ChainLimits,
) -> PathRefusal:
    """Map cryptography's error text onto a reason code and a one-line explanation."""
    ours = _OUR_REASON.search(message)
    if ours:
        return PathRefusal(RefusalReason(ours.group(1)), ours.group(2))
    detail = _strip(message)
    lowered = message.lower()
    if "not valid at validation time" in lowered:
        return _time_refusal(leaf, intermediates, at)
    if "depth" in lowered:
        # cryptography says "exceeds max depth" both when the path really is too deep and
        # when its search ran in circles without reaching an anchor (a self-signed root
        # that is not trusted): only the first is a long chain for the admin.
        if len(intermediates) >= limits.max_chain_depth:
            return PathRefusal(
                RefusalReason.CHAIN_TOO_LONG,
                f"no path within the bound of {limits.max_chain_depth} intermediates ({detail})",
            )
        return _untrusted(leaf, detail)
    if "signature check limit" in lowered:
        # cryptography's defence against pathological chains (x509-limbo nc-dos, cycles).
        return PathRefusal(
            RefusalReason.CHAIN_TOO_LONG,
            f"path building gave up at the verifier's signature-check limit ({detail})",
        )
    if "name constraint" in lowered or "excluded" in lowered or "permitted" in lowered:
        return PathRefusal(RefusalReason.NAME_CONSTRAINTS, detail)
    # 2.5.29.15 keyUsage, 2.5.29.37 extKeyUsage.
    if any(k in lowered for k in ("key usage", "keyusage", "eku", "2.5.29.15", "2.5.29.37")):
        return PathRefusal(RefusalReason.BAD_KEY_USAGE, detail)
    if "forbidden public key algorithm" in lowered or (
        "rsa" in lowered and ("modulus" in lowered or "weak" in lowered or "small" in lowered)
    ):
        return PathRefusal(
            RefusalReason.WEAK_KEY,
            "a certificate on the path has a forbidden or too weak public key "
            "(accepted: RSA >= 2048 bits, ECDSA P-256/P-384/P-521, Ed25519)",
        )
    if (
        "candidates exhausted" in lowered
        and ("no interior errors" in lowered or "signature does not match" in lowered)
    ) or "no issuer" in lowered:
        return _untrusted(leaf, detail)
    if "malformed" in lowered or "parse" in lowered or "invalid encoding" in lowered:
        return PathRefusal(RefusalReason.MALFORMED, detail)
    return PathRefusal(RefusalReason.INVALID_CHAIN, detail)


_MAX_DETAIL = 240


def _untrusted(leaf: x509.Certificate, detail: str) -> PathRefusal:
    issuer = leaf.issuer.rfc4514_string() or "(empty issuer)"
    return PathRefusal(
        RefusalReason.UNTRUSTED_ISSUER,
        f"no path from the certificate (issued by {issuer!r}) to a trusted anchor "
        f"for this connection ({detail})",
    )


def _strip(message: str) -> str:
    text = message.removeprefix("validation failed: ")
    text = re.sub(r" \(encountered processing <Certificate\(.*$", "", text)
    # cryptography sometimes embeds Rust debug output; keep the explanation one short line.
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _time_refusal(
    leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], at: dt.datetime
) -> PathRefusal:
    # cryptography says only "not valid at validation time"; name the certificate and the
    # direction, leaf first (the one an admin can act on fastest).
    for position, cert in enumerate([leaf, *intermediates]):
        what = "the peer's certificate" if position == 0 else "intermediate"
        subject = cert.subject.rfc4514_string()
        if at > cert.not_valid_after_utc:
            return PathRefusal(
                RefusalReason.EXPIRED,
                f"{what} {subject!r} expired at {cert.not_valid_after_utc.isoformat()}",
            )
        if at < cert.not_valid_before_utc:
            return PathRefusal(
                RefusalReason.NOT_YET_VALID,
                f"{what} {subject!r} is not valid before {cert.not_valid_before_utc.isoformat()}",
            )
    return PathRefusal(
        RefusalReason.EXPIRED,
        f"a certificate of the path (an anchor) is outside its validity at {at.isoformat()}",
    )


_ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


def weak_key(path: Sequence[x509.Certificate]) -> str | None:
    """A description of the first unacceptable public key in ``path``, or None if all pass."""
    for position, cert in enumerate(path):
        # Intermediates and anchors recur on every connection: their verdict is memoised.
        problem = _key_problem(cert) if position == 0 else _key_problem_cached(cert)
        if problem is not None:
            return f"{cert.subject.rfc4514_string()!r} {problem}"
    return None


def _key_problem(cert: x509.Certificate) -> str | None:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "has a key of an unsupported type"
    if isinstance(key, rsa.RSAPublicKey):
        size = key.key_size
        if size < MIN_RSA_BITS:
            return f"has a {size}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
        # CA/B Forum BR §6.1.5: the modulus size in bits is divisible by 8.
        if size % 8:
            return f"has a {size}-bit RSA key, not a multiple of 8 bits"
    # CA/B Forum BR §6.1.5: ECDSA keys on P-256, P-384 or P-521 only (no P-192).
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _ALLOWED_CURVES):
            return f"has an EC key on {key.curve.name}; P-256, P-384 or P-521 needed"
    # DSA is gone from TLS 1.3 and from the CA/B Forum baseline: never acceptable.
    elif isinstance(key, dsa.DSAPublicKey):
        return "has a DSA key, which is not accepted"
    return None


@lru_cache(maxsize=4096)
def _key_problem_cached(cert: x509.Certificate) -> str | None:
    return _key_problem(cert)


def intermediate_key_ids_missing(path: Sequence[x509.Certificate]) -> str | None:
    """A description of the first intermediate on ``path`` lacking AKI or SKI, else None.

    RFC 5280 §4.2.1.1 and §4.2.1.2: every conforming CA certificate carries a subject key
    identifier, and every certificate but a self-signed root an authority key identifier.
    Checked on the intermediates of the validated path only (leaf first, anchor last):
    anchors are the admin's choice and some long-lived roots predate the rule.
    """
    for cert in path[1:-1]:
        problem = _key_ids_problem(cert)
        if problem is not None:
            return problem
    return None


@lru_cache(maxsize=4096)
def _key_ids_problem(cert: x509.Certificate) -> str | None:
    for ext_class, label in (
        (x509.AuthorityKeyIdentifier, "authority key identifier"),
        (x509.SubjectKeyIdentifier, "subject key identifier"),
    ):
        try:
            cert.extensions.get_extension_for_class(ext_class)
        except x509.ExtensionNotFound:
            return (
                f"intermediate {cert.subject.rfc4514_string()!r} has no {label} (RFC 5280 §4.2.1)"
            )
    return None
