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
few headers it needs from a lazy view (``core.sip.lazy``, found by the relay's
``core.sip.shapes.HeadScanner``, usually while the stream framed the message) and splices
our Via, Record-Route and Max-Forwards into the received bytes; anything it does not handle
(a Route, Proxy-Require, a local answer, a drop, an odd shape) returns None and the server
parses the message with the full codec for ``on_request``/``on_response``, the reference.
Where the fast path acts, its action equals the full path's byte for byte
(property-tested). What it adds is built once: our Via up to the branch for each side, the
Record-Route lines, Max-Forwards lines, and per connection the ``hbc`` parameter with its
MAC.

Not done (by design of a stateless element): ``received``/``rport`` on the incoming Via
(responses follow the connection, never the Via's address), loop detection beyond
Max-Forwards (the edge only ever forwards from one side to the other).
"""

from __future__ import annotations

import hmac
import re
import secrets
from enum import StrEnum
from typing import Final, NamedTuple

from hybridge.core.sip import (
    Frame,
    HeaderField,
    Request,
    Response,
    SipError,
    serialize,
)
from hybridge.core.sip.proxy import (
    DEFAULT_MAX_FORWARDS,
    DIALOG_CREATING,
    MAGIC_COOKIE,
    TAG_MAC_LENGTH,
    ConnectionTags,
    branch_digest_3261,
    record_route_uri,
    route_names_proxy,
    sent_by,
    stateless_branch,
)
from hybridge.core.sip.shapes import HeadScanner

_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY, SUBSCRIBE"
_EDGE_TAG = "hb-edge"
_DIALOG_CREATING_BYTES = frozenset(m.encode() for m in DIALOG_CREATING)
# §16.6 step 3 on the fast path: the decremented line for each value, and the added one
_MAX_FORWARDS_LINES = tuple(b"Max-Forwards: %d" % (n - 1) for n in range(256))
_ADDED_MAX_FORWARDS = b"Max-Forwards: %d" % DEFAULT_MAX_FORWARDS
# ``hbc`` parameters kept (one per connection seen; a bound on memory, then start over)
_HBC_CACHE_SIZE = 4096


class Side(StrEnum):
    """The listener a connection belongs to."""

    CLOUD = "cloud"
    TRAVERSAL = "traversal"

    @property
    def other(self) -> Side:
        """The side a request from this side is relayed to."""
        return Side.TRAVERSAL if self is Side.CLOUD else Side.CLOUD


# The actions are NamedTuples, immutable values like frozen dataclasses, because the fast
# path makes one per relayed message and a frozen dataclass's ``__init__`` costs several
# times more (``_new_action``: ``tuple.__new__``, not the generated Python ``__new__``). No two
# of them can compare equal: their fields differ in number or in type.


class Answer(NamedTuple):
    """Send ``data`` back on the connection the request came from; ``status`` for logs."""

    data: bytes
    status: int


class Forward(NamedTuple):
    """Send the request ``data`` to the ``to`` side."""

    to: Side
    data: bytes


class SendTo(NamedTuple):
    """Send the response ``data`` on connection ``conn_id``."""

    conn_id: int
    data: bytes


class Drop(NamedTuple):
    """Send nothing; ``reason`` says why (for a debug log line and a counter)."""

    reason: str


_new_action: Final = tuple.__new__

Action = Answer | Forward | SendTo | Drop


class Relay:
    """The relay's decisions for one edge, advertised as ``host`` on the given ports.

    ``key`` authenticates the connection ids placed in our Vias (random per process when
    not given: connections do not outlive the process). ``scanner`` finds the fast path's
    views (a ``HeadScanner`` with its default bounds when not given).
    """

    def __init__(
        self,
        *,
        host: str,
        ports: dict[Side, int],
        key: bytes | None = None,
        scanner: HeadScanner | None = None,
    ) -> None:
        self.host = host
        self.ports = dict(ports)
        # RFC 5923-style reuse: ``hbc`` ids are MACed so a peer cannot steer a response.
        self._tags = ConnectionTags(key or secrets.token_bytes(32))
        self._mac = self._tags.mac
        self._hbc: dict[int, bytes] = {}
        #: The fast path's scanner; give ``scanner.scan`` to each connection's ``SipStream``
        #: as its ``head_scanner`` so a message is scanned once, while it is framed.
        self.scanner = scanner or HeadScanner()
        self._other = {s: s.other for s in Side}
        self._host_lower = host.lower().strip("[]")
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

    def _sent_by(self, side: Side) -> str:
        return sent_by(self.host, self.ports[side])

    def record_route_uri(self, side: Side) -> str:
        """The Record-Route value that brings in-dialog requests back on ``side``."""
        return record_route_uri(
            self.host, self.ports[side], transport="tls", param=f"hbr={side.value}"
        )

    @staticmethod
    def stateless_branch(request: Request) -> str:
        """The branch for our Via on ``request`` (RFC 3261 §16.11); same for retransmissions.

        ``core.sip.proxy.stateless_branch`` with the edge's marker ``hb``.
        """
        return stateless_branch(request, marker="hb")

    def via_for(self, request: Request, *, out: Side, conn_id: int) -> str:
        """Our Via value for ``request`` leaving on side ``out``, from connection ``conn_id``."""
        branch = self.stateless_branch(request)
        return (
            f"SIP/2.0/TLS {self._sent_by(out)};branch={branch};hbc={conn_id}.{self._mac(conn_id)}"
        )

    def _is_ours(self, host: str) -> bool:
        return host.lower().strip("[]") == self._host_lower

    def _route_is_ours(self, uri: str) -> bool:
        # Our Record-Route URIs carry ``hbr``; only a Route on our own host (any of our
        # ports) with that parameter is popped (RFC 3261 §16.4).
        return route_names_proxy(uri, host=self.host, param="hbr")

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
            if request.method in DIALOG_CREATING and request.to_address.tag is None:
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
        conn_id = self._tags.verify(top.param("hbc"))
        if conn_id is None:
            # RFC 3261 §16.7 step 3 assumes the top Via is ours; a forged one is dropped.
            return Drop(f"response whose top Via {top.value!r} carries no valid hbc")
        if len(response.via) < 2:
            return Drop("response to a request the edge sent itself")
        return SendTo(conn_id, serialize(response.without_top_via()))

    # -- the fast path ------------------------------------------------------------------

    def _hbc_param(self, conn_id: int) -> bytes:
        # ``;hbc=<id>.<mac>``, built once per connection (its MAC is the costly part).
        param = self._hbc.get(conn_id)
        if param is None:
            if len(self._hbc) >= _HBC_CACHE_SIZE:
                self._hbc.clear()
            param = self._hbc[conn_id] = b";hbc=%d.%s" % (conn_id, self._mac(conn_id).encode())
        return param

    def on_frame(self, frame: Frame, side: Side, conn_id: int) -> Action | None:
        """``on_request``/``on_response`` for a plain message, done by splicing its bytes.

        Uses ``frame.view`` when the stream scanned the frame, else scans it here. Returns
        None when the message is not plain (``core.sip.lazy``) or needs anything but a
        forward (a local answer, a Route to pop, a drop): the caller then parses the frame
        with the full codec and calls ``on_request``/``on_response``, which decide. When it
        returns an action, it is byte for byte the one the full path returns
        (``tests/unit/edge/test_relay_fast.py`` holds the two to that).
        """
        view = frame.view
        if view is None:
            view = self.scanner.scan(frame.head)
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
            # RFC 5923-style reuse: only an id carrying our MAC steers a response (a forged
            # one goes to on_response, which drops it); compared in constant time.
            if not hmac.compare_digest(mac, self._hbc_param(target)[-TAG_MAC_LENGTH:]):
                return None
            del lines[view.first_via]
            # the blank line and the body, joined with the rest in one step
            lines += (b"", frame.body)
            return _new_action(SendTo, (target, b"\r\n".join(lines)))
        forwards = view.max_forwards
        if forwards == 0:
            return None  # §16.3 step 3: answered (483, or 200 to an OPTIONS) by on_request
        method = view.method
        if (
            method == b"OPTIONS"
            and self._host_bytes in view.uri.lower()  # cheap necessary condition first
            and self._addressed_to_edge(view.uri.decode())
        ):
            return None  # §11.2: an OPTIONS for the edge is answered by on_request
        branch = view.via_branch
        if branch is None or branch[:7] != b"z9hG4bK":
            return None  # an RFC 2543 peer: on_request hashes the fields §16.11 lists
        out = self._other[side]
        # §16.6 step 3: Max-Forwards decremented in place, or added (last) as 70.
        if forwards is None:
            lines.append(_ADDED_MAX_FORWARDS)
        else:
            lines[view.max_forwards_index] = _MAX_FORWARDS_LINES[forwards]
        first_via = view.first_via
        if method in _DIALOG_CREATING_BYTES and not view.to_tag:
            # RFC 5658 §3.2: double Record-Route, outbound side on top of the inbound one.
            at = view.first_record_route if view.first_record_route > 0 else 1
            lines[at:at] = [self._record_route_lines[out], self._record_route_lines[side]]
            if first_via >= at:
                first_via += 2
        # §16.11: the stateless branch, from the incoming top Via (see stateless_branch).
        lines.insert(
            first_via,
            self._via_prefix[out]
            + branch_digest_3261(view.via_host, view.via_port, branch)
            + self._hbc_param(conn_id),
        )
        lines += (b"", frame.body)
        return _new_action(Forward, (out, b"\r\n".join(lines)))
