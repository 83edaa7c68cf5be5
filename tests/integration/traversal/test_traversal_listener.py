"""The connector's premises-side listener, with real processes: a PBX that dials its trunk.

Kamailio (Debian's, TLS module) plays the premises PBX: a UA sends it an INVITE over UDP,
and Kamailio forwards it itself to its trunk — the connector's TLS listener, presenting
its own client certificate for ``pbx.example.test``. The connector relays to the edge
(``hybridge edge serve``), which relays to a cloud peer; responses come back over the
connection each request arrived on (``hxc`` in the connector's Via), and in-dialog
requests follow the connector's Record-Route back to the listener.

Rejecting twins, each on the same listener while the others go on: an address outside the
allow-list, a TLS client certificate with the wrong name, no client certificate, a peer
sending one byte a second (header timeout), and a 10 MB message.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from traversalkit import (
    CLOUD,
    CONNECTOR,
    CONNECTOR_HOST,
    EDGE,
    PBX,
    ConnectorProcess,
    EdgeProcess,
    Kamailio,
    Pki,
    SipPeer,
    answer,
    client_ssl,
    expect,
    prepare_edge_dir,
    request,
    start_connector,
    start_edge,
    start_kamailio,
)

from hybridge.connector.demo_run import free_port
from hybridge.core.sip import Request, Response, parse_datagram

HEADER_TIMEOUT = 2.0
INBOUND = "hybridge_connector_traversal_premises_inbound_connections"
REFUSED = "hybridge_connector_traversal_listener_refused_total"
CLOSED = "hybridge_connector_traversal_connections_closed_total"

# Kamailio as a PBX: an initial request goes to the trunk (the connector's listener);
# an in-dialog one follows its Route set (RFC 3261 §16.12, rr module's loose_route).
_KAMAILIO_ROUTE = """    if (loose_route()) {
        forward();
        exit;
    }
    $du = "sip:127.0.0.1:%d;transport=tls";
    forward();
    exit;"""


@dataclass
class Stack:
    pki: Pki
    edge: EdgeProcess
    connector: ConnectorProcess
    listen_port: int
    kamailio: Kamailio

    def diagnostics(self) -> str:
        """The connector's and Kamailio's recent log, for assertion messages."""
        return (
            "connector:\n"
            + self.connector.log()[-4000:]
            + "\nkamailio:\n"
            + "\n".join(self.kamailio.lines[-40:])
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    edge_dir = tmp_path_factory.mktemp("edge")
    prepare_edge_dir(edge_dir, pki)
    edge = start_edge(edge_dir, pki)
    listen_port = free_port()
    kamailio = start_kamailio(
        tmp_path_factory.mktemp("kam"),
        pki.leaf("kamailio-pbx", dns=[PBX]),
        pki.root_file(),
        route=_KAMAILIO_ROUTE % listen_port,
        extra_modules=("pv", "rr"),
    )
    connector = start_connector(
        tmp_path_factory.mktemp("connector-role"),
        pki,
        {"HYBRIDGE_TRAVERSAL_HEADER_TIMEOUT": str(HEADER_TIMEOUT)},
    )
    try:
        identity = pki.leaf("traversal", dns=[CONNECTOR])
        done = connector.traversal(
            "set", "--edge", f"127.0.0.1:{edge.traversal_port}", "--edge-name", EDGE,
            "--premises", f"sips:127.0.0.1:{kamailio.tls_port}", "--premises-name", PBX,
            "--cert", str(identity.chain), "--key", str(identity.key), "--keepalive", "0.5",
            "--listen", f"127.0.0.1:{listen_port}", "--listen-transport", "tls",
            "--listen-allow", "127.0.0.1", "--listen-require-client-cert",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        connector.wait_log(rf"listening for the premises server on 127\.0\.0\.1:{listen_port}")
        connector.wait_metric("hybridge_connector_traversal_connected", 1.0)
        yield Stack(pki, edge, connector, listen_port, kamailio)
    finally:
        connector.stop()
        kamailio.stop()
        edge.stop()


def _cloud(stack: Stack) -> SipPeer:
    context = client_ssl(stack.pki, stack.pki.leaf("cloud", dns=[CLOUD]))
    # The edge may lose the very first handshake on a listener (see test_traversal_call).
    for _ in range(5):
        try:
            peer = SipPeer.connect(stack.edge.cloud_port, context, timeout=2.0)
        except (ssl.SSLError, TimeoutError):
            continue
        peer.sock.settimeout(10.0)
        # The edge relays to its newest cloud connection: make sure this one is admitted.
        peer.send(request("OPTIONS", "sip:127.0.0.1", branch="z9hG4bKo", call_id="o", cseq=1))
        assert isinstance(peer.recv(timeout=10), Response)
        return peer
    raise AssertionError("the edge never completed a cloud handshake")


class Ua:
    """The premises user agent: SIP over UDP to Kamailio, parsed with our codec."""

    def __init__(self, kamailio_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.kamailio = ("127.0.0.1", kamailio_port)

    def send(self, method: str, uri: str, *, branch: str, cseq: int, to_tag: str | None = None,
             routes: tuple[str, ...] = ()) -> None:  # fmt: skip
        to = "<sip:alice@callservice.example.test>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch}",
            *(f"Route: {r}" for r in routes),
            "Max-Forwards: 70",
            "From: <sip:bob@premises.example.test>;tag=ua1",
            f"To: {to}",
            "Call-ID: kam-call-1",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:bob@127.0.0.1:{self.port}>",
            "Content-Length: 0",
            "",
            "",
        ]
        self.sock.sendto("\r\n".join(lines).encode(), self.kamailio)

    def recv(self, timeout: float = 10.0) -> Response:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65536)
        message = parse_datagram(data)
        assert isinstance(message, Response), message
        return message

    def close(self) -> None:
        self.sock.close()


def _expect(peer: SipPeer, kind: type, **checks: object) -> Request | Response:
    return expect(peer, kind, timeout=10, **checks)


def _answer(peer: SipPeer, req: Request, status: int, reason: str) -> None:
    contact = "<sip:alice@cloud.example.test;transport=tls>"
    answer(peer, req, status, reason, to_tag="cloud1", contact=contact)


def _tls_client(stack: Stack, name: str | None) -> ssl.SSLSocket:
    """A TLS connection to the listener, presenting a certificate for ``name`` (or none)."""
    context = ssl.create_default_context(cafile=str(stack.pki.root_file()))
    context.check_hostname = False
    if name is not None:
        identity = stack.pki.leaf(f"premises-client-{name}", dns=[name])
        context.load_cert_chain(str(identity.chain), str(identity.key))
    raw = socket.create_connection(("127.0.0.1", stack.listen_port), timeout=10)
    try:
        return context.wrap_socket(raw)
    except TimeoutError:
        raise AssertionError(stack.diagnostics()) from None


def _closed(sock: socket.socket, timeout: float) -> bool:
    """True when the connector closes ``sock`` (EOF or reset) within ``timeout``."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError, OSError):
        return True
    return False


