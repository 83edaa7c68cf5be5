"""Certificates as values: load PEM/DER/PKCS#7, describe each, assess it at a given time.

Pure: takes bytes and a time, returns frozen values; no disk, no clock, no network.

    load_certificates(data) -> (ParsedCertificate, ...)   whole-input problems raise PkiError
    describe(certificate)   -> CertificateInfo            subject, serial, key, fingerprints ...
    assess(certificate, at) -> Assessment                 valid | not_a_ca | not_yet_valid |
                                                          expired | weak | invalid
"""

from hybridge.core.pki.assess import SEVERITY, Assessment, Status, assess
from hybridge.core.pki.describe import CertificateInfo, describe, fingerprint_sha256
from hybridge.core.pki.errors import InputTooLarge, MalformedInput, NoCertificates, PkiError
from hybridge.core.pki.loading import (
    MAX_INPUT_BYTES,
    ParsedCertificate,
    load_certificates,
    to_pem,
)

__all__ = [
    "MAX_INPUT_BYTES",
    "SEVERITY",
    "Assessment",
    "CertificateInfo",
    "InputTooLarge",
    "MalformedInput",
    "NoCertificates",
    "ParsedCertificate",
    "PkiError",
    "Status",
    "assess",
    "describe",
    "fingerprint_sha256",
    "load_certificates",
    "to_pem",
]
