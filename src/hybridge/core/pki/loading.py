"""Load certificates from PEM, DER and PKCS#7 (PEM, DER, or bare base64 as EST serves it).

The armour and the containers are read here by hand (see ``_der``) so that one bad
certificate in a bundle is reported by its index instead of sinking the whole bundle;
every certificate itself is parsed by ``cryptography``.

Whole-input problems raise a ``PkiError`` subclass; a certificate that does not parse
inside a well-formed container comes back as a ``ParsedCertificate`` with ``error`` set.
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning

from hybridge.core.pki import _der
from hybridge.core.pki.errors import InputTooLarge, MalformedInput, NoCertificates

#: Default input limit. The whole Mozilla bundle is about 0.3 MiB; 16 MiB leaves room for
#: any real CA bundle while refusing a mistaken upload (a disk image, a log) before parsing.
MAX_INPUT_BYTES: int = 16 * 1024 * 1024

_MIB = 1024 * 1024

# RFC 2315 §14 / RFC 5652 §5.1: id-signedData, the only PKCS#7 content that carries certs.
_SIGNED_DATA_OID = _der.encode_oid("1.2.840.113549.1.7.2")

# RFC 7468 §5.1 names "CERTIFICATE" and says parsers may also accept "X509 CERTIFICATE"
# and "X.509 CERTIFICATE". "TRUSTED CERTIFICATE" is OpenSSL's certificate followed by its
# own trust settings (X509_CERT_AUX): we take the certificate and ignore those settings,
# because what an anchor is trusted for is decided by the store, not by the file.
_CERTIFICATE_LABELS = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE", b"X.509 CERTIFICATE"})
_TRUSTED_CERTIFICATE_LABEL = b"TRUSTED CERTIFICATE"
# RFC 7468 §8 ("PKCS7"; "PKCS #7 SIGNED DATA" is seen in the wild) and §9 ("CMS").
_PKCS7_LABELS = frozenset({b"PKCS7", b"PKCS #7 SIGNED DATA", b"CMS"})

# RFC 7468 §3: "-----BEGIN label-----". The label is bounded so the scan stays linear.
_PEM_MARKER = re.compile(rb"-----(BEGIN|END) ([\x21-\x2c\x2e-\x7e](?:[\x20-\x7e]{0,62}?))?-----")
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/=\s]+")
_WHITESPACE = re.compile(rb"\s+")
# How much of an unrecognised binary input an error quotes: enough for a file's magic
# number (PNG, PK, %PDF), too little to carry a secret from a DER key uploaded by mistake
# (a SEC1 EC private key has its secret from byte 7 on). Text is never quoted.
_SHOWN = 4
# How much of the input decides "text" or "binary" for that message.
_SNIFF = 512
_TEXT = re.compile(rb"[\x20-\x7e\s]*")


@dataclass(frozen=True)
class ParsedCertificate:
    """One certificate of an input, in input order.

    ``certificate`` is ``None`` exactly when this one certificate did not parse; ``error``
    then says why. ``der`` is the certificate's bytes as they were in the input.
    """

    index: int
    der: bytes
    certificate: x509.Certificate | None
    error: str | None

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"index must be 0 or more, not {self.index!r}")
        if (self.certificate is None) == (self.error is None):
            raise ValueError("exactly one of certificate and error must be set")


def load_certificates(
    data: bytes, *, max_bytes: int = MAX_INPUT_BYTES
) -> tuple[ParsedCertificate, ...]:
    """Return every certificate in ``data``, in order, each parsed or with its error.

    Accepts PEM (text around the blocks, many blocks, CRLF or LF; CERTIFICATE, TRUSTED
    CERTIFICATE and PKCS7 blocks), a DER certificate, a DER PKCS#7, and a PKCS#7 or
    certificate in bare base64 (EST ``/cacerts``, RFC 7030 §4.1.3).

    Raises ``InputTooLarge`` when ``data`` is over ``max_bytes`` (checked before anything
    else), ``NoCertificates`` when there is no certificate in it, and ``MalformedInput``
    when the armour or a container is broken.
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be positive, not {max_bytes!r}")
    # Size first: a 50 MB upload must be refused in constant time, before any scan.
    if len(data) > max_bytes:
        raise InputTooLarge(
            f"the input is {len(data):,} bytes, over the limit of {max_bytes:,} bytes "
            f"({max_bytes / _MIB:g} MiB); certificate files up to that size are accepted"
        )
    data = bytes(data)
    if not data.strip():
        raise NoCertificates("the input is empty; expected PEM, DER or PKCS#7 certificates")

    ders = _split(data)
    if not ders:
        raise NoCertificates("the PKCS#7 structure holds no certificate")
    return tuple(_parse_one(index, der) for index, der in enumerate(ders))