def test_kamailio_places_a_call_to_the_cloud_through_the_listener(stack: Stack) -> None:
    cloud = _cloud(stack)
    ua = Ua(stack.kamailio.udp_port)
    try:
        ua.send("INVITE", "sip:alice@callservice.example.test", branch="z9hG4bKkam1", cseq=1)
        try:
            invite = _expect(cloud, Request, method="INVITE")
        except TimeoutError:
            raise AssertionError(stack.diagnostics()) from None
        assert isinstance(invite, Request)
        # edge, connector (from premises connection n: hxc), Kamailio (TLS), the UA (UDP).
        hosts = [v.host for v in invite.via]
        assert hosts == ["127.0.0.1", CONNECTOR_HOST, "127.0.0.1", "127.0.0.1"], hosts
        assert invite.via[1].param("hxc") and invite.via[2].transport == "TLS"
        # The connector's Record-Route names its listener; the edge's two are above it.
        record_route = invite.get_all("Record-Route")
        assert len(record_route) == 3
        assert record_route[2] == f"<sip:127.0.0.1:{stack.listen_port};transport=tls;lr;hxr>"
        stack.connector.wait_log(r"premises listener 127\.0\.0\.1:\d+ admitted 127\.0\.0\.1:\d+")
        assert stack.connector.metric(INBOUND) == 1.0

        for status, reason in ((100, "Trying"), (180, "Ringing"), (200, "OK")):
            _answer(cloud, invite, status, reason)
            got = ua.recv()
            assert got.status_code == status and [v.port for v in got.via] == [ua.port]
        # RFC 3261 §12.1.2: the UAC's route set is the Record-Route list reversed: the
        # connector's listener first, so Kamailio sends in-dialog requests to it.
        routes = tuple(reversed(got.get_all("Record-Route")))
        assert routes[0].startswith(f"<sip:127.0.0.1:{stack.listen_port};")

        ua.send("ACK", "sip:alice@cloud.example.test;transport=tls", branch="z9hG4bKkam2",
                cseq=1, to_tag="cloud1", routes=routes)  # fmt: skip
        ack = _expect(cloud, Request, method="ACK", call_id="kam-call-1")
        assert isinstance(ack, Request) and ack.route == ()  # the connector popped its own

        ua.send("BYE", "sip:alice@cloud.example.test;transport=tls", branch="z9hG4bKkam3",
                cseq=2, to_tag="cloud1", routes=routes)  # fmt: skip
        bye = _expect(cloud, Request, method="BYE")
        assert isinstance(bye, Request) and bye.route == ()
        _answer(cloud, bye, 200, "OK")
        done = ua.recv()
        assert done.status_code == 200 and done.cseq.method == "BYE"
    finally:
        ua.close()
        cloud.close()


