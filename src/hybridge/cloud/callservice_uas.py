"""The call service's SIP logic without I/O: answering calls, and building a test call.

``CallServiceUas.on_request(request)`` returns the responses to send back on the
connection the request came from; the server (``callservice_server``) and the test caller
(``callservice_call``) own the sockets. Messages are ``hybridge.core.sip`` values, framed
by its ``SipStream`` and written with ``serialize``.

What the call service answers (it is a user agent, RFC 3261 §8.2, not a proxy):

- OPTIONS → 200 with Allow and Accept (§11.2): a ping from an edge or a monitor;
- INVITE → 100 Trying, 180 Ringing, then 200 OK with an SDP answer (RFC 3264), a To tag,
  a Contact, and the request's Record-Route copied (§12.1.1), so the caller's ACK and BYE
  come back through the edge; a retransmitted INVITE gets the same 200 again (§13.3.1.4);
- ACK → nothing (§17: an ACK is never answered); BYE of a known call → 200, else 481
  (§15.1.2); CANCEL → 200 (§9.2; the INVITE was answered at once, so there is nothing
  left to cancel); any other method → 405 with Allow (§8.2.1).

The SDP is a real offer/answer body, but no media flows: the call service is a signalling
peer for proving that calls cross the edge, not a media server.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from hybridge.core.sip import HeaderField, Request, Response

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"
USER_AGENT = "Hybridge call service"
#: RFC 3261 §8.1.1.7: every branch starts with the magic cookie.
MAGIC_COOKIE = "z9hG4bK"
#: Calls remembered at once (for BYE and retransmissions); the oldest is forgotten first.
DEFAULT_MAX_CALLS = 1024


def new_token(size: int = 10) -> str:
    """A random tag, branch suffix or Call-ID part (RFC 3261 §19.3: cryptographically random)."""
    return secrets.token_hex(size)


def sdp_body(host: str, session_id: int, *, port: int = 49170) -> bytes:
    """A minimal SDP (RFC 4566 / RFC 8866) for one audio stream, PCMU and PCMA.

    ``host`` goes in o= and c= (an IPv6 literal gets ``IP6``). No media is sent to ``port``.
    """
    family = "IP6" if ":" in host else "IP4"
    lines = [
        "v=0",
        f"o=hybridge {session_id} {session_id} IN {family} {host}",
        "s=Hybridge test call",
        f"c=IN {family} {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP 0 8",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass(frozen=True, slots=True)
class _Call:
    to_tag: str
    ok: Response


class CallServiceUas:
    """Answers requests as the call service (see the module docstring).

    ``host`` is put in Contact and SDP; ``new_tag`` makes To tags (injectable for tests).
    """

    def __init__(
        self,
        *,
        host: str,
        contact_user: str = "callservice",
        max_calls: int = DEFAULT_MAX_CALLS,
        new_tag: Callable[[], str] = new_token,
    ) -> None:
        self.host = host
        self.contact = f"<sip:{contact_user}@{_host_for_uri(host)};transport=tls>"
        self._max_calls = max_calls
        self._new_tag = new_tag
        self._calls: OrderedDict[str, _Call] = OrderedDict()

    @property
    def active_calls(self) -> int:
        """Calls answered 200 and not yet ended by BYE."""
        return len(self._calls)

    def on_request(self, request: Request) -> tuple[Response, ...]:
        """The responses to ``request``, in order (empty for an ACK)."""
        method = request.method
        if method == "ACK":
            return ()
        if method == "OPTIONS":
            answer = request.response(
                200,
                "OK",
                to_tag=self._new_tag(),
                headers=(
                    HeaderField("Allow", ALLOW),
                    HeaderField("Accept", "application/sdp"),
                    HeaderField("User-Agent", USER_AGENT),
                ),
            )
            return (answer,)
        if method == "INVITE":
            return self._invite(request)
        if method == "BYE":
            call = self._calls.pop(request.call_id, None)
            if call is None:
                # RFC 3261 §15.1.2: a BYE that matches no dialog gets 481.
                answer = request.response(481, "Call/Transaction Does Not Exist")
                return (answer,)
            return (request.response(200, "OK"),)
        if method == "CANCEL":
            return (request.response(200, "OK", to_tag=self._new_tag()),)
        # RFC 3261 §8.2.1: a method we do not support gets 405 and Allow.
        refused = request.response(
            405,
            "Method Not Allowed",
            to_tag=self._new_tag(),
            headers=(HeaderField("Allow", ALLOW),),
        )
        return (refused,)

    def _invite(self, request: Request) -> tuple[Response, ...]:
        known = self._calls.get(request.call_id)
        if known is not None:
            # A retransmission or a re-INVITE of a call we hold: the same answer again.
            return (known.ok,)
        tag = request.to_address.tag or self._new_tag()
        # RFC 3261 §12.1.1: the UAS copies Record-Route into its 2xx (and 18x) responses.
        routes = tuple(HeaderField("Record-Route", v) for v in request.get_all("Record-Route"))
        contact = HeaderField("Contact", self.contact)
        agent = HeaderField("User-Agent", USER_AGENT)
        trying = request.response(100, "Trying")
        ringing = request.response(180, "Ringing", to_tag=tag, headers=(*routes, contact, agent))
        body = sdp_body(self.host, _session_id(request.call_id))
        ok = with_body(
            request.response(200, "OK", to_tag=tag, headers=(*routes, contact, agent)),
            body,
            "application/sdp",
        )
        self._calls[request.call_id] = _Call(tag, ok)
        while len(self._calls) > self._max_calls:
            self._calls.popitem(last=False)
        return (trying, ringing, ok)


def with_body(message: Response, body: bytes, content_type: str) -> Response:
    """``message`` (built with ``Content-Length: 0``) carrying ``body`` instead."""
    headers = tuple(h for h in message.headers if h.name != "Content-Length")
    headers += (
        HeaderField("Content-Type", content_type),
        HeaderField("Content-Length", str(len(body))),
    )
    return Response(message.status_code, message.reason, headers, body)


def _session_id(call_id: str) -> int:
    # RFC 8866 §5.2: any number unique to the session; derived from the Call-ID.
    return int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:4], "big")


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class Dialog:
    """A confirmed dialog as its caller (UAC) sees it after the 200 (RFC 3261 §12.1.2)."""

    call_id: str
    local: str
    remote: str
    remote_target: str
    route_set: tuple[str, ...]
    invite_cseq: int


class TestCallMessages:
    """The requests of one test call, built as RFC 3261 §8.1.1 and §12.2.1.1 say.

    ``via_host`` names the call service in Via and Contact. Each request gets a new branch.
    """

    __test__ = False  # pytest: not a test class despite its name

    def __init__(
        self,
        *,
        to_uri: str,
        from_uri: str,
        via_host: str,
        call_id: str | None = None,
        from_tag: str | None = None,
        new_token: Callable[[], str] = new_token,
    ) -> None:
        self.to_uri = to_uri
        self.from_uri = from_uri
        self.via_host = _host_for_uri(via_host)
        self._new = new_token
        self.call_id = call_id or f"{new_token()}@{via_host}"
        self.from_tag = from_tag or new_token()
        self.invite_branch = self.branch()

    def branch(self) -> str:
        """A new RFC 3261 branch."""
        return f"{MAGIC_COOKIE}{self._new()}"

    def _via(self, branch: str) -> HeaderField:
        return HeaderField("Via", f"SIP/2.0/TLS {self.via_host};branch={branch}")

    def invite(self, body: bytes) -> Request:
        """The INVITE (CSeq 1) carrying the SDP offer ``body``.

        Raises ``SipError`` when the URIs are not valid SIP URIs.
        """
        headers = (
            self._via(self.invite_branch),
            HeaderField("Max-Forwards", "70"),
            HeaderField("From", f"<{self.from_uri}>;tag={self.from_tag}"),
            HeaderField("To", f"<{self.to_uri}>"),
            HeaderField("Call-ID", self.call_id),
            HeaderField("CSeq", "1 INVITE"),
            HeaderField("Contact", f"<sip:callservice@{self.via_host};transport=tls>"),
            HeaderField("User-Agent", USER_AGENT),
            HeaderField("Allow", ALLOW),
            HeaderField("Content-Type", "application/sdp"),
            HeaderField("Content-Length", str(len(body))),
        )
        return Request("INVITE", self.to_uri, headers, body)

    def ack_for_failure(self, invite: Request, response: Response) -> Request:
        """The ACK of a non-2xx final response: same branch, hop by hop (§17.1.1.3)."""
        headers = (
            self._via(self.invite_branch),
            HeaderField("Max-Forwards", "70"),
            HeaderField("From", invite.get("From") or ""),
            HeaderField("To", response.get("To") or ""),
            HeaderField("Call-ID", self.call_id),
            HeaderField("CSeq", f"{invite.cseq.number} ACK"),
            HeaderField("Content-Length", "0"),
        )
        return Request("ACK", invite.uri, headers)

    def dialog(self, invite: Request, ok: Response) -> Dialog:
        """The dialog a 2xx to ``invite`` establishes (§12.1.2).

        Raises ``ValueError`` when the 2xx has no Contact (the remote target is unknown).
        """
        contact = ok.get("Contact")
        if not contact:
            raise ValueError("the 200 OK carries no Contact; the call cannot be acknowledged")
        target = contact.split(",")[0].strip()
        if "<" in target:
            target = target[target.index("<") + 1 : target.index(">")]
        # RFC 3261 §12.1.2: the route set is the Record-Route list, reversed.
        routes = tuple(reversed(ok.get_all("Record-Route")))
        return Dialog(
            call_id=self.call_id,
            local=invite.get("From") or "",
            remote=ok.get("To") or "",
            remote_target=target,
            route_set=routes,
            invite_cseq=invite.cseq.number,
        )

    def in_dialog(self, dialog: Dialog, method: str, cseq: int) -> Request:
        """An ACK (of the 2xx) or BYE in ``dialog``: new branch, Route set, remote target."""
        headers = (
            self._via(self.branch()),
            *(HeaderField("Route", r) for r in dialog.route_set),
            HeaderField("Max-Forwards", "70"),
            HeaderField("From", dialog.local),
            HeaderField("To", dialog.remote),
            HeaderField("Call-ID", dialog.call_id),
            HeaderField("CSeq", f"{cseq} {method}"),
            HeaderField("User-Agent", USER_AGENT),
            HeaderField("Content-Length", "0"),
        )
        return Request(method, dialog.remote_target, headers)