def to_pem(der: bytes) -> str:
    """Return ``der`` as one PEM CERTIFICATE block (RFC 7468 §2: 64-column base64, LF)."""
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def _split(data: bytes) -> list[bytes]:
    """Return the DER of every certificate in ``data``, in order (maybe none, for PKCS#7)."""
    shape = _der_shape(data)
    if shape is not None:
        kind, problem = shape
        if problem is None:
            return _from_der(data, kind)
    if b"-----BEGIN" in data or b"-----END" in data:
        return _from_pem(data)
    if shape is not None and not _TEXT.fullmatch(data):
        # A text file can start with "0" (0x30) too; only binary input is judged as DER.
        kind, problem = shape
        raise MalformedInput(f"the DER {kind} is malformed: {problem}")
    stripped = _WHITESPACE.sub(b"", data)
    # Base64 of a DER SEQUENCE (0x30) always starts with "M"; requiring it keeps ordinary
    # text files reported as "no certificate" rather than as "bad base64".
    if stripped.startswith(b"M") and _BASE64_TEXT.fullmatch(data):
        return _from_base64(stripped)
    raise NoCertificates(
        f"no certificate found in {len(data):,} bytes of {_kind(data)}; expected "
        "PEM (-----BEGIN CERTIFICATE-----), DER, or PKCS#7 (.p7b/.p7c, PEM, DER or base64)"
    )


def _der_shape(data: bytes) -> tuple[str, str | None] | None:
    """Classify ``data`` as DER: ``(kind, problem)``, or ``None`` if it does not look like DER.

    ``kind`` is "certificate" or "PKCS#7"; ``problem`` is ``None`` when the outer value
    spans the data exactly, else what is wrong (truncated, trailing bytes).
    """
    if not data or data[0] != _der.SEQUENCE:
        return None
    try:
        _tag, inner, _length = _der.read_header(data, 0, len(data))
        inner_tag, oid_start, oid_length = _der.read_header(data, inner, len(data))
    except _der.DerError:
        return None
    if inner_tag == _der.SEQUENCE:
        kind = "certificate"
    elif inner_tag == _der.OBJECT_IDENTIFIER and oid_length is not None:
        if data[oid_start : oid_start + oid_length] != _SIGNED_DATA_OID:
            return None
        kind = "PKCS#7"
    else:
        return None
    try:
        outer = _der.read_tlv(data, 0, len(data))
    except _der.DerError as exc:
        return kind, f"{exc} (the data looks truncated)"
    if outer.end != len(data):
        return kind, (
            f"{len(data) - outer.end:,} bytes of trailing data after the {outer.end:,}-byte "
            "value; a DER file must hold exactly one value"
        )
    return kind, None


def _from_der(data: bytes, kind: str) -> list[bytes]:
    if kind == "certificate":
        return [data]
    return _pkcs7_certificates(data, where="the DER PKCS#7")


def _from_base64(stripped: bytes) -> list[bytes]:
    try:
        decoded = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedInput(
            f"the input looks like base64 (starting {stripped[:_SHOWN]!r}) but does not decode: "
            f"{exc}; expected base64 of a DER PKCS#7 or certificate"
        ) from exc
    shape = _der_shape(decoded)
    if shape is None:
        raise MalformedInput(
            f"the base64 input decodes to {len(decoded):,} bytes starting {decoded[:_SHOWN]!r}, "
            "which is not a DER certificate or PKCS#7"
        )
    kind, problem = shape
    if problem is not None:
        raise MalformedInput(f"the base64 {kind} is malformed: {problem}")
    return _from_der(decoded, kind)


def _from_pem(data: bytes) -> list[bytes]:
    ders: list[bytes] = []
    other_labels: list[str] = []
    open_label: bytes | None = None
    open_at = 0
    body_start = 0
    block = 0
    # Line numbers for messages, counted incrementally so that many blocks stay linear.
    line, counted_to = 1, 0
    for marker in _PEM_MARKER.finditer(data):
        which, label = marker.group(1), marker.group(2) or b""
        line += data.count(b"\n", counted_to, marker.start())
        counted_to = marker.start()
        if which == b"BEGIN":
            if open_label is not None:
                raise MalformedInput(
                    f"PEM block {block} ({_show(open_label)}) that begins on line {open_at} "
                    f"has no END line before the next BEGIN on line {line}; "
                    "the input looks truncated"
                )
            open_label, open_at, body_start = label, line, marker.end()
            block += 1
            continue
        if open_label is None:
            raise MalformedInput(
                f"line {line} has an END line ({_show(label)}) without a BEGIN line before it"
            )
        if label != open_label:
            raise MalformedInput(
                f"PEM block {block} begins as {_show(open_label)} on line {open_at} but ends "
                f"as {_show(label)} on line {line}; BEGIN and END labels must match"
            )
        body = data[body_start : marker.start()]
        open_label = None
        if label in _CERTIFICATE_LABELS or label == _TRUSTED_CERTIFICATE_LABEL:
            der = _pem_body(body, block, label, open_at)
            ders.append(_first_value(der) if label == _TRUSTED_CERTIFICATE_LABEL else der)
        elif label in _PKCS7_LABELS:
            der = _pem_body(body, block, label, open_at)
            ders.extend(_pkcs7_certificates(der, where=f"PEM block {block} ({_show(label)})"))
        else:
            # Keys, CRLs, requests: not ours to read. We only keep their label (never their
            # content, which may be a private key) to explain an input with no certificate.
            other_labels.append(_show(label))
    if open_label is not None:
        raise MalformedInput(
            f"PEM block {block} ({_show(open_label)}) that begins on line {open_at} has no "
            "END line; the input looks truncated"
        )
    if not ders and other_labels:
        raise NoCertificates(
            f"the PEM input holds no certificate, only {', '.join(other_labels)}; "
            "expected CERTIFICATE or PKCS7 blocks"
        )
    if not ders and block == 0:
        raise NoCertificates(
            "the input mentions PEM armour but has no complete -----BEGIN ...----- line"
        )
    return ders


