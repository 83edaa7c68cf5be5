"""Each organisation's edge, as the call service knows it: its TLS name and its address.

The seed's trust rule runs both ways: the edge trusts the cloud only for the DNS zone's
subject name (``callservice.<domain>``), and the call service trusts an edge only for the
name the organisation configured here (``edge.example.com``), after path validation against
the cloud's anchors. ``address`` is where the call service dials that edge for a test call.

Stored in the cloud database (table ``org_edge``, migration ``0004_callservice``), one row
per organisation; changes are audited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hybridge.cloud import audit
from hybridge.cloud.callservice_errors import OrgEdgeError, UnknownOrgEdge
from hybridge.cloud.models import organisation
from hybridge.core.hostport import is_ip_or_host_name, join_host_port, split_host_port
from hybridge.core.tlsverify import CnRule, InvalidExpectedName, NamePolicy
from hybridge.web.schema import metadata

#: Expressway-E's SIP TLS port towards the cloud (the seed's port 5062).
DEFAULT_EDGE_PORT = 5062

org_edge = sa.Table(
    "org_edge",
    metadata,
    sa.Column("org_id", sa.String(36), sa.ForeignKey("organisation.id"), primary_key=True),
    sa.Column("subject_name", sa.String(253), nullable=False),
    sa.Column("address", sa.String(300)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(320), nullable=False),
)


@dataclass(frozen=True, slots=True)
class EdgeAddress:
    """Where the call service dials an edge: a host name or IP literal and a TCP port.

    Raises ``OrgEdgeError`` for a port outside 1..65535 or a host that is neither.
    """

    host: str
    port: int

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise OrgEdgeError(f"edge port {self.port!r} is not 1..65535")
        if not is_ip_or_host_name(self.host):
            raise OrgEdgeError(f"edge host {self.host!r} is neither an IP address nor a host name")

    @classmethod
    def parse(cls, text: str) -> EdgeAddress:
        """``host:port``, ``[v6]:port`` or ``host`` (port 5062). Raises ``OrgEdgeError``."""
        text = text.strip()
        split = split_host_port(text, DEFAULT_EDGE_PORT)
        if split is None:
            raise OrgEdgeError(f"edge address {text!r} is not '[ipv6]:port'")
        if split.port is None:
            raise OrgEdgeError(
                f"edge address {text!r} has port {split.port_text!r}; give 'host:port', e.g. "
                "'edge.example.com:5062'"
            )
        return cls(split.host, split.port)

    def __str__(self) -> str:
        return join_host_port(self.host, self.port)


@dataclass(frozen=True, slots=True)
class OrgEdge:
    """One organisation's edge. ``subject_name`` is normalised by ``NamePolicy``.

    Raises ``OrgEdgeError`` when the subject name cannot be a DNS name (a wildcard, a NUL,
    an empty label...).
    """

    org_id: str
    org_name: str
    subject_name: str
    address: EdgeAddress | None = None

    def __post_init__(self) -> None:
        try:
            policy = NamePolicy(self.subject_name)
        except InvalidExpectedName as exc:
            raise OrgEdgeError(
                f"edge subject name {self.subject_name!r} is not usable: {exc}; give the DNS "
                "name on the edge's certificate, e.g. 'edge.example.com'"
            ) from exc
        object.__setattr__(self, "subject_name", policy.expected)

    def policy(self) -> NamePolicy:
        """The name rule an edge certificate must pass for this organisation.

        DESIGN §3.4: SAN dNSName or SAN URI host, the CN only when no such SAN exists, no
        wildcard (the organisation names one edge, not a domain of them).
        """
        return NamePolicy(self.subject_name, cn=CnRule.WHEN_NO_SAN, wildcards=False)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping."""
        return {
            "organisation": self.org_name,
            "organisation_id": self.org_id,
            "subject_name": self.subject_name,
            "address": str(self.address) if self.address else None,
        }


