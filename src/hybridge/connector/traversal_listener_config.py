"""The premises-side listener's settings: where the connector accepts the premises server.

A PBX or proxy (Kamailio, ...) that places calls to the cloud dials its trunk address
itself; ``PremisesListener`` is that address on the connector: an IP literal to bind, a
port, a transport (``tcp`` or ``tls``), the networks a connection may come from and, over
TLS, whether the premises server must present a client certificate (checked against the
platform trust store and the premises TLS name, ``PremisesServer.name``).

An empty allow-list means "the premises server's own addresses": the service resolves the
premises URI's host when it starts the listener.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from hybridge.connector.traversal_errors import TraversalConfigInvalid

#: RFC 3261 §19.1.2 default ports: 5060 for TCP, 5061 for TLS.
_DEFAULT_PORTS = {"tcp": 5060, "tls": 5061}
#: A list longer than this is a mistake (a PBX cluster has a handful of addresses).
MAX_ALLOW_ENTRIES = 32
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(text: str) -> IpNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise TraversalConfigInvalid(
            f"listener allow entry {text!r} is not an IP address or network; give e.g. "
            "'192.0.2.10' or '192.0.2.0/28'"
        ) from None


@dataclass(frozen=True, slots=True)
class PremisesListener:
    """Where and how the connector accepts the premises server's own connections.

    Raises ``TraversalConfigInvalid`` on construction for a host that is not an IP literal,
    a port outside 1..65535, another transport than tcp/tls, a malformed allow entry, or
    client certificates required over TCP.
    """

    host: str
    port: int
    transport: str = "tcp"
    allow: tuple[str, ...] = ()
    require_client_cert: bool = False

    def __post_init__(self) -> None:
        try:
            # An IP literal only: a name could resolve to addresses this host does not have.
            object.__setattr__(self, "host", str(ipaddress.ip_address(self.host)))
        except ValueError:
            raise TraversalConfigInvalid(
                f"listener address {self.host!r} is not an IP address; give the address to "
                "bind, e.g. '0.0.0.0:5060' or '[::]:5061'"
            ) from None
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 < self.port < 65536
        ):
            raise TraversalConfigInvalid(f"listener port {self.port!r} is not 1..65535")
        if self.transport not in _DEFAULT_PORTS:
            raise TraversalConfigInvalid(
                f"listener transport {self.transport!r} is not supported; use 'tcp' or 'tls'"
            )
        if len(self.allow) > MAX_ALLOW_ENTRIES:
            raise TraversalConfigInvalid(
                f"listener allow-list has {len(self.allow)} entries; at most {MAX_ALLOW_ENTRIES}"
            )
        object.__setattr__(self, "allow", tuple(str(_network(a)) for a in self.allow))
        if self.require_client_cert and self.transport != "tls":
            raise TraversalConfigInvalid(
                "client certificates can be required only on a TLS listener; set the "
                "listener transport to 'tls' or do not require them"
            )

    @classmethod
    def parse(
        cls,
        address: str,
        transport: str = "tcp",
        allow: str | None = None,
        *,
        require_client_cert: bool = False,
    ) -> PremisesListener:
        """``ip:port``, ``[v6]:port`` or ``ip`` (5060/5061) plus a comma-separated allow-list.

        Raises ``TraversalConfigInvalid``.
        """
        # Imported here: traversal_config imports this module for its listener field.
        from hybridge.connector.traversal_config import _split_hostport

        kind = transport.strip().lower()
        default = _DEFAULT_PORTS.get(kind, 5060)
        host, port = _split_hostport(address.strip(), default, "listener address")
        entries = tuple(e for e in (allow or "").replace(" ", ",").split(",") if e.strip())
        return cls(host, port, kind, entries, require_client_cert)

    @property
    def networks(self) -> tuple[IpNetwork, ...]:
        """The allow-list as networks (empty: the premises server's addresses decide)."""
        return tuple(ipaddress.ip_network(a) for a in self.allow)

    @property
    def wildcard(self) -> bool:
        """True when bound to every address (0.0.0.0 or ::)."""
        return ipaddress.ip_address(self.host).is_unspecified

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def public_view(self) -> dict[str, Any]:
        """What pages, the API and the CLI show."""
        return {
            "address": str(self),
            "transport": self.transport,
            "allow": list(self.allow),
            "require_client_cert": self.require_client_cert,
        }


def listener_from_fields(
    address: str | None,
    transport: str | None = None,
    allow: str | None = None,
    require_client_cert: bool = False,
) -> PremisesListener | None:
    """The listener the CLI options, form or JSON fields describe, or None (no ``address``).

    Raises ``TraversalConfigInvalid`` for malformed fields, or listener options given
    without a listener address.
    """
    if not (address or "").strip():
        if (transport or "").strip() or (allow or "").strip() or require_client_cert:
            raise TraversalConfigInvalid(
                "listener options were given without a listener address; add e.g. "
                "--listen 0.0.0.0:5060 (field 'listen')"
            )
        return None
    return PremisesListener.parse(
        str(address),
        (transport or "tcp").strip() or "tcp",
        allow,
        require_client_cert=require_client_cert,
    )
