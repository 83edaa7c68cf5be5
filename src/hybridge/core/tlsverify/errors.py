"""Exceptions of ``core.tlsverify``: bad *input* to the verifier, never a refused peer.

A peer whose certificate fails a check is not an exception: it is a ``Refused`` value
(``result.py``) that the caller logs and acts on. Exceptions here mean the caller handed us
something unusable — an expected name that is not a DNS name, a file that holds no
certificate, a naive time.

    VerificationError            (HybridgeError, exit status 2)
     ├── InvalidExpectedName     the configured name cannot be a DNS name or IP address
     ├── ChainParseError         the bytes hold no certificate, or a broken one
     └── InvalidVerifyInput      anything else the caller got wrong (naive time, bad bound)
"""

from __future__ import annotations

from hybridge.core.errors import HybridgeError


class VerificationError(HybridgeError):
    """The root of ``core.tlsverify``'s exceptions: the verifier was given bad input."""


class InvalidExpectedName(VerificationError):
    """The expected peer name is not a usable DNS name (or IP address)."""


class ChainParseError(VerificationError):
    """A certificate chain could not be read from the bytes given."""


class InvalidVerifyInput(VerificationError):
    """A parameter of the verification is unusable (naive time, a bound below 1, ...)."""