def _pem_body(body: bytes, block: int, label: bytes, line: int) -> bytes:
    compact = _WHITESPACE.sub(b"", body)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedInput(
            f"PEM block {block} ({_show(label)}) that begins on line {line} is not valid "
            f"base64: {exc}"
        ) from exc


def _first_value(der: bytes) -> bytes:
    """The certificate at the front of an OpenSSL TRUSTED CERTIFICATE (cert + aux)."""
    try:
        return der[: _der.read_tlv(der, 0, len(der)).end]
    except _der.DerError:
        return der  # let cryptography describe what is wrong with it


def _pkcs7_certificates(der: bytes, *, where: str) -> list[bytes]:
    """The DER of each certificate in a PKCS#7 SignedData (RFC 2315 §9.1, RFC 5652 §5.1)."""
    try:
        content_info = _der.read_tlv(der, 0, len(der))
        if content_info.end != len(der):
            raise _der.DerError(f"{len(der) - content_info.end:,} bytes of trailing data")
        parts = list(_der.children(der, content_info))
        if not parts or parts[0].tag != _der.OBJECT_IDENTIFIER:
            raise _der.DerError("the ContentInfo does not start with a content type")
        if der[parts[0].content_start : parts[0].content_end] != _SIGNED_DATA_OID:
            raise _der.DerError("its content type is not signedData (1.2.840.113549.1.7.2)")
        if len(parts) < 2:
            return []  # a content type with no content: nothing to carry certificates
        if parts[1].tag != _der.CONTEXT_0:
            raise _der.DerError("the signedData content is not an explicit [0] value")
        inner = list(_der.children(der, parts[1]))
        if len(inner) != 1 or inner[0].tag != _der.SEQUENCE:
            raise _der.DerError("the signedData content is not one SignedData SEQUENCE")
        fields = list(_der.children(der, inner[0]))
        # SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo,
        #   certificates [0] IMPLICIT OPTIONAL, crls [1] IMPLICIT OPTIONAL, signerInfos SET }
        if len(fields) < 3 or fields[0].tag != _der.INTEGER or fields[1].tag != _der.SET:
            raise _der.DerError("the SignedData does not start with version and digests")
        certificates = [f for f in fields[3:] if f.tag == _der.CONTEXT_0]
        if not certificates:
            return []
        # CertificateChoices other than a plain Certificate (extended, attribute and
        # "other" certificates, RFC 5652 §10.2.2) carry no X.509 anchor: skipped.
        return [
            der[choice.start : choice.end]
            for choice in _der.children(der, certificates[0])
            if choice.tag == _der.SEQUENCE
        ]
    except _der.DerError as exc:
        raise MalformedInput(f"{where} is not a valid PKCS#7 SignedData: {exc}") from exc


def _parse_one(index: int, der: bytes) -> ParsedCertificate:
    """Parse one certificate, and touch every lazily parsed part so later use cannot fail."""
    try:
        with warnings.catch_warnings():
            # cryptography warns on non-positive serial numbers (RFC 5280 §4.1.2.2), which
            # real roots carry (Go Daddy Class 2 has serial 0), whenever it parses them.
            # ``assess`` reports it as a warning instead; a future cryptography that raises
            # lands in ``except`` and the certificate gets a status, not a crash.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            certificate = x509.load_der_x509_certificate(der)
            certificate.serial_number  # noqa: B018 - parsed lazily
            certificate.extensions  # noqa: B018 - duplicate or malformed extensions raise
            certificate.public_key()
            certificate.subject.rfc4514_string()
            certificate.issuer.rfc4514_string()
            certificate.not_valid_before_utc  # noqa: B018
            certificate.not_valid_after_utc  # noqa: B018
    except UnsupportedAlgorithm as exc:
        return ParsedCertificate(index, der, None, f"unsupported algorithm: {exc}")
    except (ValueError, TypeError, x509.InvalidVersion) as exc:
        return ParsedCertificate(index, der, None, f"not a valid X.509 certificate: {exc}")
    return ParsedCertificate(index, der, certificate, None)


def _kind(data: bytes) -> str:
    """What an unrecognised input looks like, for an error (see ``_SHOWN``).

    Text is never quoted: a file uploaded by mistake may be a password or key file, and
    error messages reach logs. Binary input shows only its magic number.
    """
    if _TEXT.fullmatch(data[:_SNIFF]):
        return "text"
    return f"binary data starting {data[:_SHOWN]!r}"


def _show(label: bytes) -> str:
    return repr(label.decode("ascii", "replace"))
