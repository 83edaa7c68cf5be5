"""Named CA-list presets. ``webex``: the CA list the seed document gives for Cisco Webex.

The seed lists seven roots. Their certificates are taken from ``certifi`` (Mozilla's root
store as packaged) when it still ships them; the rest are listed by subject with the reason
they cannot be published. As of certifi 2026.10 only Go Daddy Root CA - G2 remains:

- Baltimore CyberTrust Root expired on 2025-05-12; GTE CyberTrust Global Root on 2018-08-13;
- the others are no longer in Mozilla's store (Symantec-era distrust for thawte and
  VeriSign, retirements for Go Daddy Class 2 and QuoVadis Root CA 2); whatever their
  nominal expiry, a connector could not verify the cloud with them today.

Nothing here is invented: an entry is "available" only when a certificate with exactly that
subject is in certifi and valid at the time asked.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

import certifi
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

_OIDS = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
}

#: (subject as printed in the seed, what is known about it when certifi lacks it)
WEBEX_SEED: tuple[tuple[str, str], ...] = (
    (
        "C=IE, O=Baltimore, OU=CyberTrust, CN=Baltimore CyberTrust Root",
        "expired 2025-05-12",
    ),
    (
        "C=US, O=GTE Corporation, OU=GTE CyberTrust Solutions, Inc., CN=GTE CyberTrust Global Root",
        "expired 2018-08-13",
    ),
    (
        "C=US, O=The Go Daddy Group, Inc., OU=Go Daddy Class 2 Certificate Authority",
        "not in certifi's Mozilla bundle",
    ),
    (
        "C=US, ST=Arizona, L=Scottsdale, O=GoDaddy.com, Inc., "
        "CN=Go Daddy Root Certificate Authority - G2",
        "not in certifi's Mozilla bundle",
    ),
    ("C=BM, O=QuoVadis Limited, CN=QuoVadis Root CA 2", "not in certifi's Mozilla bundle"),
    (
        "C=US, O=thawte, Inc., OU=Certification Services Division, "
        "OU=(c) 2006 thawte, Inc. - For authorized use only, CN=thawte Primary Root CA",
        "not in certifi's Mozilla bundle (Symantec-era distrust)",
    ),
    (
        "C=US, O=VeriSign, Inc., OU=Class 3 Public Primary Certificate Authority",
        "not in certifi's Mozilla bundle (Symantec-era distrust)",
    ),
)
# The seed prints "... Certificate Authority" where those two certificates say "...
# Certification Authority"; the seed's spelling is shown, the certificates' is matched.
_SPELLING = {"Certificate Authority": "Certification Authority"}

PRESETS = ("webex",)


@dataclass(frozen=True)
class PresetEntry:
    """One member of a preset: ``status`` is "available", "expired" or "not_available"."""

    subject: str
    status: str
    note: str
    certificate: x509.Certificate | None


def _name(text: str) -> x509.Name:
    attributes = []
    # Values here contain ", " only inside "(c) 2006 thawte, Inc. - ..." and "GoDaddy.com,
    # Inc."; split on ", X=" boundaries rather than on every comma.
    parts: list[str] = []
    for piece in text.split(", "):
        if "=" in piece and piece.split("=", 1)[0] in _OIDS:
            parts.append(piece)
        else:
            parts[-1] += ", " + piece
    for part in parts:
        key, value = part.split("=", 1)
        attributes.append(x509.NameAttribute(_OIDS[key], value))
    return x509.Name(attributes)


def certifi_roots() -> list[x509.Certificate]:
    """Mozilla's roots as packaged by certifi."""
    with open(certifi.where(), "rb") as handle:
        data = handle.read()
    # certifi still carries roots with a non-positive serial (RFC 5280 §4.1.2.2), which
    # cryptography warns about on load; ``webex_preset`` flags it in the entry's note instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return x509.load_pem_x509_certificates(data)


def webex_preset(now: dt.datetime) -> list[PresetEntry]:
    """The seed's Webex CA list resolved against certifi at ``now``."""
    roots = certifi_roots()
    entries = []
    for subject, known in WEBEX_SEED:
        match = subject
        if subject.endswith("Certificate Authority") and "CN=" not in subject:
            match = subject.replace("Certificate Authority", _SPELLING["Certificate Authority"])
        wanted = _name(match)
        found = next((cert for cert in roots if cert.subject == wanted), None)
        if found is None:
            status = "expired" if known.startswith("expired") else "not_available"
            entries.append(PresetEntry(subject, status, known, None))
        elif found.not_valid_after_utc <= now:
            entries.append(
                PresetEntry(
                    subject, "expired", f"expired {found.not_valid_after_utc:%Y-%m-%d}", found
                )
            )
        else:
            note = f"from certifi; valid until {found.not_valid_after_utc:%Y-%m-%d}"
            with warnings.catch_warnings():  # the warning is what we report, in the note
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                serial = found.serial_number
            if serial <= 0:
                # Go Daddy G2 has serial 0: RFC 5280 §4.1.2.2 wants a positive serial, and
                # cryptography announces it will refuse such certificates in a future release.
                note += "; serial number 0 (RFC 5280 §4.1.2.2), future cryptography refuses it"
            entries.append(PresetEntry(subject, "available", note, found))
    return entries
