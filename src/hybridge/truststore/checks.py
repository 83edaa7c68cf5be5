"""The acceptance rules for anchors: what may enter the manual set and the cloud set.

Each rule returns ``None`` (accepted) or the reason for refusing, and the caller decides:
``TrustStore`` gathers every reason first and refuses the whole change if there is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509

from hybridge.core.pki import (
    PkiError,
    Status,
    assess,
    fingerprint_sha256,
    load_certificates,
)
from hybridge.core.pki.describe import ca_flags  # the CA rule alone, without describe()'s cost
from hybridge.truststore.errors import Reject
from hybridge.truststore.interfaces import CertificateSource

CLOUD_SET = "cloud set"
NOT_A_CA = "not a CA certificate (basicConstraints does not say CA:TRUE)"


def parse_source(
    source: CertificateSource, rejects: list[Reject]
) -> list[tuple[int, bytes, x509.Certificate]]:
    """The certificates of ``source`` that load, as ``(index, der, certificate)``.

    Each input or certificate that does not load is appended to ``rejects`` with its reason.
    """
    try:
        parsed = load_certificates(source.data)
    except PkiError as exc:
        rejects.append(Reject(source.name, None, str(exc)))
        return []
    good = []
    for item in parsed:
        if item.certificate is None:
            rejects.append(Reject(source.name, item.index, item.error or "does not parse"))
        else:
            good.append((item.index, item.der, item.certificate))
    return good


def manual_problem(cert: x509.Certificate, now: datetime, *, allow_non_ca: bool) -> str | None:
    """Why ``cert`` cannot be a manual anchor, or ``None`` when it can."""
    assessment = assess(cert, now)
    if assessment.status == Status.INVALID:
        return "; ".join(assessment.problems) or "invalid certificate"
    # RFC 5280 §6.1.1(d): an anchor is where path validation starts; one that is not a CA
    # (basicConstraints cA=TRUE) can only ever verify itself (pinning), so the admin must ask
    # for it. Expired or weak CAs are kept and shown with their status (the seed's Baltimore
    # root is such a case): hiding them would hide the problem from the admin.
    if not allow_non_ca and not ca_flags(cert)[0]:
        return NOT_A_CA
    return None


def cloud_problem(cert: x509.Certificate, now: datetime) -> str | None:
    """Why ``cert`` cannot be in a cloud set, or ``None`` when it can."""
    # DESIGN.md §3 invariant 2: a pushed set is checked certificate by certificate, and only
    # CAs valid now are accepted. The cloud has no reason to push anything else, so anything
    # else is a sign of a broken or tampered list and the whole set is refused.
    if not ca_flags(cert)[0]:
        return NOT_A_CA
    assessment = assess(cert, now)
    if assessment.status != Status.VALID:
        reasons = "; ".join(assessment.problems)
        return str(assessment.status.value) + (f": {reasons}" if reasons else "")
    return None


def check_cloud_set(
    certs_der: Sequence[bytes], now: datetime
) -> tuple[dict[str, bytes], list[Reject]]:
    """Check a cloud set one DER certificate at a time.

    Returns the acceptable certificates by SHA-256 fingerprint and the rejects, each with
    its 0-based position in the set. An empty set is itself a reject.
    """
    rejects: list[Reject] = []
    accepted: dict[str, bytes] = {}
    for position, der in enumerate(certs_der):
        try:
            parsed = load_certificates(der)
        except PkiError as exc:
            rejects.append(Reject(CLOUD_SET, position, str(exc)))
            continue
        if len(parsed) != 1:
            rejects.append(
                Reject(CLOUD_SET, position, f"holds {len(parsed)} certificates, not one")
            )
            continue
        item = parsed[0]
        if item.certificate is None:
            rejects.append(Reject(CLOUD_SET, position, item.error or "does not parse"))
            continue
        problem = cloud_problem(item.certificate, now)
        if problem is not None:
            rejects.append(Reject(CLOUD_SET, position, problem))
        else:
            accepted[fingerprint_sha256(item.der)] = item.der
    if not certs_der:
        rejects.append(Reject(CLOUD_SET, None, "holds no certificate"))
    return accepted, rejects


def read_sources(
    paths: Sequence[Path], *, max_bytes: int
) -> tuple[list[CertificateSource], list[Reject]]:
    """Read each file up to ``max_bytes``; returns the sources read and the files refused."""
    sources: list[CertificateSource] = []
    rejects: list[Reject] = []
    for path in paths:
        try:
            size = path.stat().st_size
            if size > max_bytes:
                # Refused from its size alone, before reading a byte of it.
                rejects.append(
                    Reject(
                        str(path),
                        None,
                        f"the file is {size:,} bytes, over the limit of {max_bytes:,} bytes "
                        "for a certificate file",
                    )
                )
                continue
            with path.open("rb") as handle:
                # One byte more than the limit, so that a file that grew since stat() is
                # still refused by load_certificates' own limit.
                data = handle.read(max_bytes + 1)
        except OSError as exc:
            rejects.append(Reject(str(path), None, f"cannot read it: {exc.strerror or exc}"))
            continue
        sources.append(CertificateSource(str(path), data))
    return sources, rejects
