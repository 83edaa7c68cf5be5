"""The peer-identity decision: path validation, key strength, then the zone's name rule.

``verify_peer`` is the one function every TLS connection of Hybridge goes through, on both
sides. It is pure: certificates, anchors, policy and time in, an ``Accepted`` or a
``Refused`` out. The order of checks is fixed so that the *reason* is stable:

1. bounds (``chain_too_long``) before any work, so a 50-certificate chain costs nothing;
2. the path to an anchor usable for this use (``untrusted_issuer``, ``expired``, ...);
   when the only path ends at a bootstrap anchor and the use is not registration,
   ``bootstrap_only``;
3. key strength over the validated path (``weak_key``);
4. the name rule (``name_mismatch``, listing the names the certificate carries).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from hybridge.core.tlsverify.anchors import AnchorSet, Use
from hybridge.core.tlsverify.errors import ChainParseError
from hybridge.core.tlsverify.names import (
    NamePolicy,
    describe_names,
    presented_identities,
)
from hybridge.core.tlsverify.path import (
    ChainLimits,
    PathRefusal,
    PeerRole,
    intermediate_key_ids_missing,
    san_criticality_problem,
    validate_path,
    weak_key,
)
from hybridge.core.tlsverify.result import Accepted, RefusalReason, Refused, Verdict

_DEFAULT_LIMITS = ChainLimits()


@lru_cache(maxsize=4096)
def fingerprint(cert: x509.Certificate) -> str:
    """The certificate's SHA-256 fingerprint, lower-case hex without separators.

    Memoised: intermediates and anchors recur on every connection.
    """
    return cert.fingerprint(hashes.SHA256()).hex()


def verify_peer(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    *,
    anchors: AnchorSet,
    names: NamePolicy,
    role: PeerRole,
    at: dt.datetime,
    use: Use = Use.PLATFORM,
    limits: ChainLimits = _DEFAULT_LIMITS,
) -> Verdict:
    """Decide whether the peer that presented ``leaf`` (and ``intermediates``) is ``names``.

    Returns ``Accepted`` or ``Refused``; raises ``InvalidVerifyInput`` only for a naive
    ``at``. ``intermediates`` are untrusted input, in any order.
    """
    try:
        presented = presented_identities(leaf)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        # RFC 5280 §4.2: each extension at most once, and a SAN must parse; a certificate
        # we cannot read the names of is refused, never guessed at.
        return Refused(RefusalReason.MALFORMED, f"the certificate's names cannot be read: {exc}")
    path = validate_peer_path(
        leaf, intermediates, anchors=anchors, role=role, at=at, use=use, limits=limits
    )
    if isinstance(path, Refused):
        return Refused(path.reason, path.explanation, presented.describe())

    match = names.match(presented)
    if match is None:
        carried = presented.describe()
        rule = f"cn={names.cn.value}, wildcards={'on' if names.wildcards else 'off'}"
        return Refused(
            RefusalReason.NAME_MISMATCH,
            f"the certificate does not name {names.expected!r} ({rule}); it carries: "
            f"{describe_names(carried)}",
            carried,
        )
    return Accepted(
        identity=match.identity,
        source=match.source,
        chain_sha256=tuple(fingerprint(c) for c in path),
        via_bootstrap=anchors.is_bootstrap(path[-1]),
    )


def validate_peer_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    *,
    anchors: AnchorSet,
    role: PeerRole,
    at: dt.datetime,
    use: Use = Use.PLATFORM,
    limits: ChainLimits = _DEFAULT_LIMITS,
) -> list[x509.Certificate] | Refused:
    """Steps 1-3 of ``verify_peer`` (no name rule): the validated path, or a ``Refused``.

    The path runs leaf first, anchor last. Used on its own where no name is expected
    (x509-limbo's client cases); every connection goes through ``verify_peer``.
    """
    # Bound the work a peer can cause before doing any (DESIGN §3.4).
    if len(intermediates) > limits.max_intermediates:
        return Refused(
            RefusalReason.CHAIN_TOO_LONG,
            f"the peer sent {len(intermediates)} intermediate certificates; at most "
            f"{limits.max_intermediates} are accepted",
        )

    store = anchors.store_for(use)
    outcome: list[x509.Certificate] | PathRefusal
    if store is None:
        outcome = PathRefusal(
            RefusalReason.UNTRUSTED_ISSUER, f"no trust anchors are configured for {use.value} use"
        )
    else:
        outcome = validate_path(leaf, intermediates, store=store, role=role, at=at, limits=limits)
    if isinstance(outcome, PathRefusal):
        if (
            outcome.reason is RefusalReason.UNTRUSTED_ISSUER
            and use is not Use.REGISTRATION
            and anchors.has_bootstrap
        ):
            bootstrap_store = anchors.store_for(Use.REGISTRATION)
            assert bootstrap_store is not None  # has_bootstrap implies a non-empty store
            retry = validate_path(
                leaf, intermediates, store=bootstrap_store, role=role, at=at, limits=limits
            )
            if not isinstance(retry, PathRefusal):
                # DESIGN §3.1: bootstrap anchors serve the registration endpoints only.
                return Refused(
                    RefusalReason.BOOTSTRAP_ONLY,
                    f"the certificate chains only to bootstrap anchor "
                    f"{retry[-1].subject.rfc4514_string()!r} (sha256 {fingerprint(retry[-1])}), "
                    f"which may be used for registration only, not for {use.value} use",
                )
        return Refused(outcome.reason, outcome.explanation)

    weakness = weak_key(outcome)
    if weakness is not None:
        return Refused(RefusalReason.WEAK_KEY, weakness)
    missing = intermediate_key_ids_missing(outcome) or san_criticality_problem(leaf)
    if missing is not None:
        return Refused(RefusalReason.INVALID_CHAIN, missing)
    return outcome


def load_chain(data: bytes) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """(leaf, intermediates) from PEM (leaf first) or a single DER certificate.

    Raises ``ChainParseError`` when ``data`` holds no certificate or a broken one.
    """
    stripped = data.lstrip()
    try:
        if stripped.startswith(b"-----BEGIN"):
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ChainParseError(
            f"no readable certificate in the input ({exc}); give PEM certificates, the "
            "peer's first, or one DER certificate"
        ) from exc
    return certs[0], certs[1:]
