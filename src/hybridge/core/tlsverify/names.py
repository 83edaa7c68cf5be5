"""The zone name rule: which identities in a certificate may stand for the expected name.

Hand-written on purpose: cryptography's server verifier matches only SAN dNSName/iPAddress
against one name, with no way to honour a SIP URI SAN (RFC 5922 §7.1) or the legacy
subject CN that "CN or SAN" zones rely on, and no switch for wildcards. The rules below are
short, and each carries the RFC it implements.

The policy (``NamePolicy``) is a frozen value, validated once per zone or connection:

- the expected name is normalised on construction: IDNA A-labels (UTS #46 mapping for a
  Unicode input), lower case, one trailing dot removed; anything that cannot be a DNS name
  (NUL, space, ``@``, ``*``, an empty or over-long label) is refused there and then;
- ``cn``: ``"when_no_san"`` (default) or ``"never"``;
- ``wildcards``: off by default.

Known limitation: without a Public Suffix List, a wildcard is refused only when the labels
after it are fewer than two (``*.com``); ``*.co.uk`` is not recognised as a public-suffix
wildcard. Public CAs may not issue such certificates (CA/B Forum BR §3.2.2.6), wildcards are
opt-in per zone, and the zone's anchors are chosen by its admin; a PSL dependency was judged
not worth its update burden for that residual case.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import idna
from cryptography import x509
from cryptography.x509.oid import NameOID

from hybridge.core.tlsverify.errors import InvalidExpectedName
from hybridge.core.tlsverify.result import IdentitySource

# RFC 1035 §2.3.1 / RFC 5890 §2.3.1: a label is letters, digits and hyphens, 1-63 octets,
# not starting or ending with a hyphen. No underscore: host names never carry one.
_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# RFC 1035 §2.3.4: 255 octets on the wire, 253 characters in text form.
_MAX_NAME = 253

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CnRule(StrEnum):
    """When the subject's common name may stand for the peer's identity."""

    #: RFC 9525 §6.1: CN-IDs are not used at all.
    NEVER = "never"
    #: The certificate's CN counts only when it has no DNS or URI SAN at all: the safe
    #: reading of Expressway's "CN or SAN" (RFC 6125 §6.4.4 allowed this fallback).
    WHEN_NO_SAN = "when_no_san"


def _valid_a_labels(name: str) -> bool:
    """True when ``name`` (lower-case ASCII, no trailing dot) is a well-formed host name."""
    if not name or len(name) > _MAX_NAME:
        return False
    for label in name.split("."):
        if not _LDH_LABEL.match(label):
            return False
        # RFC 5891 §5.4: an A-label must decode to a valid U-label; a broken "xn--" label
        # could otherwise be compared as an opaque string and match nothing meaningful.
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except idna.IDNAError:
                return False
    return True


def normalise_presented(name: str) -> str | None:
    """The comparable form of a DNS name found in a certificate, or None if it is unusable.

    RFC 9525 §6.3 / RFC 4343: case-insensitive, so lower-cased; RFC 1034 §3.1: a trailing
    dot (absolute form) names the same host, so one is removed. A name with any character
    that cannot be in a host name — NUL (the classic "good.com\\0.evil.com" attack),
    space, ``@``, non-ASCII (a dNSName is an IA5String of A-labels, RFC 5280 §4.2.1.6) —
    is never usable. A leading ``*.`` is kept for the wildcard rule.
    """
    if not name.isascii():
        return None
    lowered = name.lower()
    if lowered.endswith("."):
        lowered = lowered[:-1]
    if lowered.startswith("*."):
        rest = lowered[2:]
        return lowered if _valid_a_labels(rest) else None
    return lowered if _valid_a_labels(lowered) else None


def _normalise_expected(value: str) -> str | IpAddress:
    if not isinstance(value, str) or not value:
        raise InvalidExpectedName(
            f"expected peer name {value!r} is empty; give a DNS name such as "
            "'callservice.example.com' or an IP address"
        )
    try:
        return ipaddress.ip_address(value.strip("[]") if value.startswith("[") else value)
    except ValueError:
        pass
    candidate = value[:-1] if value.endswith(".") else value
    if candidate.isascii():
        candidate = candidate.lower()
    else:
        # RFC 5891 §4 / UTS #46: a Unicode name is mapped and converted to A-labels once,
        # here, so every later comparison is between A-labels (no homograph can pass as
        # the ASCII name it resembles: "аpple.com" with Cyrillic а is xn--pple-43d.com).
        try:
            candidate = idna.encode(candidate, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise InvalidExpectedName(
                f"expected peer name {value!r} is not a valid internationalised domain "
                f"name ({exc}); give its A-label form (xn--...) or a valid Unicode name"
            ) from exc
    if not _valid_a_labels(candidate):
        raise InvalidExpectedName(
            f"expected peer name {value!r} is not a DNS host name: labels of letters, "
            "digits and inner hyphens, 1-63 characters each, 253 in all, no wildcard "
            "(e.g. 'callservice.example.com')"
        )
    return candidate


@dataclass(frozen=True, slots=True)
class PresentedIdentities:
    """The identities a leaf certificate carries, as the name rule sees them."""

    dns: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    ips: tuple[IpAddress, ...] = ()
    common_names: tuple[str, ...] = ()

    def describe(self) -> tuple[str, ...]:
        """Every identity, prefixed by its kind and escaped for a log line."""
        return tuple(
            [f"dns:{_escape(d)}" for d in self.dns]
            + [f"uri:{_escape(u)}" for u in self.uris]
            + [f"ip:{ip}" for ip in self.ips]
            + [f"cn:{_escape(c)}" for c in self.common_names]
        )


def _escape(text: str) -> str:
    # ascii() escapes NUL, controls and non-ASCII; drop its quotes so names read naturally.
    return ascii(text)[1:-1]


def presented_identities(cert: x509.Certificate) -> PresentedIdentities:
    """The SAN dNSName, URI and iPAddress entries and subject CNs of ``cert``.

    Raises cryptography's ``ValueError``, ``DuplicateExtension`` or
    ``UnsupportedGeneralNameType`` when the extensions cannot be read; the caller turns
    that into a ``malformed`` refusal.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    dns: list[str] = []
    uris: list[str] = []
    ips: list[IpAddress] = []
    if san is not None:
        # One pass with exact type tests: this runs on every connection.
        for general_name in san:
            kind = type(general_name)
            if kind is x509.DNSName:
                dns.append(general_name.value)
            elif kind is x509.UniformResourceIdentifier:
                uris.append(general_name.value)
            # An iPAddress SAN holds an address; a network appears only in name constraints.
            elif kind is x509.IPAddress and isinstance(
                general_name.value, ipaddress.IPv4Address | ipaddress.IPv6Address
            ):
                ips.append(general_name.value)
    # RFC 6125 §2.3.1 / RFC 9525 §2: only the commonName attribute (2.5.4.3) is a CN-ID;
    # a host name placed in O, OU or any other attribute is never an identity.
    cns = [
        attr.value if isinstance(attr.value, str) else ""
        for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]
    return PresentedIdentities(tuple(dns), tuple(uris), tuple(ips), tuple(cns))