def test_a_connection_from_an_address_not_allowed_is_refused(stack: Stack) -> None:
    before = stack.connector.metric(REFUSED, reason="address_not_allowed")
    start = len(stack.connector.log())
    # 127.0.0.2 is loopback too, but not in --listen-allow 127.0.0.1.
    raw = socket.create_connection(
        ("127.0.0.1", stack.listen_port), timeout=10, source_address=("127.0.0.2", 0)
    )
    try:
        assert _closed(raw, 5.0)  # closed before any TLS handshake
    finally:
        raw.close()
    stack.connector.wait_log(
        r"premises listener 127\.0\.0\.1:\d+ refused 127\.0\.0\.2:\d+: 127\.0\.0\.2 is not in "
        r"the allow-list \(127\.0\.0\.1/32\) \[reason address_not_allowed\]",
        start=start,
    )
    assert stack.connector.metric(REFUSED, reason="address_not_allowed") == before + 1


def test_a_tls_premises_client_with_the_wrong_name_is_refused(stack: Stack) -> None:
    start = len(stack.connector.log())
    sock = _tls_client(stack, "intruder.example.test")  # same trusted root, wrong name
    try:
        sock.sendall(request("OPTIONS", "sip:x", branch="z9hG4bKi", call_id="i", cseq=1))
        assert _closed(sock, 5.0)
    finally:
        sock.close()
    stack.connector.wait_log(
        r"refused 127\.0\.0\.1:\d+: peer certificate identity unacceptable: presented SAN "
        r"DNS:intruder\.example\.test; the premises listener expects pbx\.example\.test "
        r"\[reason name_mismatch\]",
        start=start,
    )
    assert stack.connector.metric(REFUSED, reason="name_mismatch") >= 1


