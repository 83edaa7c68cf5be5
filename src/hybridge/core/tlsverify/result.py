"""The verdict on a peer: ``Accepted`` or ``Refused``, plain frozen values.

Security checks return a success or a failure with a reason, and the caller decides what
to log and whether to close the connection (warehouse's habit). Neither value holds
anything secret: certificates are public, and names are rendered with ``ascii()``-style
escapes so a NUL or a homograph in a hostile certificate is visible, not interpreted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class IdentitySource(StrEnum):
    """Where the identity that matched the expected name was found in the certificate."""

    SAN_DNS = "san_dns"
    SAN_URI = "san_uri"
    SAN_IP = "san_ip"
    CN = "cn"


class RefusalReason(StrEnum):
    """Why a peer was refused; stable codes for logs, metrics and ``--json``."""

    #: No path from the peer's certificate to an anchor usable for this connection.
    UNTRUSTED_ISSUER = "untrusted_issuer"
    #: The only path found ends at a bootstrap anchor, and this connection is not registration.
    BOOTSTRAP_ONLY = "bootstrap_only"
    #: A certificate of the path had expired at the validation time.
    EXPIRED = "expired"
    #: A certificate of the path was not yet valid at the validation time.
    NOT_YET_VALID = "not_yet_valid"
    #: Key usage or extended key usage does not allow this role (codeSigning-only, ...).
    BAD_KEY_USAGE = "bad_key_usage"
    #: The path is valid but no identity in the certificate matches the expected name.
    NAME_MISMATCH = "name_mismatch"
    #: Too many intermediates sent, or the path is deeper than allowed.
    CHAIN_TOO_LONG = "chain_too_long"
    #: A key in the path is too weak (RSA below 2048 bits, DSA).
    WEAK_KEY = "weak_key"
    #: A CA's name constraints exclude the peer's names.
    NAME_CONSTRAINTS = "name_constraints"
    #: The path breaks another RFC 5280 / CA/B Forum profile rule (basic constraints, ...).
    INVALID_CHAIN = "invalid_chain"
    #: The certificates could not be parsed.
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Accepted:
    """The peer is trusted for this connection.

    ``identity`` is the certificate's name that matched (normalised), ``source`` where it
    was found; ``chain_sha256`` holds the SHA-256 fingerprints (hex) of the validated path,
    leaf first, anchor last. ``via_bootstrap`` is true when the anchor is a bootstrap
    anchor (allowed only for registration, and logged by the caller with its fingerprint).
    """

    identity: str
    source: IdentitySource
    chain_sha256: tuple[str, ...]
    via_bootstrap: bool = False
    accepted: Literal[True] = True

    @property
    def cn_decided(self) -> bool:
        """True when the legacy subject CN, not a SAN, decided the match (worth a log line)."""
        return self.source is IdentitySource.CN

    @property
    def anchor_sha256(self) -> str:
        """The fingerprint of the anchor the path ends at."""
        return self.chain_sha256[-1]

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping of this verdict."""
        return {
            "accepted": True,
            "identity": self.identity,
            "source": self.source.value,
            "cn_decided": self.cn_decided,
            "via_bootstrap": self.via_bootstrap,
            "chain_sha256": list(self.chain_sha256),
        }


@dataclass(frozen=True, slots=True)
class Refused:
    """The peer is not trusted: a reason code, one line for the admin, and the names seen.

    ``presented_names`` lists the identities the leaf carries, each prefixed by where it was
    found (``dns:``, ``uri:``, ``ip:``, ``cn:``), escaped; it is filled whenever the leaf
    could be read, so a name mismatch always says what the certificate *is* for.
    """

    reason: RefusalReason
    explanation: str
    presented_names: tuple[str, ...] = ()
    accepted: Literal[False] = False

    def __post_init__(self) -> None:
        # One line: the explanation goes to logs and to a terminal as is.
        if "\n" in self.explanation or "\r" in self.explanation:
            object.__setattr__(self, "explanation", " ".join(self.explanation.split()))

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping of this verdict."""
        return {
            "accepted": False,
            "reason": self.reason.value,
            "explanation": self.explanation,
            "presented_names": list(self.presented_names),
        }


Verdict = Accepted | Refused


def describe_presented_names(names: Sequence[str]) -> str:
    """``Refused.presented_names`` in the admin's words: ``SAN DNS:a and CN b``.

    ``("dns:a", "uri:sip:b", "cn:c")`` becomes ``SAN DNS:a, URI:sip:b and CN c`` (the
    vocabulary of Expressway's "CN or SAN" setting); no names at all, ``no name at all``.
    The names are already escaped by the verifier, so the result is one safe line.
    """
    sans: list[str] = []
    cns: list[str] = []
    for name in names:
        kind, _, value = name.partition(":")
        if kind == "cn":
            cns.append(value)
        else:
            sans.append(f"{kind.upper()}:{value}")
    parts = ([f"SAN {', '.join(sans)}"] if sans else []) + ([f"CN {', '.join(cns)}"] if cns else [])
    return " and ".join(parts) if parts else "no name at all"
