"""The stateless relay (RFC 3261 §16.11) between the cloud side and the traversal side.

No sockets here: ``Relay.on_request`` and ``Relay.on_response`` take a parsed message and
the side and connection it came from, and return what to do — answer on the same
connection, forward to the other side, send to a given connection, or drop with a reason.
The server (``server.py``) owns the connections and carries the decision out.

What the relay does to a request, in RFC 3261 §16 order:

- §16.3 step 3: Max-Forwards 0 → 483 (an OPTIONS is answered instead, as §16.3 allows);
  step 5: any Proxy-Require → 420 (the edge supports no proxy extension).
- §16.4: Route values that name this edge (our ``hbr`` parameter on our host) are removed;
  an OPTIONS then addressed to the edge itself is answered 200 locally (a ping).
- §16.6 step 3: Max-Forwards decremented, or added as 70.
- §16.6 step 4: Record-Route on dialog-creating requests, twice (RFC 5658 double
  Record-Route: the inbound side's URI, then the outbound side's on top), so in-dialog
  requests from either end come back through the edge on the right listener.
- §16.6 step 8 / §16.11: our Via on top with a *stateless* branch: a hash of the incoming
  top Via (RFC 3261 branch and sent-by), so a retransmission, the CANCEL of an INVITE and
  the ACK of a non-2xx final response get the same branch as the original request. RFC
  2543 requests (no magic cookie) hash the fields §16.11 lists instead.
- RFC 5923-style connection reuse: the Via carries ``hbc=<conn id>.<mac>``, the id of the
  connection the request came in on, authenticated with a per-process key so a peer cannot
  steer a response into another peer's connection. A response is routed by that id back
  over the very TLS connection its request arrived on.

Two paths, one result: ``on_frame`` is the fast path for plain messages — it reads the
few headers it needs from a lazy view (``core.sip.lazy.scan_head``) and splices our Via,
Record-Route and Max-Forwards into the received bytes; anything it does not handle (a Route,
Proxy-Require, a local answer, a drop, an odd shape) returns None and the server parses the
message with the full codec for ``on_request``/``on_response``, the reference. Where the
fast path acts, its action equals the full path's byte for byte (property-tested).

Not done (by design of a stateless element): ``received``/``rport`` on the incoming Via
(responses follow the connection, never the Via's address), loop detection beyond
Max-Forwards (the edge only ever forwards from one side to the other).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from hybridge.core.sip import (
    Frame,
    HeaderField,
    Request,
    Response,
    SipError,
    scan_head,
    serialize,
)

#: RFC 3261 §8.1.1.7: every branch we create starts with the magic cookie.
MAGIC_COOKIE = "z9hG4bK"
#: RFC 3261 §16.6 step 3: the value a proxy adds when a request has no Max-Forwards.
DEFAULT_MAX_FORWARDS = 70
#: Requests that create a dialog (RFC 3261 §12.1, RFC 6665 §4.1, RFC 3515): Record-Routed.
_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY, SUBSCRIBE"
_EDGE_TAG = "hb-edge"
_DIALOG_CREATING_BYTES = frozenset(m.encode() for m in _DIALOG_CREATING)
_MAC_CACHE_SIZE = 4096


class Side(StrEnum):
    """The listener a connection belongs to."""

    CLOUD = "cloud"
    TRAVERSAL = "traversal"

    @property
    def other(self) -> Side:
        """The side a request from this side is relayed to."""
        return Side.TRAVERSAL if self is Side.CLOUD else Side.CLOUD


@dataclass(frozen=True, slots=True)
class Answer:
    """Send ``data`` back on the connection the request came from; ``status`` for logs."""

    data: bytes
    status: int


@dataclass(frozen=True, slots=True)
class Forward:
    """Send the request ``data`` to the ``to`` side."""

    to: Side
    data: bytes


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send the response ``data`` on connection ``conn_id``."""

    conn_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Drop:
    """Send nothing; ``reason`` says why (for a debug log line and a counter)."""

    reason: str


Action = Answer | Forward | SendTo | Drop


