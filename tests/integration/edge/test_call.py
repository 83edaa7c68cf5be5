"""Whole calls through a real ``hybridge edge serve`` process on 127.0.0.1.

A test "cloud" (Python ssl client with the call service's certificate) and a test
"connector" (Python ssl client holding the traversal connection, answering as a UAS) talk
SIP through the edge: INVITE/100/180/200/ACK/BYE/200 one way, then the other way, with
the relay's Via, Max-Forwards and Record-Route checked on the far side.
"""

from __future__ import annotations

import queue
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgekit import (
    CLOUD,
    CONNECTOR,
    EdgeProcess,
    Pki,
    SipPeer,
    answer,
    client_ssl,
    expect,
    prepare_edge_dir,
    request,
    running_edge,
    start_edge,
)

from hybridge.core.sip import Pong, Request, Response, serialize


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def edge(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with running_edge(tmp_path_factory.mktemp("edge"), pki) as process:
        yield process


def _cloud(pki: Pki, edge: EdgeProcess) -> SipPeer:
    return SipPeer.connect(edge.cloud_port, client_ssl(pki, pki.leaf("cloud", dns=[CLOUD])))


def _connector(pki: Pki, edge: EdgeProcess) -> SipPeer:
    peer = SipPeer.connect(
        edge.traversal_port, client_ssl(pki, pki.leaf("connector", dns=[CONNECTOR]))
    )
    # RFC 5626 §3.5.1 keep-alive: a CRLF pong proves the edge admitted the connection.
    peer.send(b"\r\n\r\n")
    assert isinstance(peer.recv(), Pong)
    return peer


def _answer(peer: SipPeer, req: Request, status: int, reason: str) -> None:
    contact = "<sip:bob@uas.example.test;transport=tls>"
    answer(peer, req, status, reason, to_tag="callee1", contact=contact)


def _routes(response: Response) -> tuple[str, ...]:
    # RFC 3261 §12.1.2: the UAC's route set is the Record-Route list in reverse order.
    return tuple(reversed(response.get_all("Record-Route")))


def test_call_from_the_cloud_reaches_the_connector_and_back(pki: Pki, edge: EdgeProcess) -> None:
    connector = _connector(pki, edge)
    cloud = _cloud(pki, edge)
    try:
        invite = request(
            "INVITE", "sip:bob@premises.example.test", branch="z9hG4bKc1", call_id="call-1", cseq=1
        )
        cloud.send(invite)
        got = expect(connector, Request, method="INVITE", max_forwards=69)
        assert isinstance(got, Request)
        top = got.via[0]
        assert top.port == edge.traversal_port and top.param("hbc")
        assert top.branch and top.branch.startswith("z9hG4bK")
        assert got.via[1].branch == "z9hG4bKc1"
        # RFC 5658 double Record-Route: traversal-side URI on top, cloud side below it.
        assert [r.uri for r in got.record_route] == [
            f"sip:127.0.0.1:{edge.traversal_port};transport=tls;lr;hbr=traversal",
            f"sip:127.0.0.1:{edge.cloud_port};transport=tls;lr;hbr=cloud",
        ]
        # RFC 3261 §16.11: a retransmission is relayed with the very same branch.
        cloud.send(invite)
        again = expect(connector, Request, method="INVITE")
        assert isinstance(again, Request) and again.via[0].branch == top.branch

        for status, reason in ((100, "Trying"), (180, "Ringing"), (200, "OK")):
            _answer(connector, got, status, reason)
            response = expect(cloud, Response, status_code=status)
            assert isinstance(response, Response)
            assert [v.branch for v in response.via] == ["z9hG4bKc1"]
        routes = _routes(response)
        assert len(routes) == 2

        ack = request(
            "ACK", "sip:bob@uas.example.test;transport=tls", branch="z9hG4bKc2",
            call_id="call-1", cseq=1, to_tag="callee1", routes=routes,
        )  # fmt: skip
        cloud.send(ack)
        got_ack = expect(
            connector, Request, method="ACK", uri="sip:bob@uas.example.test;transport=tls"
        )
        assert isinstance(got_ack, Request) and got_ack.route == ()

        bye = request(
            "BYE", "sip:bob@uas.example.test;transport=tls", branch="z9hG4bKc3",
            call_id="call-1", cseq=2, to_tag="callee1", routes=routes,
        )  # fmt: skip
        cloud.send(bye)
        got_bye = expect(connector, Request, method="BYE")
        assert isinstance(got_bye, Request)
        _answer(connector, got_bye, 200, "OK")
        done = expect(cloud, Response, status_code=200)
        assert isinstance(done, Response) and done.cseq.method == "BYE"
    finally:
        cloud.close()
        connector.close()
    assert edge.metric("hybridge_edge_connections_accepted_total", side="cloud", zone="cloud") >= 1
    assert (
        edge.metric("hybridge_edge_connections_accepted_total", side="traversal", zone="connector")
        >= 1
    )


def test_call_from_the_premises_reaches_the_cloud_connection(pki: Pki, edge: EdgeProcess) -> None:
    cloud = _cloud(pki, edge)
    connector = _connector(pki, edge)
    try:
        # an OPTIONS on the cloud side first, so the cloud connection is admitted and up
        cloud.send(request("OPTIONS", "sip:127.0.0.1", branch="z9hG4bKo1", call_id="o1", cseq=1))
        expect(cloud, Response, status_code=200)
        invite = request(
            "INVITE", f"sip:alice@{CLOUD}", branch="z9hG4bKp1", call_id="call-2", cseq=1,
            via_host="pbx.premises.example.test",
        )  # fmt: skip
        connector.send(invite)
        got = expect(cloud, Request, method="INVITE", max_forwards=69)
        assert isinstance(got, Request)
        assert got.via[0].port == edge.cloud_port
        assert next(r.uri for r in got.record_route).endswith(";hbr=cloud")
        for status, reason in ((100, "Trying"), (180, "Ringing"), (200, "OK")):
            _answer(cloud, got, status, reason)
            response = expect(connector, Response, status_code=status)
        assert isinstance(response, Response)
        routes = _routes(response)
        for method, cseq, branch in (("ACK", 1, "z9hG4bKp2"), ("BYE", 2, "z9hG4bKp3")):
            connector.send(
                request(
                    method, "sip:bob@uas.example.test;transport=tls", branch=branch,
                    call_id="call-2", cseq=cseq, to_tag="callee1", routes=routes,
                    via_host="pbx.premises.example.test",
                )
            )  # fmt: skip
            got_req = expect(cloud, Request, method=method)
        assert isinstance(got_req, Request)
        _answer(cloud, got_req, 200, "OK")
        done = expect(connector, Response, status_code=200)
        assert isinstance(done, Response) and done.cseq.method == "BYE"
    finally:
        cloud.close()
        connector.close()


def test_options_to_the_edge_is_answered_locally(pki: Pki, edge: EdgeProcess) -> None:
    cloud = _cloud(pki, edge)
    try:
        cloud.send(request("OPTIONS", "sip:127.0.0.1", branch="z9hG4bKo2", call_id="o2", cseq=1))
        answer = expect(cloud, Response, status_code=200)
        assert isinstance(answer, Response) and "INVITE" in (answer.get("Allow") or "")
    finally:
        cloud.close()


def test_max_forwards_zero_is_answered_483(pki: Pki, edge: EdgeProcess) -> None:
    connector = _connector(pki, edge)
    cloud = _cloud(pki, edge)
    try:
        cloud.send(
            request(
                "INVITE", "sip:bob@premises.example.test", branch="z9hG4bKm0", call_id="m0",
                cseq=1, max_forwards=0,
            )
        )  # fmt: skip
        expect(cloud, Response, status_code=483)
        # the twin: Max-Forwards 1 is relayed, with 0 left
        cloud.send(
            request(
                "INVITE", "sip:bob@premises.example.test", branch="z9hG4bKm1", call_id="m1",
                cseq=1, max_forwards=1,
            )
        )  # fmt: skip
        expect(connector, Request, method="INVITE", max_forwards=0)
    finally:
        cloud.close()
        connector.close()


def test_request_without_a_traversal_connection_gets_503(pki: Pki, edge: EdgeProcess) -> None:
    # earlier tests closed their connectors: wait until the edge has seen them go
    deadline = time.monotonic() + 5
    while edge.metric("hybridge_edge_connections_open", side="traversal") and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    cloud = _cloud(pki, edge)
    try:
        cloud.send(
            request(
                "INVITE", "sip:bob@premises.example.test", branch="z9hG4bKn1", call_id="n1", cseq=1
            )
        )
        expect(cloud, Response, status_code=503)
    finally:
        cloud.close()


def test_edge_dials_the_cloud_and_verifies_its_name(pki: Pki, tmp_path: Path) -> None:
    """No inbound cloud connection: the edge dials the zone's peer with its own client
    certificate and relays only once the server's name matches the zone (twin: an
    impostor server with a valid certificate for another name gets nothing)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    contexts = []
    for stem, name in (("impostor", "impostor.example.test"), ("callservice", CLOUD)):
        identity = pki.leaf(stem, dns=[name])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.verify_mode = ssl.CERT_REQUIRED  # the edge must present its certificate
        context.load_verify_locations(cadata=pki.root.pem.decode())
        context.load_cert_chain(str(identity.chain), str(identity.key))
        contexts.append(context)
    seen: queue.Queue[object] = queue.Queue()

    def cloud_server() -> None:
        listener.settimeout(15)
        for context in contexts:
            raw, _ = listener.accept()
            try:
                peer = SipPeer(context.wrap_socket(raw, server_side=True))
                seen.put(peer.sock.getpeercert()["subject"])
                message = peer.recv(timeout=5)
            except (ssl.SSLError, OSError) as exc:  # the impostor is dropped by the edge
                seen.put(exc)
                continue
            seen.put(message)
            assert isinstance(message, Request)
            peer.send(serialize(message.response(180, "Ringing", to_tag="cloud1")))
            time.sleep(0.5)
            peer.close()

    thread = threading.Thread(target=cloud_server, daemon=True)
    thread.start()
    prepare_edge_dir(tmp_path, pki, cloud_peer=f"127.0.0.1:{port}")
    edge = start_edge(tmp_path, pki)
    connector = _connector(pki, edge)
    try:
        invite = request(
            "INVITE", f"sip:alice@{CLOUD}", branch="z9hG4bKd1", call_id="dial-1", cseq=1,
            via_host="pbx.premises.example.test",
        )  # fmt: skip
        connector.send(invite)
        expect(connector, Response, status_code=503)
        line = edge.wait_line(r"cloud dial-out: peer certificate identity unacceptable")
        assert f"presented SAN DNS:impostor.example.test; zone expects {CLOUD}" in line.string
        assert f"peer 127.0.0.1:{port}" in line.string

        connector.send(invite.replace(b"z9hG4bKd1", b"z9hG4bKd2"))
        ringing = expect(connector, Response, status_code=180)
        assert isinstance(ringing, Response) and ringing.via[0].branch == "z9hG4bKd2"
        messages = [seen.get(timeout=5) for _ in range(4)]
        relayed = messages[-1]
        assert isinstance(relayed, Request) and relayed.method == "INVITE"
        assert relayed.via[0].port == edge.cloud_port
        assert ((("commonName", "edge.example.test"),)) in messages[2]  # type: ignore[operator]
    finally:
        connector.close()
        edge.stop()
        listener.close()


def test_connections_past_the_limit_are_refused_at_once(pki: Pki, tmp_path: Path) -> None:
    prepare_edge_dir(tmp_path, pki, traversal=False)
    edge = start_edge(tmp_path, pki, extra=("--max-connections", "2"))
    holders = [socket.create_connection(("127.0.0.1", edge.cloud_port)) for _ in range(2)]
    try:
        edge.wait_line(r"metrics on")  # both TCP connections are now held in their handshake
        time.sleep(0.3)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _cloud(pki, edge).send(b"\r\n\r\n")
        line = edge.wait_line(r"cloud listener: .*reason too_many_connections\]")
        assert "the limit (max_connections 2); closed at once" in line.string
        for holder in holders:
            holder.close()
        # the twin: once the held connections are gone, the same peer is admitted
        deadline = time.monotonic() + 5
        while True:
            try:
                cloud = _cloud(pki, edge)
                cloud.send(
                    request("OPTIONS", "sip:127.0.0.1", branch="z9hG4bKl1", call_id="l1", cseq=1)
                )
                expect(cloud, Response, status_code=200)
                cloud.close()
                break
            except (ssl.SSLError, ConnectionError):
                assert time.monotonic() < deadline
                time.sleep(0.1)
        # this edge has no traversal zone: the connector's certificate opens nothing there
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _connector(pki, edge)
        line = edge.wait_line(r"traversal listener: .*reason no_zone\]")
        assert "no zone is configured for this listener" in line.string
    finally:
        for holder in holders:
            holder.close()
        edge.stop()


def test_pipelined_requests_are_relayed_in_order_on_uvloop(pki: Pki, edge: EdgeProcess) -> None:
    # The CLI runs the edge on uvloop (a dependency); the relay's batched writes must keep
    # the order of pipelined requests and of their responses.
    assert edge.wait_line(r"event loop: uvloop\.").group(0)
    connector = _connector(pki, edge)
    cloud = _cloud(pki, edge)
    try:
        burst = [
            request("OPTIONS", "sip:uas@premises.example.test", branch=f"z9hG4bKp{n}",
                    call_id=f"pipe-{n}", cseq=n)
            for n in range(1, 21)
        ]  # fmt: skip
        cloud.send(b"".join(burst))
        relayed = [expect(connector, Request, method="OPTIONS") for _ in burst]
        assert [r.call_id for r in relayed] == [f"pipe-{n}" for n in range(1, 21)]
        assert all(r.max_forwards == 69 for r in relayed)
        connector.send(b"".join(serialize(r.response(200, "OK", to_tag="uas")) for r in relayed))
        answers = [expect(cloud, Response, status_code=200) for _ in burst]
        assert [a.call_id for a in answers] == [f"pipe-{n}" for n in range(1, 21)]
        assert all([v.branch for v in a.via] == [f"z9hG4bKp{a.cseq.number}"] for a in answers)
    finally:
        cloud.close()
        connector.close()


def test_a_peer_that_stops_reading_is_closed_and_others_are_unaffected(
    pki: Pki, edge: EdgeProcess
) -> None:
    # Past 1 MiB queued for a peer that does not read, its connection is closed (a bound on
    # what one peer can make the edge hold); the sender's connection carries on.
    start = len(edge.lines)
    stalled = _connector(pki, edge)  # admitted, then never reads again
    cloud = _cloud(pki, edge)
    body = b"x" * 60_000
    try:
        for batch in range(80):  # at most ~24 MB: far past the kernel's socket buffers
            cloud.send(
                b"".join(
                    request(
                        "OPTIONS", "sip:uas@premises.example.test", branch=f"z9hG4bKw{batch}x{n}",
                        call_id=f"wb-{batch}-{n}", cseq=1,
                    ).replace(b"Content-Length: 0\r\n", b"Content-Length: 60000\r\n")
                    + body
                    for n in range(5)
                )
            )  # fmt: skip
            if any("reason write_backlog" in line for line in edge.lines[start:]):
                break
        line = edge.wait_line(
            r"traversal connection \d+ .* closed: the peer does not read .*"
            r"\[reason write_backlog\]",
            start=start,
        )
        assert "over 1 MiB queued" in line.group(0)
        assert stalled.closed_by_edge(timeout=10)
        # the twin: the sending cloud connection is still served (an OPTIONS for the edge)
        cloud.send(request("OPTIONS", "sip:127.0.0.1", branch="z9hG4bKok", call_id="ok", cseq=1))
        deadline = time.monotonic() + 10
        while True:
            answer = cloud.recv()
            if isinstance(answer, Response) and answer.call_id == "ok":
                break
            assert time.monotonic() < deadline
        assert answer.status_code == 200
    finally:
        cloud.close()
        stalled.close()
    assert (
        edge.metric(
            "hybridge_edge_connections_closed_total", side="traversal", reason="write_backlog"
        )
        == 1
    )