def test_a_tls_premises_client_without_a_certificate_is_refused(stack: Stack) -> None:
    start = len(stack.connector.log())
    try:
        sock = _tls_client(stack, None)
    except (ssl.SSLError, OSError):
        pass  # TLS 1.2: the handshake itself fails
    else:
        try:
            # TLS 1.3: the client finishes first; the server's refusal arrives on read.
            assert _closed(sock, 5.0)
        finally:
            sock.close()
    stack.connector.wait_log(
        r"refused 127\.0\.0\.1:\d+: peer presented no client certificate; mutual TLS is "
        r"required on this listener \[reason no_certificate\]",
        start=start,
    )


def test_a_slow_peer_is_timed_out_while_others_go_on(stack: Stack) -> None:
    good = _tls_client(stack, PBX)
    slow = _tls_client(stack, PBX)
    start = len(stack.connector.log())
    before = stack.connector.metric(CLOSED, side="premises", reason="header_timeout")
    try:
        began = time.monotonic()
        closed_after = None
        for byte in b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TLS slow.example.test\r\n":
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - began
                break
            if _closed(slow, 1.0):  # one byte a second
                closed_after = time.monotonic() - began
                break
        assert closed_after is not None, "the slow peer was never closed"
        assert HEADER_TIMEOUT <= closed_after < HEADER_TIMEOUT + 3, closed_after
        stack.connector.wait_log(
            r"premises connection \d+ left a message incomplete for 2s", start=start
        )
        assert stack.connector.metric(CLOSED, side="premises", reason="header_timeout") == (
            before + 1
        )
        _still_answered(good)
    finally:
        slow.close()
        good.close()


def test_an_oversize_message_closes_its_connection_only(stack: Stack) -> None:
    good = _tls_client(stack, PBX)
    big = _tls_client(stack, PBX)
    start = len(stack.connector.log())
    try:
        head = request(
            "MESSAGE", "sip:alice@callservice.example.test", branch="z9hG4bKbig",
            call_id="big", cseq=1,
        ).replace(b"Content-Length: 0", b"Content-Length: 10000000")  # fmt: skip
        # The connector may close while we are still sending: that is the point.
        with contextlib.suppress(OSError):
            big.sendall(head + b"x" * 200_000)
        assert _closed(big, 5.0)
        stack.connector.wait_log(
            r"premises connection \d+ sent a message we cannot frame: .*; connection closed",
            start=start,
        )
        _still_answered(good)
    finally:
        big.close()
        good.close()


def _still_answered(sock: ssl.SSLSocket) -> None:
    # Max-Forwards 0: the connector answers 483 itself (RFC 3261 §16.3 step 3) over the
    # connection the request came on: this connection is still served.
    sock.sendall(
        request("OPTIONS", "sip:x", branch="z9hG4bKg", call_id="g", cseq=1, max_forwards=0)
    )
    peer = SipPeer(sock)
    answer = peer.recv(timeout=10)
    assert isinstance(answer, Response) and answer.status_code == 483


def test_the_listener_is_shown_by_the_cli_and_a_bad_one_refused(stack: Stack) -> None:
    shown = stack.connector.traversal("show")
    assert shown.returncode == 0
    assert (
        f"127.0.0.1:{stack.listen_port} tls (from 127.0.0.1/32, client certificate required)"
        in shown.stdout
    )
    refused = stack.connector.traversal(
        "set", "--edge", f"127.0.0.1:{stack.edge.traversal_port}", "--edge-name", EDGE,
        "--premises", "sip:127.0.0.1;transport=tcp",
        "--listen", "127.0.0.1:5070", "--listen-require-client-cert",
    )  # fmt: skip
    assert refused.returncode == 2
    assert "client certificates can be required only on a TLS listener" in refused.stderr
    # Nothing changed: the listener is still the TLS one.
    assert f"127.0.0.1:{stack.listen_port} tls" in stack.connector.traversal("show").stdout
