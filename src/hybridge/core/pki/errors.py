"""Errors of ``hybridge.core.pki``: problems with a whole input.

    PkiError                 root of this package (a HybridgeError)
     ├── InputTooLarge       over the byte limit; refused before any parsing
     ├── NoCertificates      empty, binary garbage, PEM with no certificate block,
     │                       PKCS#7 that holds no certificate
     └── MalformedInput      truncated PEM, mismatched armour, bad base64,
                             DER with trailing or missing bytes, broken PKCS#7 structure

A single certificate that does not parse inside a well-formed container is *not* an error
here: ``load_certificates`` returns it with its reason so that callers can list every bad
certificate by index.
"""

from __future__ import annotations

from hybridge.core.errors import HybridgeError


class PkiError(HybridgeError):
    """Root of every error raised by ``hybridge.core.pki``."""


class InputTooLarge(PkiError):
    """The input is over the byte limit; the message names the limit."""


class NoCertificates(PkiError):
    """The input holds no certificate at all; the message says what was found instead."""


class MalformedInput(PkiError):
    """The input looks like PEM, DER or PKCS#7 but is broken; the message says where."""
