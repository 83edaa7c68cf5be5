"""Assess a certificate as a trust anchor at a given time (the time is always passed in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from hybridge.core.pki.describe import (
    ca_flags,
    is_self_issued,
    key_usage,
    self_signature_ok,
    serial_number,
    signature_algorithm_name,
)

#: NIST SP 800-131A Rev. 2 §3: RSA keys under 2048 bits are disallowed for signatures.
MIN_RSA_BITS = 2048
#: NIST SP 800-57 Part 1 Rev. 5 §5.6.1: EC keys need at least 224 bits (P-192 is out).
MIN_EC_BITS = 224

# Hashes broken for certificate signatures (collisions: MD5 2008 rogue CA, SHA-1 2017).
# md2/md4 have no hash object in cryptography, so they are recognised by OID.
_BROKEN_HASH_OIDS = {
    x509.ObjectIdentifier("1.2.840.113549.1.1.2"): "MD2",
    x509.ObjectIdentifier("1.2.840.113549.1.1.3"): "MD4",
}


class Status(StrEnum):
    """A certificate's standing as an anchor, most severe first in ``SEVERITY``."""

    VALID = "valid"
    NOT_A_CA = "not_a_ca"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WEAK = "weak"
    INVALID = "invalid"


#: When several statuses apply, the first of these wins.
SEVERITY: tuple[Status, ...] = (
    Status.INVALID,
    Status.EXPIRED,
    Status.NOT_YET_VALID,
    Status.WEAK,
    Status.NOT_A_CA,
    Status.VALID,
)


@dataclass(frozen=True)
class Assessment:
    """The verdict of ``assess``: the worst status, every problem and every warning."""

    status: Status
    problems: tuple[str, ...]
    warnings: tuple[str, ...]
    #: Whole days from ``at`` to notAfter, truncated toward zero; negative once expired.
    expires_in_days: int

    def __post_init__(self) -> None:
        if (self.status is Status.VALID) != (not self.problems):
            raise ValueError(f"status {self.status!r} does not match problems {self.problems!r}")


def assess(certificate: x509.Certificate, at: datetime, *, warn_days: int = 30) -> Assessment:
    """Return the status of ``certificate`` as a trust anchor at ``at``, with every reason.

    ``at`` must be timezone-aware (``ValueError`` otherwise); nothing here reads the clock.
    A warning is added when the certificate expires within ``warn_days`` days of ``at``.
    """
    if at.utcoffset() is None:
        raise ValueError(f"at must be timezone-aware, not {at!r}")
    if warn_days < 0:
        raise ValueError(f"warn_days must be 0 or more, not {warn_days!r}")
    at = at.astimezone(UTC)
    found: dict[Status, list[str]] = {status: [] for status in SEVERITY}
    warnings: list[str] = []

    self_issued = is_self_issued(certificate)
    signature_ok = self_signature_ok(certificate) if self_issued else None
    if self_issued and signature_ok is False:
        found[Status.INVALID].append(
            "its self-signature does not verify with its own key: the certificate is "
            "corrupted or forged"
        )
    elif self_issued and signature_ok is None:
        warnings.append(
            f"its self-signature ({signature_algorithm_name(certificate)}) cannot be checked "
            "here; as a trust anchor it is trusted as given"
        )
    self_signed = self_issued and signature_ok is not False

    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    # Truncated toward zero, so that "expired 564.5 days ago" reads as -564, like "in 12 days".
    expires_in_days = int((not_after - at) / timedelta(days=1))
    # RFC 5280 §4.1.2.5: the validity period includes both notBefore and notAfter.
    if at > not_after:
        ago = "less than a day" if expires_in_days == 0 else _days(-expires_in_days)
        found[Status.EXPIRED].append(f"it expired on {_day(not_after)} ({ago} before {_day(at)})")
    elif not_after - at <= timedelta(days=warn_days):
        warnings.append(f"expires in {_days(expires_in_days)} ({_day(not_after)})")
    if at < not_before:
        found[Status.NOT_YET_VALID].append(f"it is not valid before {_day(not_before)}")

    found[Status.WEAK].extend(_weaknesses(certificate, self_signed))
    found[Status.NOT_A_CA].extend(_not_a_ca(certificate, self_signed, warnings))

    serial = serial_number(certificate)
    if serial <= 0:
        # RFC 5280 §4.1.2.2 wants a positive serial, but real roots (Go Daddy Class 2,
        # serial 0) predate the rule; clients accept them, so it is a warning, not a status.
        warnings.append(
            f"its serial number {serial} is not positive "
            "(RFC 5280 §4.1.2.2); accepted because real roots carry such serials"
        )

    problems = tuple(problem for status in SEVERITY for problem in found[status])
    status = next((status for status in SEVERITY if found[status]), Status.VALID)
    return Assessment(status, problems, tuple(warnings), expires_in_days)


def _weaknesses(certificate: x509.Certificate, self_signed: bool) -> list[str]:
    weak: list[str] = []
    try:
        key = certificate.public_key()
    except (UnsupportedAlgorithm, ValueError):
        key = None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        weak.append(f"its RSA key has {key.key_size} bits, fewer than {MIN_RSA_BITS}")
    elif isinstance(key, dsa.DSAPublicKey):
        # FIPS 186-5 (2023) withdrew DSA for generating signatures.
        weak.append(f"its key is DSA ({key.key_size} bits), which FIPS 186-5 withdrew")
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        weak.append(f"its EC key has {key.curve.key_size} bits, fewer than {MIN_EC_BITS}")
    broken = _broken_signature_hash(certificate)
    # The signature on a self-signed anchor proves nothing (the anchor is trusted as
    # given), so only signatures that a relying party depends on are judged.
    if broken is not None and not self_signed:
        weak.append(
            f"it is signed with {broken} ({signature_algorithm_name(certificate)}), "
            "which is broken for certificate signatures"
        )
    return weak


def _broken_signature_hash(certificate: x509.Certificate) -> str | None:
    name = _BROKEN_HASH_OIDS.get(certificate.signature_algorithm_oid)
    if name is not None:
        return name
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    if isinstance(algorithm, hashes.MD5):
        return "MD5"
    if isinstance(algorithm, hashes.SHA1):
        return "SHA-1"
    return None


def _not_a_ca(certificate: x509.Certificate, self_signed: bool, warnings: list[str]) -> list[str]:
    is_ca, _path_length = ca_flags(certificate)
    if certificate.version is x509.Version.v1:
        if is_ca and self_signed:
            warnings.append(
                "it is a version 1 certificate with no extensions, taken as a CA because "
                "it is a self-signed trust anchor"
            )
            return []
        return [
            "it is a version 1 certificate that is not self-signed, so it cannot say it is "
            "a CA (RFC 5280 §6.1.4(k) requires basicConstraints)"
        ]
    if not is_ca:
        try:
            certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            return ["it is not a CA certificate: it has no basicConstraints (RFC 5280 §4.2.1.9)"]
        return ["it is not a CA certificate: its basicConstraints says cA FALSE"]
    usages = key_usage(certificate)
    # RFC 5280 §4.2.1.3: when keyUsage is present, a key that signs certificates must
    # assert keyCertSign; without it no chain through this CA can validate.
    if usages and "key_cert_sign" not in usages:
        return [
            "its keyUsage does not include keyCertSign, so it cannot sign certificates "
            "(RFC 5280 §4.2.1.3)"
        ]
    return []


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def _days(count: int) -> str:
    return "1 day" if count == 1 else f"{count} days"
