"""The pieces of a stateless SIP proxy (RFC 3261 §16.11) that every Hybridge relay shares.

The edge (``edge.relay``) and the connector (``connector.traversal_relay``) each run a
stateless relay; roles never import each other (DESIGN.md §4), so what they have in common
lives here, pure: no sockets, no clock, keys passed in.

- ``stateless_branch`` / ``branch_digest_3261``: our Via branch as a hash of what identifies
  the transaction (§16.11), so retransmissions, the CANCEL of an INVITE and the ACK of a
  non-2xx response all get the branch of the original request without any state.
- ``ConnectionTags`` / ``via_mac``: a connection id (or a side name) carried in our Via and
  authenticated with an HMAC under a per-process key (RFC 5923-style connection reuse: a
  response goes back over the connection its request arrived on), so a peer cannot steer a
  response into another peer's connection by forging the id.
- ``sent_by``, ``record_route_uri``, ``route_names_proxy``: our Record-Route value and the
  test, on the way back, that a Route value names us (§16.4) and is to be popped.

Written by hand: these are a few lines of policy over ``hashlib``/``hmac``; no SIP library
on PyPI exposes them apart from its own transaction layer (see ``core.sip``'s docstring).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac

from hybridge.core.hostport import join_host_port
from hybridge.core.sip.message import Request

#: RFC 3261 §8.1.1.7: every branch we create starts with the magic cookie.
MAGIC_COOKIE = "z9hG4bK"
#: RFC 3261 §16.6 step 3: the value a proxy adds when a request has no Max-Forwards.
DEFAULT_MAX_FORWARDS = 70
#: Requests that create a dialog (RFC 3261 §12.1, RFC 6665 §4.1, RFC 3515): Record-Routed.
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
#: Hex digits of the SHA-256 digest kept in a branch (96 bits: collisions are not a worry
#: among the transactions one relay sees).
BRANCH_DIGEST_LENGTH = 24
#: Hex digits of the HMAC-SHA-256 kept in a Via tag (48 bits: a forger gets one guess per
#: response, and a wrong guess only gets that response dropped).
TAG_MAC_LENGTH = 12
#: Entries ``ConnectionTags`` keeps before starting over (a bound on memory).
DEFAULT_TAG_CACHE_SIZE = 4096


def branch_digest_3261(
    host: bytes, port: int | None, branch: bytes, *, scope: bytes = b""
) -> bytes:
    """The hex digest (``BRANCH_DIGEST_LENGTH`` ASCII bytes) for an RFC 3261 incoming top Via.

    ``host``/``port``/``branch`` are that Via's sent-by and branch (a missing port hashes as
    ``None``, as it always has: changing it would change every branch in flight). ``scope``,
    when given, separates relays that share a key space (the connector hashes the side the
    request leaves on). The fast path of ``edge.relay`` calls this on raw bytes; the full
    path reaches it through ``stateless_branch``, so the two agree byte for byte.
    """
    # RFC 3261 §16.11: with a magic-cookie branch the incoming branch and sent-by identify
    # the transaction; the CANCEL and the non-2xx ACK of an INVITE carry the same ones.
    port_text = b"None" if port is None else b"%d" % port
    if scope:
        material = b"3261|%s|%s|%s|%s" % (scope, host, port_text, branch)
    else:
        material = b"3261|%s|%s|%s" % (host, port_text, branch)
    # hex of the first BRANCH_DIGEST_LENGTH / 2 bytes: hexdigest()[:24], as bytes, in one step
    return binascii.hexlify(hashlib.sha256(material).digest()[: BRANCH_DIGEST_LENGTH // 2])


def stateless_branch(request: Request, *, marker: str, scope: str = "") -> str:
    """Our Via branch for ``request``: ``z9hG4bK-<marker><digest>`` (RFC 3261 §16.11).

    The same for a retransmission, for the CANCEL of an INVITE and for the ACK of a non-2xx
    final response. ``marker`` names the relay (``hb`` edge, ``hx`` connector); ``scope`` is
    hashed in too (see ``branch_digest_3261``). Raises ``SipError`` only as reading the
    request's headers does (a request that reached a relay has been parsed already).
    """
    top = request.via[0]
    incoming = top.branch
    if incoming is not None and incoming.startswith(MAGIC_COOKIE):
        digest = branch_digest_3261(
            top.host.encode("utf-8", "surrogateescape"),
            top.port,
            incoming.encode("utf-8", "surrogateescape"),
            scope=scope.encode("utf-8", "surrogateescape"),
        ).decode()
    else:
        # RFC 3261 §16.11 for RFC 2543 peers (no magic cookie): hash To/From tags, Call-ID,
        # Request-URI, top Via and CSeq number. The CSeq method is left out on purpose, as
        # §16.11 leaves it out: an RFC 2543 ACK/CANCEL must match its INVITE's branch.
        fields = [
            "2543",
            *((scope,) if scope else ()),
            request.to_address.tag or "",
            request.from_address.tag or "",
            request.call_id,
            request.uri,
            top.value,
            str(request.cseq.number),
        ]
        material = "|".join(fields).encode("utf-8", "surrogateescape")
        digest = hashlib.sha256(material).hexdigest()[:BRANCH_DIGEST_LENGTH]
    return f"{MAGIC_COOKIE}-{marker}{digest}"


def via_mac(key: bytes, message: str) -> str:
    """The ``TAG_MAC_LENGTH`` hex digits of HMAC-SHA-256(``key``, ``message``).

    Compare with ``hmac.compare_digest``, never ``==`` (a timing oracle would let a peer
    find the MAC digit by digit).
    """
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:TAG_MAC_LENGTH]


def via_mac_matches(key: bytes, message: str, mac: str) -> bool:
    """True when ``mac`` is ``via_mac(key, message)``, compared in constant time.

    False (never an exception) for a MAC from another key, a truncated or padded one, or
    one with non-ASCII characters (which ``hmac.compare_digest`` would raise on).
    """
    return mac.isascii() and hmac.compare_digest(mac, via_mac(key, message))


class ConnectionTags:
    """Connection ids in our Via, as ``<id>.<mac>`` under ``key`` (RFC 5923-style reuse).

    ``domain`` is prefixed to the id before the MAC so tags made for one purpose never
    verify for another under the same key (the connector's ``hxc`` uses ``conn|`` while its
    ``hxs`` side tags MAC the bare side name). MACs are cached (``cache_size`` entries, then
    the cache starts over): the edge's fast path computes one per message.
    """

    __slots__ = ("_cache", "_cache_size", "_domain", "_key")

    def __init__(
        self, key: bytes, *, domain: str = "", cache_size: int = DEFAULT_TAG_CACHE_SIZE
    ) -> None:
        if not key:
            raise ValueError("a connection tag key must not be empty (use 32 random bytes)")
        self._key = key
        self._domain = domain
        self._cache_size = cache_size
        self._cache: dict[int, str] = {}

    def mac(self, conn_id: int) -> str:
        """The MAC part of ``conn_id``'s tag (``TAG_MAC_LENGTH`` hex digits)."""
        mac = self._cache.get(conn_id)
        if mac is None:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()  # a bound on memory; recomputing is cheap
            mac = via_mac(self._key, f"{self._domain}{conn_id}")
            self._cache[conn_id] = mac
        return mac

    def tag(self, conn_id: int) -> str:
        """``<conn_id>.<mac>``, the Via parameter value naming ``conn_id``."""
        return f"{conn_id}.{self.mac(conn_id)}"

    def verify(self, tag: str | None) -> int | None:
        """The connection id ``tag`` names when its MAC is ours, else None.

        None for a missing tag, a non-decimal id, and a MAC made under another key or
        domain, truncated or padded: a response carrying it is forged or not ours, and is
        dropped (RFC 3261 §16.7 step 3 assumes the top Via is the proxy's own).
        """
        conn_text, _, mac = (tag or "").partition(".")
        # ``isascii``: str.isdigit() is also true for digits int() refuses ("²"), and
        # hmac.compare_digest raises TypeError on a non-ASCII str instead of saying no.
        if not (conn_text.isascii() and conn_text.isdigit() and mac.isascii()):
            return None
        conn_id = int(conn_text)
        if not hmac.compare_digest(mac, self.mac(conn_id)):
            return None
        return conn_id