class Relay:
    """The relay's decisions for one edge, advertised as ``host`` on the given ports.

    ``key`` authenticates the connection ids placed in our Vias (random per process when
    not given: connections do not outlive the process).
    """

    def __init__(self, *, host: str, ports: dict[Side, int], key: bytes | None = None) -> None:
        self.host = host
        self.ports = dict(ports)
        self._key = key or secrets.token_bytes(32)
        self._host_lower = host.lower().strip("[]")
        self._macs: dict[int, str] = {}
        # The fast path's constant pieces, built once (``on_frame``).
        self._via_prefix = {
            out: f"Via: SIP/2.0/TLS {self._sent_by(out)};branch={MAGIC_COOKIE}-hb".encode()
            for out in ports
        }
        self._host_bytes = self._host_lower.encode()
        self._record_route_lines = {
            out: f"Record-Route: {self.record_route_uri(out)}".encode() for out in ports
        }
        sent_by = "|".join(re.escape(self._sent_by(out)) for out in ports)
        # Exactly the Via ``via_for`` writes: a response whose top Via has any other shape
        # is left to ``on_response`` (which drops it or relays it) on the full codec.
        self._our_via_re = re.compile(
            rf"SIP/2\.0/TLS (?:{sent_by});branch={MAGIC_COOKIE}-hb[0-9a-f]{{24}}"
            rf";hbc=([0-9]+)\.([0-9a-f]{{12}})".encode()
        )

    # -- our own header values ---------------------------------------------------------

    def _mac(self, conn_id: int) -> str:
        mac = self._macs.get(conn_id)
        if mac is None:
            if len(self._macs) >= _MAC_CACHE_SIZE:
                self._macs.clear()  # a bound on memory; recomputing is cheap
            mac = hmac.new(self._key, str(conn_id).encode(), hashlib.sha256).hexdigest()[:12]
            self._macs[conn_id] = mac
        return mac

    def _sent_by(self, side: Side) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.ports[side]}"

    def record_route_uri(self, side: Side) -> str:
        """The Record-Route value that brings in-dialog requests back on ``side``."""
        return f"<sip:{self._sent_by(side)};transport=tls;lr;hbr={side.value}>"

    @staticmethod
    def stateless_branch(request: Request) -> str:
        """The branch for our Via on ``request`` (RFC 3261 §16.11); same for retransmissions.

        With an RFC 3261 branch on the incoming top Via, the hash covers that Via's sent-by
        and branch, which the CANCEL and the non-2xx ACK of an INVITE share with it; else
        the fields §16.11 names (To/From tags, Call-ID, Request-URI, top Via, CSeq number).
        """
        top = request.via[0]
        incoming = top.branch
        if incoming is not None and incoming.startswith(MAGIC_COOKIE):
            material = f"3261|{top.host}|{top.port}|{incoming}"
        else:
            material = "|".join(
                (
                    "2543",
                    request.to_address.tag or "",
                    request.from_address.tag or "",
                    request.call_id,
                    request.uri,
                    top.value,
                    str(request.cseq.number),
                    # an RFC 2543 ACK/CANCEL must match its INVITE's branch: CSeq method
                    # is left out on purpose, as §16.11 leaves it out.
                )
            )
        digest = hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()
        return f"{MAGIC_COOKIE}-hb{digest[:24]}"

    def via_for(self, request: Request, *, out: Side, conn_id: int) -> str:
        """Our Via value for ``request`` leaving on side ``out``, from connection ``conn_id``."""
        branch = self.stateless_branch(request)
        return (
            f"SIP/2.0/TLS {self._sent_by(out)};branch={branch};hbc={conn_id}.{self._mac(conn_id)}"
        )

    def _is_ours(self, host: str) -> bool:
        return host.lower().strip("[]") == self._host_lower

    def _route_is_ours(self, uri: str) -> bool:
        # Our Record-Route URIs carry ``hbr``; only a Route on our own host with that
        # parameter is popped (RFC 3261 §16.4: the value "indicates this proxy").
        scheme, _, rest = uri.partition(":")
        if scheme.lower() not in ("sip", "sips") or "@" in rest:
            return False
        hostport, _, params = rest.partition(";")
        host = hostport.rsplit(":", 1)[0] if not hostport.endswith("]") else hostport
        if not self._is_ours(host):
            return False
        return any(p.split("=", 1)[0].lower() == "hbr" for p in params.split(";"))

    def _addressed_to_edge(self, uri: str) -> bool:
        scheme, _, rest = uri.partition(":")
        if scheme.lower() not in ("sip", "sips"):
            return False
        hostport = rest.rpartition("@")[2].split(";", 1)[0]
        host = hostport if hostport.endswith("]") else hostport.rsplit(":", 1)[0]
        return "@" not in rest and self._is_ours(host)

    # -- decisions ----------------------------------------------------------------------

    def _local(self, request: Request, status: int, reason: str, *extra: HeaderField) -> Action:
        if request.method == "ACK":
            # RFC 3261 §17: an ACK is never answered.
            return Drop(f"ACK that would be answered {status}")
        response = request.response(status, reason, to_tag=_EDGE_TAG, headers=extra)
        return Answer(serialize(response), status)

    def on_request(self, request: Request, *, side: Side, conn_id: int) -> Action:
        """What to do with ``request`` received on connection ``conn_id`` of ``side``."""
        try:
            while request.route and self._route_is_ours(request.route[0].uri):
                request = request.without_top_route()
            if (
                request.method == "OPTIONS"
                and not request.route
                and (self._addressed_to_edge(request.uri) or request.max_forwards == 0)
            ):
                # RFC 3261 §11.2 / §16.3: an OPTIONS for the edge is answered by the edge.
                return self._local(
                    request,
                    200,
                    "OK",
                    HeaderField("Allow", _ALLOW),
                    HeaderField("Accept", "application/sdp"),
                )
            if request.max_forwards == 0:
                # RFC 3261 §16.3 step 3.
                return self._local(request, 483, "Too Many Hops")
            proxy_require = request.get_all("Proxy-Require")
            if proxy_require:
                # RFC 3261 §16.3 step 5: no proxy extension is supported here.
                return self._local(
                    request,
                    420,
                    "Bad Extension",
                    HeaderField("Unsupported", ", ".join(proxy_require)),
                )
            out = side.other
            forwards = request.max_forwards
            request = request.with_max_forwards(
                DEFAULT_MAX_FORWARDS if forwards is None else forwards - 1
            )
            if request.method in _DIALOG_CREATING and request.to_address.tag is None:
                # RFC 5658 §3.2: double Record-Route, inbound side first, outbound on top.
                request = request.with_record_route(self.record_route_uri(side))
                request = request.with_record_route(self.record_route_uri(out))
            request = request.with_via(self.via_for(request, out=out, conn_id=conn_id))
        except SipError as exc:
            # A request we cannot edit safely (a broken Route value, ...): refuse it.
            return self._local(request, exc.status_hint, "Bad Request")
        return Forward(out, serialize(request))

    def on_response(self, response: Response) -> Action:
        """Where ``response`` goes: the connection named in our Via, or nowhere."""
        top = response.via[0]
        if not self._is_ours(top.host):
            return Drop(f"response whose top Via {top.value!r} is not the edge's")
        tag = top.param("hbc")
        conn_text, _, mac = (tag or "").partition(".")
        if not conn_text.isdigit() or not hmac.compare_digest(mac, self._mac(int(conn_text))):
            # RFC 3261 §16.7 step 3 assumes the top Via is ours; a forged one is dropped.
            return Drop(f"response whose top Via {top.value!r} carries no valid hbc")
        if len(response.via) < 2:
            return Drop("response to a request the edge sent itself")
        return SendTo(int(conn_text), serialize(response.without_top_via()))

    # -- the fast path ------------------------------------------------------------------

    def on_frame(self, frame: Frame, *, side: Side, conn_id: int) -> Action | None:
        """``on_request``/``on_response`` for a plain message, done by splicing its bytes.

        Returns None when the message is not plain (``core.sip.lazy.scan_head``) or needs
        anything but a forward (a local answer, a Route to pop, a drop): the caller then
        parses the frame with the full codec and calls ``on_request``/``on_response``, which
        decide. When it returns an action, it is byte for byte the one the full path returns
        (``tests/unit/core/sip/test_sip_lazy.py`` holds the two to that).
        """
        view = scan_head(frame.head)
        if view is None:
            return None
        lines = view.lines
        if view.status:
            # RFC 3261 §16.7 step 3: our Via on top, and the connection it names.
            if not view.second_via:
                return None
            ours = self._our_via_re.fullmatch(view.via_value)
            if ours is None:
                return None
            conn_text, mac = ours.groups()
            target = int(conn_text)
            if not hmac.compare_digest(mac.decode(), self._mac(target)):
                return None
            del lines[view.first_via]
            return SendTo(target, b"\r\n".join(lines) + b"\r\n\r\n" + frame.body)
        forwards = view.max_forwards
        method = view.method
        if forwards == 0:
            return None  # §16.3 step 3: answered (483, or 200 to an OPTIONS) by on_request
        if (
            method == b"OPTIONS"
            and self._host_bytes in view.uri.lower()  # cheap necessary condition first
            and self._addressed_to_edge(view.uri.decode())
        ):
            return None  # §11.2: an OPTIONS for the edge is answered by on_request
        branch = view.via_branch
        if branch is None or not branch.startswith(b"z9hG4bK"):
            return None  # an RFC 2543 peer: on_request hashes the fields §16.11 lists
        out = side.other
        # §16.6 step 3: Max-Forwards decremented in place, or added (last) as 70.
        if forwards is None:
            lines.append(b"Max-Forwards: %d" % DEFAULT_MAX_FORWARDS)
        else:
            lines[view.max_forwards_index] = b"Max-Forwards: %d" % (forwards - 1)
        first_via = view.first_via
        if method in _DIALOG_CREATING_BYTES and not view.to_tag:
            # RFC 5658 §3.2: double Record-Route, outbound side on top of the inbound one.
            at = view.first_record_route if view.first_record_route > 0 else 1
            lines[at:at] = [self._record_route_lines[out], self._record_route_lines[side]]
            if first_via >= at:
                first_via += 2
        # §16.11: the stateless branch, from the incoming top Via (see stateless_branch).
        port = view.via_port
        material = b"3261|%s|%s|%s" % (
            view.via_host,
            b"None" if port is None else b"%d" % port,
            branch,
        )
        digest = hashlib.sha256(material).hexdigest()[:24]
        lines.insert(
            first_via,
            b"%s%s;hbc=%d.%s"
            % (self._via_prefix[out], digest.encode(), conn_id, self._mac(conn_id).encode()),
        )
        return Forward(out, b"\r\n".join(lines) + b"\r\n\r\n" + frame.body)
