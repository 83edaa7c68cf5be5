"""The connector's side of traversal: a stateless relay between the edge and the premises.

The connector holds two stream connections it opened itself: the traversal connection to
the edge (mutual TLS) and one to the premises SIP server (TCP or TLS). Every request that
arrives on one is relayed to the other; every response goes back where its request came
from, found by our Via. No sockets here: ``on_request``/``on_response`` take a parsed
message and the side it arrived on and return what to do (the h11 shape of
``hybridge.core.sip``); ``traversal_service`` carries it out.

What the relay does, in RFC 3261 §16 order (the same rules the edge's relay applies; the
roles never import each other, DESIGN.md §4, so the shared pieces live in
``hybridge.core.sip.proxy``):

- §16.3 step 3: Max-Forwards 0 → 483 Too Many Hops (an ACK is dropped, never answered);
- §16.6 step 3: Max-Forwards decremented, or added as 70;
- §16.6 step 8 / §16.11: our Via on top with a *stateless* branch — a hash of the incoming
  top Via's sent-by and branch, so a retransmission, the CANCEL of an INVITE and the ACK of
  a non-2xx response get the branch of the original request — and an ``hxs`` parameter
  naming the side the request left on, authenticated with a per-process key so a peer
  cannot make us relay a response it forged onto the other connection;
- §16.7 step 3: a response whose top Via is ours loses it and goes to the other side.

- RFC 5923-style connection reuse for the premises listener: a request that arrived on a
  connection the premises server opened to us carries ``hxc=<id>.<mac>`` in our Via too,
  so its responses go back over *that* connection (a PBX may hold several), as the edge's
  ``hbc`` does; the MAC (same per-process key) stops a forged id from steering responses
  onto another premises connection.

Record-Route: without a premises listener, Route and Record-Route are left alone (the edge
Record-Routes, RFC 5658, and both connections are the only way in and out). With one, a
PBX sends in-dialog requests to the Route set it learnt, so every dialog-creating request
gets our ``Record-Route`` naming the listener (``hxr`` parameter), and a Route naming it is
popped on the way back (RFC 3261 §16.4). One entry serves both directions: the edge side
is a single connection, and a request from the edge goes to the premises server.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum

from hybridge.core.sip import Request, Response, SipError, serialize
from hybridge.core.sip.proxy import (
    DEFAULT_MAX_FORWARDS,
    DIALOG_CREATING,
    ConnectionTags,
    record_route_uri,
    route_names_proxy,
    stateless_branch,
    via_mac,
    via_mac_matches,
)

_TAG = "hb-connector"


class Side(StrEnum):
    """The connection a message arrived on or leaves on."""

    EDGE = "edge"
    PREMISES = "premises"

    @property
    def other(self) -> Side:
        """The side a request from this side is relayed to."""
        return Side.PREMISES if self is Side.EDGE else Side.EDGE


@dataclass(frozen=True, slots=True)
class Relay:
    """Send ``data`` on the ``to`` side's connection: ``conn_id`` 0 is the one the
    connector dialled, any other id a connection the premises server opened to us."""

    to: Side
    data: bytes
    conn_id: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    """Send ``data`` back on the side the request came from; ``status`` for logs/metrics."""

    data: bytes
    status: int


@dataclass(frozen=True, slots=True)
class Drop:
    """Send nothing; ``reason`` says why."""

    reason: str


Action = Relay | Answer | Drop


class TraversalRelay:
    """The relay's decisions for a connector known as ``host`` in Vias.

    ``transports`` maps each side to the Via transport token used there (``TLS`` towards the
    edge; ``TCP`` or ``TLS`` towards the premises). ``key`` authenticates our ``hxs`` Via
    parameter (random per process when not given). ``record_route`` is the listener's
    ``(host, port, transport)`` when there is a premises listener, else None.
    """

    def __init__(
        self,
        *,
        host: str,
        transports: dict[Side, str],
        key: bytes | None = None,
        record_route: tuple[str, int, str] | None = None,
    ) -> None:
        self.host = host.lower()
        self.transports = dict(transports)
        self._key = key or secrets.token_bytes(32)
        self._rr = record_route
        # Domain-separated from the side MACs ("conn|"), so one can never stand for the other.
        self._conn_tags = ConnectionTags(self._key, domain="conn|")
        if record_route is not None:
            rr_host, rr_port, transport = record_route
            self.record_route_uri: str | None = record_route_uri(
                rr_host, rr_port, transport=transport, param="hxr"
            )
        else:
            self.record_route_uri = None

    def _mac(self, side: Side) -> str:
        return via_mac(self._key, side.value)

    def _route_is_ours(self, uri: str) -> bool:
        # Only a Route on our listener's host and port with the ``hxr`` parameter is ours
        # (RFC 3261 §16.4: "the value indicates this proxy").
        if self._rr is None:
            return False
        rr_host, rr_port, _ = self._rr
        return route_names_proxy(uri, host=rr_host, port=rr_port, param="hxr")

    @staticmethod
    def stateless_branch(request: Request, out: Side) -> str:
        """Our branch for ``request`` leaving on ``out`` (RFC 3261 §16.11).

        ``core.sip.proxy.stateless_branch`` with the marker ``hx``, scoped to ``out`` so the
        two directions of one transaction get different branches.
        """
        return stateless_branch(request, marker="hx", scope=out.value)

    def via_for(self, request: Request, out: Side, conn_id: int = 0) -> str:
        """Our Via value for ``request`` relayed to ``out``; ``conn_id`` is the premises
        connection it arrived on (0: the one we dialled, or the edge)."""
        branch = self.stateless_branch(request, out)
        transport = self.transports[out]
        via = f"SIP/2.0/{transport} {self.host};branch={branch};hxs={out.value}.{self._mac(out)}"
        if conn_id:
            via += f";hxc={self._conn_tags.tag(conn_id)}"
        return via

    def _local(self, request: Request, status: int, reason: str) -> Action:
        if request.method == "ACK":
            # RFC 3261 §17: an ACK is never answered.
            return Drop(f"ACK that would be answered {status}")
        return Answer(serialize(request.response(status, reason, to_tag=_TAG)), status)

    def on_request(self, request: Request, side: Side, conn_id: int = 0) -> Action:
        """What to do with ``request`` received from ``side`` (on premises connection
        ``conn_id`` when the premises server opened it)."""
        try:
            while request.route and self._route_is_ours(request.route[0].uri):
                request = request.without_top_route()
            if request.max_forwards == 0:
                # RFC 3261 §16.3 step 3.
                return self._local(request, 483, "Too Many Hops")
            out = side.other
            forwards = request.max_forwards
            request = request.with_max_forwards(
                DEFAULT_MAX_FORWARDS if forwards is None else forwards - 1
            )
            if (
                self.record_route_uri is not None
                and request.method in DIALOG_CREATING
                and request.to_address.tag is None
            ):
                request = request.with_record_route(self.record_route_uri)
            request = request.with_via(self.via_for(request, out, conn_id))
        except SipError as exc:
            return self._local(request, exc.status_hint, "Bad Request")
        return Relay(out, serialize(request))

    def on_response(self, response: Response, side: Side) -> Action:
        """Where ``response`` received from ``side`` goes: the other side, or nowhere."""
        top = response.via[0]
        if top.host.lower() != self.host:
            return Drop(f"response whose top Via {top.value!r} is not the connector's")
        tag = top.param("hxs") or ""
        sent_to, _, mac = tag.partition(".")
        # RFC 3261 §16.7 step 3 assumes the top Via is ours: it must name the side the
        # response came from (where we sent the request) under our key; else it is forged.
        if sent_to != side.value or not via_mac_matches(self._key, side.value, mac):
            return Drop(f"response whose top Via {top.value!r} carries no valid hxs for {side}")
        if len(response.via) < 2:
            return Drop("response to a request the connector sent itself")
        conn_id = 0
        conn_tag = top.param("hxc")
        if conn_tag is not None:
            # RFC 5923-style reuse: the id names the premises connection the request came
            # in on; only an id we authenticated may steer the response.
            verified = self._conn_tags.verify(conn_tag)
            if verified is None:
                return Drop(f"response whose top Via {top.value!r} carries no valid hxc")
            conn_id = verified
        return Relay(side.other, serialize(response.without_top_via()), conn_id)
