"""Edge zones: who may talk SIP to the edge, and how the edge recognises them.

Two kinds, after Expressway-E's:

- a **DNS zone** is the cloud: its peers connect to the cloud listener (5062) with a client
  certificate, and the edge dials out to ``peer_address`` when it must reach the cloud and
  no inbound connection is up. "TLS verify mode" is always on: a DNS zone without a TLS
  verify subject name cannot be built.
- a **traversal server zone** is the connector: it dials out to the edge's traversal
  listener from behind the premises firewall and keeps that connection up; the edge accepts
  it only for ``subject_name``.

A zone is a frozen value validated on construction: its subject name goes through
``core.tlsverify.NamePolicy`` (IDNA A-labels, no wildcard, no NUL), so a zone that exists
can always build the policy its connections are judged by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from hybridge.core.hostport import is_ip_or_host_name, join_host_port, split_host_port
from hybridge.core.tlsverify import CnRule, InvalidExpectedName, NamePolicy
from hybridge.edge.errors import InvalidZone

#: The seed's DNS zone subject name: Webex's call service (Expressway's documented value).
PRESETS: dict[str, str] = {"webex": "callservice.webex.com"}
#: Expressway-E's default SIP TLS port towards the cloud (the seed's port 5062).
DEFAULT_CLOUD_PORT = 5062
#: Expressway's default traversal-zone SIP port (7001 for the first traversal zone).
DEFAULT_TRAVERSAL_PORT = 7001

_ZONE_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")


class ZoneKind(StrEnum):
    """What a zone stands for."""

    DNS = "dns"
    TRAVERSAL = "traversal"


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """Where the edge dials a DNS zone's peer: a host name or IP literal and a TCP port."""

    host: str
    port: int

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise InvalidZone(f"peer port {self.port!r} is not 1..65535")
        if not is_ip_or_host_name(self.host):
            raise InvalidZone(
                f"peer host {self.host!r} is neither an IP address nor a DNS host name"
            )

    @classmethod
    def parse(cls, text: str) -> PeerAddress:
        """``host:port``, ``[v6]:port`` or ``host`` (port 5062) as a value.

        Raises ``InvalidZone`` for anything else.
        """
        text = text.strip()
        split = split_host_port(text, DEFAULT_CLOUD_PORT)
        if split is None:
            raise InvalidZone(f"peer address {text!r} is not '[ipv6]:port'")
        if split.port is None:
            raise InvalidZone(
                f"peer address {text!r} has port {split.port_text!r}; give 'host:port', e.g. "
                "'callservice.example.com:5062'"
            )
        return cls(split.host, split.port)

    def __str__(self) -> str:
        return join_host_port(self.host, self.port)


@dataclass(frozen=True, slots=True)
class Zone:
    """One zone of the edge.

    ``subject_name`` is normalised by ``NamePolicy`` (lower case, A-labels). ``cn_rule`` and
    ``wildcards`` are the name-rule switches of ``core.tlsverify``; ``peer`` is the outbound
    address of a DNS zone (None for a traversal zone, and optional for a DNS zone that only
    receives). Raises ``InvalidZone`` on any invalid field.
    """

    name: str
    kind: ZoneKind
    subject_name: str
    cn_rule: CnRule = CnRule.WHEN_NO_SAN
    wildcards: bool = False
    peer: PeerAddress | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or _ZONE_NAME.fullmatch(self.name) is None:
            raise InvalidZone(
                f"zone name {self.name!r} is invalid; use 1-63 lower-case letters, digits "
                "and hyphens, starting with a letter (e.g. 'webex-cloud')"
            )
        try:
            kind = ZoneKind(self.kind)
        except ValueError:
            raise InvalidZone(
                f"zone kind {self.kind!r} is unknown; expected 'dns' or 'traversal'"
            ) from None
        try:
            cn_rule = CnRule(self.cn_rule)
        except ValueError:
            raise InvalidZone(
                f"CN rule {self.cn_rule!r} is unknown; expected 'when_no_san' or 'never'"
            ) from None
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "cn_rule", cn_rule)
        try:
            policy = NamePolicy(self.subject_name, cn=cn_rule, wildcards=self.wildcards)
        except InvalidExpectedName as exc:
            raise InvalidZone(f"TLS verify subject name: {exc}") from exc
        object.__setattr__(self, "subject_name", policy.expected)
        if kind is ZoneKind.TRAVERSAL and self.peer is not None:
            raise InvalidZone(
                f"traversal zone {self.name!r} has a peer address; the connector dials the "
                "edge, so a traversal zone has none"
            )

    def policy(self) -> NamePolicy:
        """The name rule this zone's peers are judged by."""
        return NamePolicy(self.subject_name, cn=self.cn_rule, wildcards=self.wildcards)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping of the zone."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "tls_verify_mode": "on",
            "subject_name": self.subject_name,
            "cn_rule": self.cn_rule.value,
            "wildcards": self.wildcards,
            "peer": str(self.peer) if self.peer is not None else None,
        }


def subject_name_from(value: str | None, preset: str | None) -> str:
    """The subject name given directly or by preset name; exactly one must be given.

    Raises ``InvalidZone`` when both or neither are given, or the preset is unknown.
    """
    if (value is None) == (preset is None):
        raise InvalidZone(
            "give either a subject name or a preset "
            f"({', '.join(f'{k}={v}' for k, v in PRESETS.items())}), not both or neither"
        )
    if preset is not None:
        try:
            return PRESETS[preset.lower()]
        except KeyError:
            raise InvalidZone(
                f"preset {preset!r} is unknown; known presets: {', '.join(sorted(PRESETS))}"
            ) from None
    assert value is not None
    return value
