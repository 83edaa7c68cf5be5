"""Whole calls through real processes: cloud peer → ``hybridge edge serve`` → traversal →
``hybridge connector serve`` → premises SIP server, and back the other way.

The connector is configured with the real CLI; it dials the edge's traversal port with its
dedicated traversal certificate (``connector.example.test``, the zone's subject name), keeps
the connection up with CRLF keep-alives, and relays to the premises server over TCP, then
over TLS after a reconfiguration (picked up without a restart).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from traversalkit import (
    CLOUD,
    CONNECTOR,
    CONNECTOR_HOST,
    EDGE,
    PBX,
    ConnectorProcess,
    EdgeProcess,
    Pbx,
    Pki,
    SipPeer,
    answer,
    client_ssl,
    expect,
    pbx_tls_context,
    request,
    running_edge,
    start_connector,
    start_kamailio,
)

from hybridge.core.sip import Request, Response

RELAYED = "hybridge_connector_traversal_messages_relayed_total"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def edge(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with running_edge(tmp_path_factory.mktemp("edge"), pki) as process:
        yield process


@pytest.fixture(scope="module")
def pbx() -> Iterator[Pbx]:
    server = Pbx()
    yield server
    server.close()


@pytest.fixture(scope="module")
def connector(
    pki: Pki, edge: EdgeProcess, pbx: Pbx, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConnectorProcess]:
    process = start_connector(tmp_path_factory.mktemp("connector-role"), pki)
    try:
        identity = pki.leaf("traversal", dns=[CONNECTOR])
        done = process.traversal(
            "set", "--edge", f"127.0.0.1:{edge.traversal_port}", "--edge-name", EDGE,
            "--premises", pbx.uri, "--cert", str(identity.chain), "--key", str(identity.key),
            "--keepalive", "0.5", "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def premises(connector: ConnectorProcess, pbx: Pbx) -> Iterator[SipPeer]:
    # The connector opens the premises connection once the edge admitted it.
    peer = pbx.accept()
    connector.wait_metric("hybridge_connector_traversal_connected", 1.0)
    yield peer
    peer.close()


def _cloud(pki: Pki, edge: EdgeProcess) -> SipPeer:
    context = client_ssl(pki, pki.leaf("cloud", dns=[CLOUD]))
    # The edge (uvloop) currently loses the very first handshake on a listener (seen in
    # tests/integration/edge too: "TLS handshake failed: ConnectionAbortedError" after the
    # handshake timeout); reported to the edge's owner. A cloud peer re-dials, so do we.
    for _ in range(5):
        try:
            peer = SipPeer.connect(edge.cloud_port, context, timeout=2.0)
        except (ssl.SSLError, TimeoutError):
            continue
        peer.sock.settimeout(10.0)
        return peer
    return SipPeer.connect(edge.cloud_port, context)


def _expect(peer: SipPeer, kind: type, **checks: object) -> Request | Response:
    return expect(peer, kind, timeout=10, **checks)


def _answer(peer: SipPeer, req: Request, status: int, reason: str, tag: str) -> None:
    answer(
        peer, req, status, reason, to_tag=tag, contact=f"<sip:{tag}@ua.example.test;transport=tls>"
    )


def _routes(response: Response) -> tuple[str, ...]:
    # RFC 3261 §12.1.2: the UAC's route set is the Record-Route list in reverse order.
    return tuple(reversed(response.get_all("Record-Route")))


def test_the_connector_holds_the_traversal_connection(
    connector: ConnectorProcess, edge: EdgeProcess, premises: SipPeer
) -> None:
    connector.wait_log(r"traversal: connected to the edge 127\.0\.0\.1:\d+ as the traversal cert")
    edge.wait_line(r"traversal listener: admitted .* as zone connector \(.*connector\.example")
    # Keep-alives flow (interval 0.5 s): the round trip is measured and exported.
    connector.wait_log(r"rtt \d+\.\d ms")
    assert connector.metric("hybridge_connector_traversal_ping_rtt_seconds") > 0
    assert connector.metric("hybridge_connector_traversal_premises_connected") == 1.0
    shown = connector.traversal("show", "--json")
    assert shown.returncode == 0 and '"edge_name": "edge.example.test"' in shown.stdout
    assert "PRIVATE KEY" not in shown.stdout + connector.log()
    # The live state, as the admin sees it: the JSON API and the page of the running process.
    admin = connector.admin()
    try:
        state = admin.get("/api/traversal").json()
        assert state["configured"] is True
        assert state["config"]["certificate"]["source"] == "dedicated"
        status = state["status"]
        assert status["state"] == "connected" and status["connected_since_utc"]
        assert status["last_ping_rtt"] > 0 and status["premises_connected"] is True
        page = admin.get("/traversal")
        assert page.status_code == 200 and "connected since" in page.text.lower()
        assert re.search(r'id="ping-rtt">\d+\.\d ms<', page.text)
        assert "PRIVATE KEY" not in page.text + str(state)
    finally:
        admin.close()


def test_call_from_the_cloud_reaches_the_premises_and_back(
    pki: Pki, edge: EdgeProcess, connector: ConnectorProcess, premises: SipPeer
) -> None:
    relayed_before = connector.metric(RELAYED, direction="to_premises", kind="request")
    cloud = _cloud(pki, edge)
    try:
        invite = request(
            "INVITE", "sip:bob@premises.example.test", branch="z9hG4bKt1", call_id="tcall-1",
            cseq=1, body=b"v=0\r\n",
            extra=("Content-Type: application/sdp",),
        )  # fmt: skip
        cloud.send(invite)
        got = _expect(premises, Request, method="INVITE", max_forwards=68, body=b"v=0\r\n")
        assert isinstance(got, Request)
        # connector's Via on top (TCP towards the premises), then the edge's, then the UA's.
        assert [v.host for v in got.via] == [CONNECTOR_HOST, "127.0.0.1", "ua.example.test"]
        assert got.via[0].transport == "TCP" and got.via[0].branch.startswith("z9hG4bK")
        assert len(got.record_route) == 2  # the edge's RFC 5658 double Record-Route

        for status, reason in ((100, "Trying"), (180, "Ringing"), (200, "OK")):
            _answer(premises, got, status, reason, "pbx1")
            response = _expect(cloud, Response, status_code=status)
            assert isinstance(response, Response)
            assert [v.branch for v in response.via] == ["z9hG4bKt1"]
        routes = _routes(response)

        ack = request(
            "ACK", "sip:pbx1@ua.example.test;transport=tls", branch="z9hG4bKt2",
            call_id="tcall-1", cseq=1, to_tag="pbx1", routes=routes,
        )  # fmt: skip
        cloud.send(ack)
        _expect(premises, Request, method="ACK", call_id="tcall-1")

        bye = request(
            "BYE", "sip:pbx1@ua.example.test;transport=tls", branch="z9hG4bKt3",
            call_id="tcall-1", cseq=2, to_tag="pbx1", routes=routes,
        )  # fmt: skip
        cloud.send(bye)
        got_bye = _expect(premises, Request, method="BYE")
        assert isinstance(got_bye, Request)
        _answer(premises, got_bye, 200, "OK", "pbx1")
        done = _expect(cloud, Response, status_code=200)
        assert isinstance(done, Response) and done.cseq.method == "BYE"
    finally:
        cloud.close()
    # INVITE, ACK, BYE went to the premises; 100/180/200/200 came back.
    assert connector.metric(RELAYED, direction="to_premises", kind="request") >= relayed_before + 3
    assert connector.metric(RELAYED, direction="to_edge", kind="response") >= 4


def test_call_from_the_premises_reaches_the_cloud_and_back(
    pki: Pki, edge: EdgeProcess, connector: ConnectorProcess, premises: SipPeer
) -> None:
    cloud = _cloud(pki, edge)
    try:
        # The edge relays to the newest cloud connection: make sure it is admitted first.
        cloud.send(request("OPTIONS", "sip:127.0.0.1", branch="z9hG4bKp0", call_id="p0", cseq=1))
        _expect(cloud, Response, status_code=200)

        invite = request(
            "INVITE", "sip:alice@callservice.example.test", branch="z9hG4bKp1",
            call_id="pcall-1", cseq=1, via_host=PBX,
        )  # fmt: skip
        premises.send(invite)
        got = _expect(cloud, Request, method="INVITE", max_forwards=68)
        assert isinstance(got, Request)
        assert [v.host for v in got.via] == ["127.0.0.1", CONNECTOR_HOST, PBX]
        assert got.via[1].transport == "TLS"  # towards the edge

        for status, reason in ((100, "Trying"), (180, "Ringing"), (200, "OK")):
            _answer(cloud, got, status, reason, "cloud1")
            response = _expect(premises, Response, status_code=status)
            assert isinstance(response, Response)
            assert [v.host for v in response.via] == [PBX]
        routes = _routes(response)
        assert len(routes) == 2

        premises.send(
            request(
                "ACK", "sip:cloud1@ua.example.test;transport=tls", branch="z9hG4bKp2",
                call_id="pcall-1", cseq=1, to_tag="cloud1", routes=routes, via_host=PBX,
            )
        )  # fmt: skip
        got_ack = _expect(cloud, Request, method="ACK")
        assert isinstance(got_ack, Request) and got_ack.route == ()

        premises.send(
            request(
                "BYE", "sip:cloud1@ua.example.test;transport=tls", branch="z9hG4bKp3",
                call_id="pcall-1", cseq=2, to_tag="cloud1", routes=routes, via_host=PBX,
            )
        )  # fmt: skip
        got_bye = _expect(cloud, Request, method="BYE")
        assert isinstance(got_bye, Request)
        _answer(cloud, got_bye, 200, "OK", "cloud1")
        done = _expect(premises, Response, status_code=200)
        assert isinstance(done, Response) and done.cseq.method == "BYE"
    finally:
        cloud.close()


def test_a_forged_response_from_the_premises_is_dropped(
    connector: ConnectorProcess, premises: SipPeer
) -> None:
    # A response whose top Via is not the connector's (RFC 3261 §16.7 step 3) goes nowhere.
    before = connector.metric("hybridge_connector_traversal_messages_dropped_total")
    forged = (
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP connector.example.test;branch=z9hG4bKx;"
        "hxs=edge.000000000000\r\nVia: SIP/2.0/TLS ua.example.test;branch=z9hG4bKy\r\n"
        "From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: forged\r\n"
        "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    premises.send(forged.encode())
    connector.wait_log(r"premises message dropped: response whose top Via .* no valid hxs")
    assert connector.metric("hybridge_connector_traversal_messages_dropped_total") == before + 1


def test_tls_premises_server_verified_by_name(
    pki: Pki,
    edge: EdgeProcess,
    connector: ConnectorProcess,
    premises: SipPeer,
    tmp_path: Path,
) -> None:
    """Reconfigured to a TLS premises server (no restart): its name is checked; a server
    presenting another name is refused and the cloud's INVITE gets 503 (rejecting twin)."""
    identity = pki.leaf("traversal", dns=[CONNECTOR])
    good = Pbx(pbx_tls_context(pki, PBX))
    wrong = Pbx(pbx_tls_context(pki, "intruder.example.test"))
    try:
        start = len(connector.log())
        done = connector.traversal(
            "set", "--edge", f"127.0.0.1:{edge.traversal_port}", "--edge-name", EDGE,
            "--premises", wrong.uri, "--premises-name", PBX,
            "--cert", str(identity.chain), "--key", str(identity.key), "--keepalive", "0.5",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        connector.wait_log(r"configuration changed; re-dialling", start=start)
        wrong.keep_accepting()  # each TLS handshake completes; our name check then refuses
        connector.wait_log(
            r"premises server sip:127\.0\.0\.1:\d+;transport=tls refused: peer certificate "
            r"identity unacceptable: presented SAN DNS:intruder\.example\.test; the traversal "
            r"configuration expects pbx\.example\.test",
            start=start,
        )
        cloud = _cloud(pki, edge)
        try:
            cloud.send(
                request("INVITE", "sip:bob@premises.example.test", branch="z9hG4bKw1",
                        call_id="wcall", cseq=1)
            )  # fmt: skip
            # RFC 3261 §16.11: nothing to relay to, so the connector answers 503 itself.
            answer = _expect(cloud, Response)
            assert isinstance(answer, Response) and answer.status_code == 503, connector.log()
            assert answer.to_address.tag == "hb-connector"
        finally:
            cloud.close()

        start = len(connector.log())
        done = connector.traversal(
            "set", "--edge", f"127.0.0.1:{edge.traversal_port}", "--edge-name", EDGE,
            "--premises", good.uri, "--premises-name", PBX,
            "--cert", str(identity.chain), "--key", str(identity.key), "--keepalive", "0.5",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        tls_premises = good.accept()
        connector.wait_log(r"connected to the premises server sip:.*transport=tls", start=start)
        cloud = _cloud(pki, edge)
        try:
            cloud.send(
                request("INVITE", "sip:bob@premises.example.test", branch="z9hG4bKs1",
                        call_id="scall", cseq=1)
            )  # fmt: skip
            got = _expect(tls_premises, Request, method="INVITE")
            assert isinstance(got, Request) and got.via[0].transport == "TLS"
            _answer(tls_premises, got, 200, "OK", "pbx2")
            _expect(cloud, Response, status_code=200)
        finally:
            cloud.close()
            tls_premises.close()
    finally:
        good.close()
        wrong.close()


def test_kamailio_as_the_premises_server_answers_a_whole_call(
    pki: Pki, edge: EdgeProcess, connector: ConnectorProcess, tmp_path: Path
) -> None:
    """Interop: Debian's Kamailio (TLS module) is the premises server; the connector
    verifies its certificate by name and relays a whole call from the cloud to it."""
    route = """    if (method=="INVITE") {
        sl_send_reply("180", "Ringing");
        sl_send_reply("200", "OK");
        exit;
    }
    if (method=="BYE" || method=="OPTIONS") {
        sl_send_reply("200", "OK");
        exit;
    }
    exit;"""
    kamailio = start_kamailio(
        tmp_path / "kam", pki.leaf("kamailio-pbx", dns=[PBX]), pki.root_file(), route=route,
        extra_modules=("sl",),
    )  # fmt: skip
    identity = pki.leaf("traversal", dns=[CONNECTOR])
    try:
        start = len(connector.log())
        done = connector.traversal(
            "set", "--edge", f"127.0.0.1:{edge.traversal_port}", "--edge-name", EDGE,
            "--premises", f"sips:127.0.0.1:{kamailio.tls_port}", "--premises-name", PBX,
            "--cert", str(identity.chain), "--key", str(identity.key), "--keepalive", "0.5",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        connector.wait_log(r"connected to the premises server sip:127\.0\.0\.1:\d+;transport=tls",
                           start=start)  # fmt: skip
        cloud = _cloud(pki, edge)
        try:
            cloud.send(
                request("INVITE", "sip:bob@premises.example.test", branch="z9hG4bKk1",
                        call_id="kcall", cseq=1)
            )  # fmt: skip
            ringing = _expect(cloud, Response, status_code=180)
            ok = _expect(cloud, Response, status_code=200)
            assert isinstance(ok, Response) and isinstance(ringing, Response)
            assert "kamailio" in (ok.get("Server") or "")  # answered by Kamailio itself
            assert [v.branch for v in ok.via] == ["z9hG4bKk1"]
            tag = ok.to_address.tag
            assert tag
            routes = _routes(ok)  # what Kamailio's stateless 200 copied (may be none)
            cloud.send(
                request("ACK", "sip:bob@premises.example.test", branch="z9hG4bKk2",
                        call_id="kcall", cseq=1, to_tag=tag, routes=routes)
            )  # fmt: skip
            cloud.send(
                request("BYE", "sip:bob@premises.example.test", branch="z9hG4bKk3",
                        call_id="kcall", cseq=2, to_tag=tag, routes=routes)
            )  # fmt: skip
            bye_ok = _expect(cloud, Response, status_code=200)
            assert isinstance(bye_ok, Response) and bye_ok.cseq.method == "BYE"
        finally:
            cloud.close()
    finally:
        kamailio.stop()