def sip_uri_host(uri: str) -> str | None:
    """The host part of a ``sip:``/``sips:`` URI that may serve as a domain identity, or None.

    RFC 5922 §7.1: only a URI whose scheme is ``sip`` (``sips`` accepted too, as the zone
    rule asks) and which has *no user part* names a SIP domain; ``sip:alice@example.com``
    names a user, not the domain, and is refused. The host ends at the port, parameters or
    headers (RFC 3261 §19.1.1).
    """
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme.lower() not in ("sip", "sips"):
        return None
    if "@" in rest or not rest:
        return None
    host = re.split(r"[;?]", rest, maxsplit=1)[0]
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else None
    return host.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class NameMatch:
    """The identity that matched, and where it was found."""

    identity: str
    source: IdentitySource


@dataclass(frozen=True, slots=True)
class NamePolicy:
    """How a zone or connection decides that a certificate names the expected peer.

    Construction validates and normalises ``expected`` and raises ``InvalidExpectedName``
    when it cannot be a DNS name or IP address. ``cn`` and ``wildcards`` are the zone's
    switches (see the module docstring).
    """

    expected: str
    cn: CnRule = CnRule.WHEN_NO_SAN
    wildcards: bool = False
    _ip: IpAddress | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        normalised = _normalise_expected(self.expected)
        if isinstance(normalised, str):
            object.__setattr__(self, "expected", normalised)
        else:
            object.__setattr__(self, "expected", str(normalised))
            object.__setattr__(self, "_ip", normalised)
        object.__setattr__(self, "cn", CnRule(self.cn))

    @property
    def is_ip(self) -> bool:
        """True when the expected name is an IP address (matched against iPAddress SANs)."""
        return self._ip is not None

    def match(self, presented: PresentedIdentities) -> NameMatch | None:
        """The first identity in ``presented`` that names the expected peer, else None."""
        if self._ip is not None:
            # RFC 9525 §6.2 (IP-ID): an IP address matches an iPAddress SAN octet for octet,
            # never a DNS-ID, URI or CN that happens to spell it.
            for ip in presented.ips:
                if ip == self._ip:
                    return NameMatch(str(ip), IdentitySource.SAN_IP)
            return None
        for raw in presented.dns:
            name = normalise_presented(raw)
            if name is not None and self._dns_matches(name, allow_wildcard=self.wildcards):
                return NameMatch(name, IdentitySource.SAN_DNS)
        for raw in presented.uris:
            host = sip_uri_host(raw)
            name = normalise_presented(host) if host is not None else None
            # RFC 5922 §7.2: wildcards are never honoured in a SIP domain identity.
            if name is not None and self._dns_matches(name, allow_wildcard=False):
                return NameMatch(name, IdentitySource.SAN_URI)
        # RFC 9525 §6.1 drops CN-IDs; RFC 6125 §6.4.4 allowed the CN only when the
        # certificate has no DNS-ID (nor URI-ID): that, or nothing, is our CN rule.
        # Several CNs are ambiguous (RFC 6125 §6.4.4 leaves the choice open): use none.
        if (
            self.cn is CnRule.WHEN_NO_SAN
            and not presented.dns
            and not presented.uris
            and len(presented.common_names) == 1
        ):
            name = normalise_presented(presented.common_names[0])
            # A CN-ID is never a wildcard: the legacy fallback gets no extra latitude.
            if name is not None and self._dns_matches(name, allow_wildcard=False):
                return NameMatch(name, IdentitySource.CN)
        return None

    def _dns_matches(self, presented: str, *, allow_wildcard: bool) -> bool:
        # RFC 9525 §6.3: exact, case-insensitive comparison of A-labels; no suffix match.
        if presented == self.expected:
            return True
        if not (allow_wildcard and presented.startswith("*.")):
            return False
        # RFC 9525 §6.3: "*" only as the whole left-most label, standing for exactly one
        # label ("f*.example.com" and "a.*.example.com" were refused as unusable earlier).
        suffix = presented[2:]
        # Never in a public-suffix position: at least two labels must follow the "*"
        # (refuses "*.com"; see the module docstring for the PSL limitation).
        if suffix.count(".") < 1:
            return False
        first, sep, rest = self.expected.partition(".")
        # RFC 6125 §7.2 / RFC 9525 §6.3: a wildcard never stands for an IDN A-label.
        return bool(sep) and rest == suffix and not first.startswith("xn--")


def describe_names(names: Iterable[str]) -> str:
    """A one-line list of presented names for an explanation, or a note that there are none."""
    listed = list(names)
    return ", ".join(listed) if listed else "no DNS, URI, IP or CN identity at all"
