"""Interop with Kamailio 5 and its TLS module, on 127.0.0.1.

- Kamailio as a stand-in cloud peer: it relays a UDP request to the edge's cloud listener
  over TLS with its client certificate; the edge relays it to the connector, and the
  answers come back through Kamailio. Twin: the same Kamailio with a certificate for
  another name is refused by the edge with its one log line, and nothing is relayed.
- Kamailio as the cloud's TLS server: the edge dials it (Kamailio verifies the edge's
  client certificate), verifies Kamailio's name, and relays a call from the premises.
- Kamailio as the premises SIP server holding the traversal connection (a TLS client
  with the connector's certificate, as the connector's traversal client would be): a call
  from the cloud is answered by Kamailio. Twin: with the cloud's certificate it is refused
  on the traversal listener.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgekit import (
    CLOUD,
    CONNECTOR,
    EdgeProcess,
    Pki,
    SipPeer,
    client_ssl,
    prepare_edge_dir,
    request,
    start_edge,
)
from kamkit import free_port, start_kamailio

from hybridge.core.sip import Pong, Request, Response, parse_datagram, serialize


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def kamailio_server_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def edge(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory, kamailio_server_port: int
) -> Iterator[EdgeProcess]:
    directory = tmp_path_factory.mktemp("edge")
    prepare_edge_dir(directory, pki, cloud_peer=f"127.0.0.1:{kamailio_server_port}")
    process = start_edge(directory, pki)
    yield process
    process.stop()


@pytest.fixture
def connector(pki: Pki, edge: EdgeProcess) -> Iterator[SipPeer]:
    peer = SipPeer.connect(
        edge.traversal_port, client_ssl(pki, pki.leaf("connector", dns=[CONNECTOR]))
    )
    peer.send(b"\r\n\r\n")
    assert isinstance(peer.recv(), Pong)
    yield peer
    peer.close()


def _udp_request(udp: socket.socket, method: str, call_id: str) -> bytes:
    port = udp.getsockname()[1]
    wire = request(method, "sip:bob@premises.example.test", branch=f"z9hG4bK{call_id}",
                   call_id=call_id, cseq=1, via_host="127.0.0.1")  # fmt: skip
    return wire.replace(b"SIP/2.0/TLS 127.0.0.1:5061", b"SIP/2.0/UDP 127.0.0.1:%d" % port)


def _forwarding_route(edge: EdgeProcess) -> str:
    # Stateless: Kamailio's core relays the request and routes replies back by Via.
    return f"""    if (proto==UDP) {{
        forward_tls("127.0.0.1", {edge.cloud_port});
        exit;
    }}
    drop;"""


def test_kamailio_as_cloud_peer_carries_a_call_through_the_edge(
    pki: Pki, edge: EdgeProcess, connector: SipPeer, tmp_path: Path
) -> None:
    identity = pki.leaf("kamailio-cloud", dns=[CLOUD])
    kamailio = start_kamailio(
        tmp_path / "kam", identity, pki.root_file(), route=_forwarding_route(edge)
    )
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    try:
        udp.sendto(_udp_request(udp, "INVITE", "kam1"), ("127.0.0.1", kamailio.udp_port))
        invite = connector.recv()
        assert isinstance(invite, Request) and invite.method == "INVITE"
        # the edge's Via, then Kamailio's TLS Via, then the UA's UDP Via
        assert [v.transport for v in invite.via] == ["TLS", "TLS", "UDP"]
        assert invite.via[1].port == kamailio.tls_port
        for status, reason in ((180, "Ringing"), (200, "OK")):
            connector.send(serialize(invite.response(status, reason, to_tag="uas1")))
            answer = parse_datagram(udp.recvfrom(65535)[0])
            assert isinstance(answer, Response) and answer.status_code == status
            assert [v.branch for v in answer.via] == ["z9hG4bKkam1"]
    finally:
        udp.close()
        kamailio.stop()
    line = edge.wait_line(r"cloud listener: admitted .* as zone cloud \(san_dns callservice")
    assert line


def test_kamailio_with_a_wrong_certificate_is_refused(
    pki: Pki, edge: EdgeProcess, connector: SipPeer, tmp_path: Path
) -> None:
    identity = pki.leaf("kamailio-wrong", dns=["kamailio.example.test"])
    start = len(edge.lines)
    before = edge.metric(
        "hybridge_edge_connections_refused_total", side="cloud", reason="name_mismatch"
    )
    kamailio = start_kamailio(
        tmp_path / "kam", identity, pki.root_file(), route=_forwarding_route(edge)
    )
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(2)
    try:
        udp.sendto(_udp_request(udp, "INVITE", "kam2"), ("127.0.0.1", kamailio.udp_port))
        line = edge.wait_line(
            r"cloud listener: peer certificate identity unacceptable", start=start
        )
        assert (
            "presented SAN DNS:kamailio.example.test; zone expects callservice.example.test"
            in line.string
        )
        with pytest.raises(TimeoutError):
            connector.recv(timeout=1)
        with pytest.raises(TimeoutError):
            udp.recvfrom(65535)
    finally:
        udp.close()
        kamailio.stop()
    after = edge.metric(
        "hybridge_edge_connections_refused_total", side="cloud", reason="name_mismatch"
    )
    assert after >= before + 1


def test_edge_dials_kamailio_as_the_cloud_server(
    pki: Pki, edge: EdgeProcess, connector: SipPeer, tmp_path: Path, kamailio_server_port: int
) -> None:
    identity = pki.leaf("kamailio-server", dns=[CLOUD])
    route = """    if (method=="INVITE" || method=="OPTIONS") {
        sl_send_reply("200", "OK");
        exit;
    }
    drop;"""
    kamailio = start_kamailio(
        tmp_path / "kam", identity, pki.root_file(), route=route, verify_clients=True,
        extra_modules=("sl",), tls_port=kamailio_server_port,
    )  # fmt: skip
    try:
        connector.send(
            request("OPTIONS", f"sip:alice@{CLOUD}", branch="z9hG4bKkd1", call_id="kd1", cseq=1,
                    via_host="pbx.premises.example.test")
        )  # fmt: skip
        answer = connector.recv(timeout=10)
        assert isinstance(answer, Response) and answer.status_code == 200
        assert [v.branch for v in answer.via] == ["z9hG4bKkd1"]
    finally:
        kamailio.stop()
    line = edge.wait_line(r"cloud side: dialled 127\.0\.0\.1:\d+ for zone cloud")
    assert line


def _premises_route(edge: EdgeProcess) -> str:
    # UDP from the test opens the traversal connection (Kamailio is the TLS client, with the
    # connector's certificate, as the connector would be); requests arriving over it are
    # calls from the cloud, answered by Kamailio as the premises SIP server.
    return f"""    if (proto==UDP) {{
        forward_tls("127.0.0.1", {edge.traversal_port});
        exit;
    }}
    if (proto==TLS) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    drop;"""


def _open_traversal(kamailio_udp: int) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    try:
        wire = request("OPTIONS", "sip:127.0.0.1", branch="z9hG4bKtrav", call_id="trav",
                       cseq=1, via_host="127.0.0.1")  # fmt: skip
        port = udp.getsockname()[1]
        udp.sendto(
            wire.replace(b"SIP/2.0/TLS 127.0.0.1:5061", b"SIP/2.0/UDP 127.0.0.1:%d" % port),
            ("127.0.0.1", kamailio_udp),
        )
        answer = parse_datagram(udp.recvfrom(65535)[0])
        # the OPTIONS was for the edge: answered by the edge itself, through Kamailio
        assert isinstance(answer, Response) and answer.status_code == 200
        assert answer.to_address.tag == "hb-edge"
    finally:
        udp.close()


def test_kamailio_as_premises_server_answers_a_call_from_the_cloud(
    pki: Pki, edge: EdgeProcess, tmp_path: Path
) -> None:
    identity = pki.leaf("kamailio-premises", dns=[CONNECTOR])
    kamailio = start_kamailio(
        tmp_path / "kam", identity, pki.root_file(), route=_premises_route(edge),
        extra_modules=("sl",),
    )  # fmt: skip
    cloud = SipPeer.connect(edge.cloud_port, client_ssl(pki, pki.leaf("cloud-k", dns=[CLOUD])))
    try:
        start = len(edge.lines)
        _open_traversal(kamailio.udp_port)
        edge.wait_line(r"traversal listener: admitted .* as zone connector", start=start)
        cloud.send(
            request("INVITE", "sip:bob@premises.example.test", branch="z9hG4bKkp1",
                    call_id="kp1", cseq=1)
        )  # fmt: skip
        ok = cloud.recv(timeout=10)
        assert isinstance(ok, Response) and ok.status_code == 200 and ok.cseq.method == "INVITE"
        assert [v.branch for v in ok.via] == ["z9hG4bKkp1"]
        assert "kamailio" in (ok.get("Server") or "")  # answered by Kamailio itself
    finally:
        cloud.close()
        kamailio.stop()


def test_kamailio_premises_with_the_cloud_certificate_is_refused_on_traversal(
    pki: Pki, edge: EdgeProcess, tmp_path: Path
) -> None:
    identity = pki.leaf("kamailio-premises-wrong", dns=[CLOUD])
    kamailio = start_kamailio(
        tmp_path / "kam", identity, pki.root_file(), route=_premises_route(edge),
        extra_modules=("sl",),
    )  # fmt: skip
    start = len(edge.lines)
    try:
        with pytest.raises(TimeoutError):
            _open_traversal(kamailio.udp_port)
        line = edge.wait_line(
            r"traversal listener: peer certificate identity unacceptable", start=start
        )
        assert f"presented SAN DNS:{CLOUD}; zone expects {CONNECTOR}" in line.string
    finally:
        kamailio.stop()
