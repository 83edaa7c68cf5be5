"""The traversal client's configuration: the value, its table, the store that keeps it.

``TraversalConfig`` holds what the connector admin sets: where the edge's traversal
listener is (``EdgeAddress``), the name the edge's certificate must carry (``edge_name``,
checked by ``core.tlsverify.NamePolicy``), the premises SIP server (``PremisesServer``,
written as a SIP URI such as ``sip:pbx.example.com:5061;transport=tls``), the keep-alive
interval and, optionally, a dedicated traversal certificate (public, in the row).

The dedicated certificate's private key is a vault secret (purpose :data:`KEY_PURPOSE`,
record :data:`KEY_RECORD`), AES-256-GCM under the master key kept apart from this database
(DESIGN.md §3 invariant 5), like the registration key. Without a dedicated certificate the
client presents the registration's client certificate (``connector.credentials``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from hybridge.connector.traversal_errors import TraversalConfigInvalid
from hybridge.connector.traversal_listener_config import PremisesListener
from hybridge.core.hostport import is_ip_or_host_name, split_host_port
from hybridge.core.tlsverify import InvalidExpectedName, NamePolicy
from hybridge.storage.db import Database
from hybridge.vault import Secret, Vault
from hybridge.vault.models import UtcDateTime
from hybridge.web.clock import Clock, system_clock

KEY_PURPOSE = "connector.traversal_key"
KEY_RECORD = "traversal"
#: Expressway's first traversal zone listens on 7001; the edge's default too.
DEFAULT_EDGE_PORT = 7001
#: RFC 3261 §19.1.2 default ports: 5060 for TCP, 5061 for TLS.
DEFAULT_SIP_PORTS = {"tcp": 5060, "tls": 5061}
#: Seconds between CRLF keep-alives on the traversal connection. RFC 5626 §4.4.1
#: recommends 95-120 s for connection-oriented flows; firewalls in front of premises often
#: drop idle TCP state sooner, and Expressway's traversal keep-alive defaults to 30 s.
DEFAULT_KEEPALIVE = 30.0
_KEEPALIVE_RANGE = (0.2, 3600.0)
_MAX_PEM = 64 * 1024

metadata = sa.MetaData()

traversal_table = sa.Table(
    "connector_traversal",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("edge_host", sa.String(253), nullable=False),
    sa.Column("edge_port", sa.Integer, nullable=False),
    sa.Column("edge_name", sa.String(253), nullable=False),
    sa.Column("premises_uri", sa.String(600), nullable=False),
    sa.Column("premises_name", sa.String(253), nullable=False),
    sa.Column("keepalive_interval", sa.Float, nullable=False),
    sa.Column("certificate_pem", sa.Text, nullable=True),
    # The premises-side listener (migration 0009): all NULL when there is none.
    sa.Column("listen_host", sa.String(45), nullable=True),
    sa.Column("listen_port", sa.Integer, nullable=True),
    sa.Column("listen_transport", sa.String(3), nullable=True),
    sa.Column("listen_allow", sa.Text, nullable=True),
    sa.Column("listen_require_client_cert", sa.Boolean, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)


def _check_host(host: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not is_ip_or_host_name(host):
        raise TraversalConfigInvalid(
            f"{what} host {host!r} is neither an IP address nor a DNS host name"
        )
    return host.rstrip(".").lower()


def _check_port(port: int, what: str) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise TraversalConfigInvalid(f"{what} port {port!r} is not 1..65535")
    return port


def _split_hostport(text: str, default_port: int, what: str) -> tuple[str, int]:
    if not text.startswith("[") and text.count(":") > 1:
        raise TraversalConfigInvalid(f"{what} {text!r}: write an IPv6 address as '[addr]:port'")
    split = split_host_port(text, default_port)
    if split is None:
        raise TraversalConfigInvalid(f"{what} {text!r} is not '[ipv6]:port'")
    if split.port is None:
        raise TraversalConfigInvalid(
            f"{what} {text!r} has port {split.port_text!r}; give 'host:port'"
        )
    return split.host, split.port


@dataclass(frozen=True, slots=True)
class EdgeAddress:
    """The edge's traversal listener: host name or IP literal, and TCP port."""

    host: str
    port: int = DEFAULT_EDGE_PORT

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", _check_host(self.host, "edge"))
        _check_port(self.port, "edge")

    @classmethod
    def parse(cls, text: str) -> EdgeAddress:
        """``host:port``, ``[v6]:port`` or ``host`` (port 7001) as a value.

        Raises ``TraversalConfigInvalid``.
        """
        host, port = _split_hostport(text.strip(), DEFAULT_EDGE_PORT, "edge address")
        return cls(host, port)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PremisesServer:
    """The premises SIP server the traversal client relays to, over TCP or TLS.

    ``name`` is what a TLS server's certificate must carry (default: ``host``); it is
    unused over TCP. Raises ``TraversalConfigInvalid``.
    """

    host: str
    port: int
    transport: str = "tcp"
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", _check_host(self.host, "premises"))
        _check_port(self.port, "premises")
        if self.transport not in DEFAULT_SIP_PORTS:
            raise TraversalConfigInvalid(
                f"premises transport {self.transport!r} is not supported; use 'tcp' or 'tls' "
                "(the relay needs a stream: RFC 3261 §18.3 framing)"
            )
        name = self.name or self.host
        try:
            object.__setattr__(self, "name", NamePolicy(name).expected)
        except InvalidExpectedName as exc:
            raise TraversalConfigInvalid(f"premises TLS name {name!r}: {exc}") from exc

    @classmethod
    def parse(cls, uri: str, name: str | None = None) -> PremisesServer:
        """``sip:host[:port][;transport=tcp|tls]`` (or ``sips:``, meaning TLS) as a value.

        Raises ``TraversalConfigInvalid`` for any other form (a user part, other params).
        """
        text = uri.strip()
        scheme, sep, rest = text.partition(":")
        if not sep or scheme.lower() not in ("sip", "sips"):
            raise TraversalConfigInvalid(
                f"premises URI {uri!r} is not a SIP URI; give e.g. "
                "'sip:pbx.example.com:5061;transport=tls'"
            )
        if "@" in rest:
            raise TraversalConfigInvalid(
                f"premises URI {uri!r} has a user part; give the server only, e.g. "
                "'sip:pbx.example.com;transport=tcp'"
            )
        hostport, *params = rest.split(";")
        transport = "tls" if scheme.lower() == "sips" else "tcp"
        for param in params:
            key, _, value = param.partition("=")
            if key.lower() != "transport" or value.lower() not in DEFAULT_SIP_PORTS:
                raise TraversalConfigInvalid(
                    f"premises URI {uri!r} has parameter {param!r}; only transport=tcp or "
                    "transport=tls is accepted"
                )
            if scheme.lower() == "sips" and value.lower() != "tls":
                raise TraversalConfigInvalid(f"premises URI {uri!r}: a sips: URI needs TLS")
            transport = value.lower()
        host, port = _split_hostport(hostport, DEFAULT_SIP_PORTS[transport], "premises address")
        return cls(host, port, transport, name or "")

    @property
    def uri(self) -> str:
        """The canonical ``sip:host:port;transport=...`` form."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sip:{host}:{self.port};transport={self.transport}"


def load_certificate_chain(pem: str | bytes) -> tuple[x509.Certificate, ...]:
    """The certificates of a PEM chain, leaf first. Raises ``TraversalConfigInvalid``."""
    data = pem.encode() if isinstance(pem, str) else pem
    if len(data) > _MAX_PEM:
        raise TraversalConfigInvalid(
            f"the certificate file is {len(data)} bytes; at most {_MAX_PEM} are accepted"
        )
    try:
        chain = tuple(x509.load_pem_x509_certificates(data))
    except ValueError as exc:
        raise TraversalConfigInvalid(
            f"the traversal certificate is not a PEM certificate chain: {exc}"
        ) from exc
    return chain


def load_private_key(pem: Secret) -> PrivateKeyTypes:
    """The private key in ``pem`` (unencrypted PEM). Raises ``TraversalConfigInvalid``.

    The message never quotes the key's bytes.
    """
    try:
        return serialization.load_pem_private_key(pem.reveal(), password=None)
    except (ValueError, TypeError) as exc:
        raise TraversalConfigInvalid(
            "the traversal key is not an unencrypted PEM private key "
            f"({exc.__class__.__name__}); give the key of the traversal certificate"
        ) from None


def check_key_matches(certificate: x509.Certificate, key: Secret) -> None:
    """Raise ``TraversalConfigInvalid`` unless ``key`` is the private key of ``certificate``."""
    private = load_private_key(key)
    public_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cert_der = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public_der != cert_der:
        raise TraversalConfigInvalid(
            "the traversal key does not belong to the traversal certificate "
            f"({certificate.subject.rfc4514_string()!r}); give the matching key"
        )


@dataclass(frozen=True, slots=True)
class TraversalConfig:
    """What the traversal client connects to and how. Raises ``TraversalConfigInvalid``."""

    edge: EdgeAddress
    edge_name: str
    premises: PremisesServer
    keepalive_interval: float = DEFAULT_KEEPALIVE
    certificate_pem: str | None = None
    #: Where the premises server may dial the connector itself (None: it may not).
    listener: PremisesListener | None = None

    def __post_init__(self) -> None:
        try:
            # The edge's certificate is judged by this name (DESIGN §3.4 rules: exact,
            # case-insensitive, IDNA A-labels, no wildcard on our side).
            object.__setattr__(self, "edge_name", NamePolicy(self.edge_name).expected)
        except InvalidExpectedName as exc:
            raise TraversalConfigInvalid(f"edge name {self.edge_name!r}: {exc}") from exc
        low, high = _KEEPALIVE_RANGE
        interval = self.keepalive_interval
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise TraversalConfigInvalid(f"keep-alive interval {interval!r} is not a number")
        if not low <= interval <= high:
            raise TraversalConfigInvalid(
                f"keep-alive interval {interval!r} s is outside {low:g}..{high:g} s"
            )
        object.__setattr__(self, "keepalive_interval", float(interval))
        if self.certificate_pem is not None:
            chain = load_certificate_chain(self.certificate_pem)
            if not chain:
                raise TraversalConfigInvalid("the traversal certificate file holds no certificate")

    @property
    def leaf(self) -> x509.Certificate | None:
        """The dedicated traversal certificate, or None (the registration's is used)."""
        if self.certificate_pem is None:
            return None
        return load_certificate_chain(self.certificate_pem)[0]

    def public_view(self) -> dict[str, Any]:
        """What pages, the API and the CLI show (no key: it stays in the vault)."""
        leaf = self.leaf
        return {
            "edge": str(self.edge),
            "edge_name": self.edge_name,
            "premises": self.premises.uri,
            "premises_name": self.premises.name,
            "keepalive_interval": self.keepalive_interval,
            "listener": None if self.listener is None else self.listener.public_view(),
            "certificate": None
            if leaf is None
            else {
                "subject": leaf.subject.rfc4514_string(),
                "not_after": leaf.not_valid_after_utc.isoformat(),
                "source": "dedicated",
            },
        }


@dataclass(frozen=True, slots=True)
class TraversalRecord:
    """The stored configuration and who set it when."""

    config: TraversalConfig
    updated_at: dt.datetime
    updated_by: str

    def public_view(self) -> dict[str, Any]:
        """The config's view plus ``updated_at``/``updated_by``."""
        return {
            **self.config.public_view(),
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


def _listener_columns(listener: PremisesListener | None) -> dict[str, Any]:
    if listener is None:
        return dict.fromkeys(
            (
                "listen_host",
                "listen_port",
                "listen_transport",
                "listen_allow",
                "listen_require_client_cert",
            )
        )
    return {
        "listen_host": listener.host,
        "listen_port": listener.port,
        "listen_transport": listener.transport,
        "listen_allow": ",".join(listener.allow),
        "listen_require_client_cert": listener.require_client_cert,
    }


class TraversalStore:
    """The one traversal configuration row and its vaulted key, read and written together."""

    def __init__(self, database: Database, vault: Vault, clock: Clock = system_clock) -> None:
        self._db = database
        self._vault = vault
        self._clock = clock

    def get(self) -> TraversalRecord | None:
        """The stored configuration, or None."""
        with self._db.transaction() as session:
            row = session.execute(sa.select(traversal_table)).first()
        if row is None:
            return None
        config = TraversalConfig(
            edge=EdgeAddress(row.edge_host, row.edge_port),
            edge_name=row.edge_name,
            premises=PremisesServer.parse(row.premises_uri, row.premises_name),
            keepalive_interval=row.keepalive_interval,
            certificate_pem=row.certificate_pem,
            listener=None
            if row.listen_host is None
            else PremisesListener(
                row.listen_host,
                row.listen_port,
                row.listen_transport,
                tuple(a for a in (row.listen_allow or "").split(",") if a),
                bool(row.listen_require_client_cert),
            ),
        )
        return TraversalRecord(config, row.updated_at, row.updated_by)

    def set(self, config: TraversalConfig, *, key: Secret | None, actor: str) -> TraversalRecord:
        """Store ``config``; with a dedicated certificate, ``key`` (or the stored key) must
        be its private key. Without one, a stored traversal key is deleted.

        Raises ``TraversalConfigInvalid`` (nothing stored) when the key is missing or does
        not match the certificate.
        """
        leaf = config.leaf
        if leaf is None:
            if key is not None:
                raise TraversalConfigInvalid(
                    "a traversal key was given without a traversal certificate; give both"
                )
        else:
            if key is None:
                key = self.key()
                if key is None:
                    raise TraversalConfigInvalid(
                        "the traversal certificate needs its private key (none is stored yet)"
                    )
            check_key_matches(leaf, key)
            # Key first: a crash in between leaves a key without its row (replaced by the
            # next ``set``), never a row whose certificate has no key.
            self._vault.put(KEY_PURPOSE, KEY_RECORD, key, actor=actor)
        now = self._clock()
        values = {
            "edge_host": config.edge.host,
            "edge_port": config.edge.port,
            "edge_name": config.edge_name,
            "premises_uri": config.premises.uri,
            "premises_name": config.premises.name,
            "keepalive_interval": config.keepalive_interval,
            "certificate_pem": config.certificate_pem,
            **_listener_columns(config.listener),
            "updated_at": now,
            "updated_by": actor,
        }
        with self._db.transaction() as session:
            session.execute(sa.delete(traversal_table))
            session.execute(sa.insert(traversal_table).values(id=1, **values))
        if leaf is None:
            self._drop_key(actor)
        return TraversalRecord(config, now, actor)

    def clear(self, *, actor: str) -> bool:
        """Remove the configuration and the traversal key; True when something was stored."""
        with self._db.transaction() as session:
            removed = session.execute(sa.select(sa.func.count()).select_from(traversal_table))
            had_row = bool(removed.scalar())
            session.execute(sa.delete(traversal_table))
        dropped = self._drop_key(actor)
        return had_row or dropped

    def key(self) -> Secret | None:
        """The dedicated traversal key, or None (for the TLS context only; never shown)."""
        ref = self._vault.find(KEY_PURPOSE, KEY_RECORD)
        return None if ref is None else self._vault.get(ref)

    def _drop_key(self, actor: str) -> bool:
        ref = self._vault.find(KEY_PURPOSE, KEY_RECORD)
        if ref is None:
            return False
        self._vault.delete(ref, actor=actor)
        return True