def sent_by(host: str, port: int) -> str:
    """``host:port`` as a Via sent-by or URI hostport; an IPv6 literal bracketed (§25.1)."""
    return join_host_port(host, port)


def record_route_uri(host: str, port: int, *, transport: str, param: str) -> str:
    """Our Record-Route value: ``<sip:host:port;transport=..;lr;param>``.

    ``lr`` (RFC 3261 §16.6 step 4, §19.1.1): we are a loose router. ``param`` (``hbr=cloud``,
    ``hxr``) marks the URI as ours so ``route_names_proxy`` recognises it on the way back.
    """
    return f"<sip:{sent_by(host, port)};transport={transport};lr;{param}>"


def route_names_proxy(uri: str, *, host: str, param: str, port: int | None = None) -> bool:
    """True when the Route value ``uri`` names this proxy and is to be popped (RFC 3261 §16.4).

    Ours means: a ``sip``/``sips`` URI with no user part, on ``host`` (case-insensitive,
    brackets ignored), on ``port`` when one is given (a URI without a port means 5060),
    carrying the URI parameter ``param``. Anything else is some other element's Route.
    """
    # RFC 3261 §16.4: "if the first value in the Route header field indicates this proxy",
    # the proxy removes it. Our own marker parameter is what indicates us: a Route on our
    # host without it (a peer's own Route to the same address) is left alone.
    scheme, _, rest = uri.strip("<>").partition(":")
    if scheme.lower() not in ("sip", "sips") or "@" in rest:
        return False
    hostport, _, params = rest.partition(";")
    if hostport.startswith("["):
        uri_host, _, port_text = hostport[1:].partition("]")
        port_text = port_text.lstrip(":")
    else:
        uri_host, _, port_text = hostport.partition(":")
    if uri_host.lower() != host.lower().strip("[]"):
        return False
    if port is not None and (port_text or "5060") != str(port):
        return False
    wanted = param.lower()
    return any(p.split("=", 1)[0].strip().lower() == wanted for p in params.split(";"))