def _org(session: Session, name: str) -> tuple[str, str]:
    value = " ".join(name.split())
    row = session.execute(sa.select(organisation).where(organisation.c.name == value)).first()
    if row is None:
        known = session.execute(sa.select(organisation.c.name).order_by(organisation.c.name))
        names = ", ".join(repr(n) for (n,) in known) or "none yet"
        raise UnknownOrgEdge(f"no organisation is called {name!r}; known: {names}")
    return str(row.id), str(row.name)


def _rows(session: Session) -> list[OrgEdge]:
    query = sa.select(
        org_edge.c.org_id, organisation.c.name, org_edge.c.subject_name, org_edge.c.address
    ).join(organisation, organisation.c.id == org_edge.c.org_id)
    return [
        OrgEdge(
            r.org_id, r.name, r.subject_name, EdgeAddress.parse(r.address) if r.address else None
        )
        for r in session.execute(query.order_by(organisation.c.name))
    ]


def set_org_edge(
    session: Session,
    org_name: str,
    subject_name: str,
    address: str | None,
    *,
    actor: str,
    now: dt.datetime,
) -> OrgEdge:
    """Set (create or replace) the edge of organisation ``org_name``; audited.

    Raises:
        UnknownOrgEdge: no such organisation.
        OrgEdgeError: the subject name or the address is invalid.
    """
    org_id, name = _org(session, org_name)
    edge = OrgEdge(org_id, name, subject_name, EdgeAddress.parse(address) if address else None)
    values = {
        "subject_name": edge.subject_name,
        "address": str(edge.address) if edge.address else None,
        "updated_at": now,
        "updated_by": actor,
    }
    exists = session.execute(sa.select(org_edge.c.org_id).where(org_edge.c.org_id == org_id))
    if exists.first() is None:
        session.execute(sa.insert(org_edge).values(org_id=org_id, **values))
    else:
        session.execute(sa.update(org_edge).where(org_edge.c.org_id == org_id).values(**values))
    audit.record(session, now, actor, "callservice.edge_set", edge.to_dict(), org_id)
    return edge


def remove_org_edge(session: Session, org_name: str, *, actor: str, now: dt.datetime) -> OrgEdge:
    """Remove the edge of ``org_name``; audited. Raises ``UnknownOrgEdge``."""
    edge = org_edge_of(session, org_name)
    session.execute(sa.delete(org_edge).where(org_edge.c.org_id == edge.org_id))
    audit.record(session, now, actor, "callservice.edge_removed", edge.to_dict(), edge.org_id)
    return edge


def list_org_edges(session: Session) -> list[OrgEdge]:
    """Every organisation's edge, by organisation name."""
    return _rows(session)


def org_edge_of(session: Session, org_name: str) -> OrgEdge:
    """The edge of organisation ``org_name``.

    Raises ``UnknownOrgEdge`` when the organisation does not exist or has no edge.
    """
    org_id, name = _org(session, org_name)
    for edge in _rows(session):
        if edge.org_id == org_id:
            return edge
    raise UnknownOrgEdge(
        f"organisation {name!r} has no edge configured; set one with 'hybridge cloud edge set "
        f"--org {name!r} --subject-name EDGE-NAME --address HOST:PORT'"
    )


def org_edge_at(session: Session, address: str) -> OrgEdge:
    """The organisation whose edge is configured at ``address`` (``host:port``).

    Raises ``UnknownOrgEdge`` when no organisation, or more than one, has that address:
    the call service never calls an edge it cannot attribute to one organisation.
    """
    wanted = EdgeAddress.parse(address)
    edges = _rows(session)
    matches = [e for e in edges if e.address == wanted]
    if len(matches) == 1:
        return matches[0]
    configured = ", ".join(f"{e.org_name}: {e.address or '-'}" for e in edges) or "none"
    if not matches:
        raise UnknownOrgEdge(
            f"no organisation has an edge at {str(wanted)!r}; configured edges: {configured}"
        )
    raise UnknownOrgEdge(
        f"{len(matches)} organisations have an edge at {str(wanted)!r}; name one with --org"
    )
