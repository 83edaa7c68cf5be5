"""Whole calls between the cloud's call service and the premises, through a real edge.

Processes: ``hybridge cloud serve --sip-port`` (the call service's SIP-over-TLS peer, demo
PKI certificate ``callservice.hybridge.test``), ``hybridge edge serve`` (DNS zone expecting
that name and dialling the call service; traversal zone for the connector), and a
test-side traversal peer holding the connector's certificate. ``hybridge cloud call`` is
run as a subprocess, as an admin would.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from callkit import (
    CALLSERVICE,
    ORG,
    EdgeRun,
    TraversalPeer,
    call_json,
    create_org,
    hybridge,
    issue_leaf,
    premises_request,
    set_org_edge,
    start_cloud_with_sip,
    start_edge,
)

from hybridge.connector.demo_run import RoleProcess
from hybridge.core.sip import Request, Response
from hybridge.demo.pki import DemoPki, init_demo_pki

pytestmark = pytest.mark.slow  # real role processes on loopback


@dataclass
class Stack:
    work: Path
    pki: DemoPki
    cloud: RoleProcess
    sip_port: int
    edge: EdgeRun

    def wait_cloud_line(self, pattern: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.cloud.log_text().splitlines():
                if re.search(pattern, line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no cloud line matching {pattern!r}:\n{self.cloud.log_text()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("callservice")
    pki, _ = init_demo_pki(work / "pki")
    create_org(work)
    cloud, sip_port = start_cloud_with_sip(work, pki)
    try:
        edge = start_edge(work / "edge", pki, sip_port)
    except BaseException:
        cloud.stop()
        raise
    set_org_edge(work, "edge.hybridge.test", f"127.0.0.1:{edge.cloud_port}")
    yield Stack(work, pki, cloud, sip_port, edge)
    edge.stop()
    cloud.stop()


def _messages(report: dict[str, object]) -> list[str]:
    steps = report["steps"]
    assert isinstance(steps, list)
    return [f"{s['direction']} {s['message']}" for s in steps]


def test_test_call_without_a_connector_stops_at_the_edge_with_503(stack: Stack) -> None:
    # No traversal connection is up: the edge has nowhere to relay and answers 503.
    code, report, _ = call_json(
        stack.work, stack.pki, "--org", ORG, "--to", "sip:alice@premises.test"
    )
    assert code == 1, report
    assert report is not None and report["ok"] is False
    assert report["reason"] == "INVITE answered 503 Service Unavailable"
    assert report["edge_identity"] == "edge.hybridge.test"
    assert _messages(report)[-1] == "sent ACK sip:alice@premises.test"


def test_call_from_the_premises_is_answered_by_the_call_service(stack: Stack) -> None:
    peer = TraversalPeer(stack.pki, stack.edge.traversal_port)
    try:
        offer = b"v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        peer.sock.sendall(
            premises_request("INVITE", f"sip:test@{CALLSERVICE}", call_id="p1", cseq=1,
                             branch="z9hG4bKp1", body=offer)
        )  # fmt: skip
        statuses = []
        while not statuses or statuses[-1] < 200:
            message = peer.recv()
            assert isinstance(message, Response), message
            statuses.append(message.status_code)
        assert statuses == [100, 180, 200]
        assert message.get("Content-Type") == "application/sdp"
        assert message.body.startswith(b"v=0\r\n") and b"m=audio " in message.body
        tag = message.to_address.tag
        assert tag
        # RFC 3261 §12.1.1: the call service copied the edge's Record-Route into its 200.
        routes = tuple(reversed(message.get_all("Record-Route")))
        assert len(routes) == 2 and all("hbr=" in r for r in routes)
        target = message.get("Contact")
        assert target is not None
        uri = target.strip("<>").split(">")[0]
        for method, cseq, branch in (("ACK", 1, "z9hG4bKp2"), ("BYE", 2, "z9hG4bKp3")):
            peer.sock.sendall(
                premises_request(method, uri, call_id="p1", cseq=cseq, branch=branch,
                                 to_tag=tag, routes=routes)
            )  # fmt: skip
        done = peer.recv()
        assert isinstance(done, Response) and done.status_code == 200
        assert done.cseq.method == "BYE"
    finally:
        peer.close()
    line = stack.wait_cloud_line(r"call service: admitted edge")
    assert f"of organisation {ORG!r} (san_dns edge.hybridge.test)" in line
    stack.wait_cloud_line(r"call service: BYE .* from edge 'Demo Org' \(Call-ID p1\)")


def test_test_call_from_the_cloud_reaches_the_premises_and_ends(stack: Stack) -> None:
    peer = TraversalPeer(stack.pki, stack.edge.traversal_port)
    peer.serve_in_background()
    try:
        code, report, err = call_json(
            stack.work, stack.pki, "--org", ORG, "--to", "sip:alice@premises.test"
        )
    finally:
        peer.close()
    assert code == 0, (report, err)
    assert report is not None and report["ok"] is True
    messages = _messages(report)
    assert messages[0] == "sent INVITE sip:alice@premises.test"
    assert messages[1:4] == [
        "received 100 Trying (INVITE)",
        "received 180 Ringing (INVITE)",
        "received 200 OK (INVITE)",
    ]
    assert messages[4] == "sent ACK sip:alice@pbx.premises.test;transport=tls"
    assert messages[5:] == [
        "sent BYE sip:alice@pbx.premises.test;transport=tls",
        "received 200 OK (BYE)",
    ]
    steps = report["steps"]
    assert isinstance(steps, list)
    times = [s["at_ms"] for s in steps]
    assert times == sorted(times) and times[0] > 0
    assert peer.methods() == ["INVITE", "ACK", "BYE"]
    invite = peer.received[0]
    assert isinstance(invite, Request) and invite.get("Content-Type") == "application/sdp"
    # the edge relayed it: its Via on top, the call service's below
    assert invite.via[1].host == CALLSERVICE


def test_text_output_lists_each_response_with_timing(stack: Stack) -> None:
    peer = TraversalPeer(stack.pki, stack.edge.traversal_port)
    peer.serve_in_background()
    try:
        done = hybridge(
            "cloud", "call", "--data-dir", str(stack.work / "cloud"),
            "--edge", f"127.0.0.1:{stack.edge.cloud_port}", "--to", "sip:bob@premises.test",
            "--callservice-cert", str(stack.pki.callservice_cert),
            "--callservice-key", str(stack.pki.callservice_key),
        )  # fmt: skip
    finally:
        peer.close()
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\s+[\d.]+ ms  <- 180 Ringing \(INVITE\)$", done.stdout, re.M)
    assert done.stdout.strip().endswith(
        "OK: call completed: INVITE answered 200 OK, ACK sent, BYE answered 200 OK"
    )


def test_unknown_organisation_or_edge_is_refused_before_dialling(stack: Stack) -> None:
    code, report, err = call_json(stack.work, stack.pki, "--org", "Nope", "--to", "sip:a@b.test")
    assert code == 2 and report is None
    assert "no organisation is called 'Nope'; known: 'Demo Org'" in err
    code, report, err = call_json(
        stack.work, stack.pki, "--edge", "127.0.0.1:1", "--to", "sip:a@b.test"
    )
    assert code == 2 and report is None
    assert "no organisation has an edge at '127.0.0.1:1'" in err


def _refused_by_call_service(stack: Stack, identity: tuple[Path, Path] | None) -> None:
    """Dial the call service's SIP port as a would-be edge, send an OPTIONS, and assert
    that the connection ends without a SIP byte (a TLS alert, or a close after the check)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(stack.pki.root_ca))
    if identity is not None:
        context.load_cert_chain(str(identity[0]), str(identity[1]))
    raw = socket.create_connection(("127.0.0.1", stack.sip_port), timeout=20)
    try:
        with context.wrap_socket(raw, server_hostname=CALLSERVICE) as sock:
            sock.sendall(premises_request("OPTIONS", f"sip:{CALLSERVICE}", call_id="o", cseq=1,
                                          branch="z9hG4bKo"))  # fmt: skip
            got = sock.recv(65536)
    except (ssl.SSLError, ConnectionError):
        return
    assert got == b"", got


@pytest.mark.parametrize(
    ("stem", "name", "rogue", "expired", "expected"),
    [
        (
            "other-name", "rogue-edge.hybridge.test", False, False,
            r"peer certificate identity unacceptable: presented SAN "
            r"DNS:rogue-edge\.hybridge\.test and CN rogue-edge\.hybridge\.test; "
            r"the call service expects edge\.hybridge\.test \(Demo Org\) "
            r"\[reason name_mismatch\]",
        ),
        (
            "other-ca", "edge.hybridge.test", True, False,
            r"peer certificate refused \(untrusted_issuer\): .*it must chain to the cloud's "
            r"trust store \[reason untrusted_issuer\]",
        ),
        (
            "expired", "edge.hybridge.test", False, True,
            r"peer certificate refused \(expired\): certificate has expired \(OpenSSL verify "
            r"code 10\); it must chain to the cloud's trust store \[reason expired\]",
        ),
    ],
)  # fmt: skip
def test_an_edge_with_another_name_or_ca_is_refused_with_a_log_line(
    stack: Stack, tmp_path: Path, stem: str, name: str, rogue: bool, expired: bool, expected: str
) -> None:
    identity = issue_leaf(stack.pki, stem, name, tmp_path, rogue=rogue, expired=expired)
    _refused_by_call_service(stack, identity)
    stack.wait_cloud_line(
        r"call service: edge connection from 127\.0\.0\.1:\d+ refused: " + expected
    )


def test_a_peer_without_a_client_certificate_is_refused(stack: Stack) -> None:
    _refused_by_call_service(stack, None)
    stack.wait_cloud_line(
        r"refused: peer presented no client certificate; mutual TLS is required on this "
        r"listener \[reason no_certificate\]"
    )


def test_the_twin_a_trusted_edge_gets_its_options_answered(stack: Stack) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(stack.pki.root_ca))
    context.load_cert_chain(str(stack.pki.edge_cert), str(stack.pki.edge_key))
    raw = socket.create_connection(("127.0.0.1", stack.sip_port), timeout=20)
    with context.wrap_socket(raw, server_hostname=CALLSERVICE) as sock:
        sock.sendall(premises_request("OPTIONS", f"sip:{CALLSERVICE}", call_id="o2", cseq=1,
                                      branch="z9hG4bKo2"))  # fmt: skip
        answer = sock.recv(65536)
    assert answer.startswith(b"SIP/2.0 200 OK\r\n")
    assert b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n" in answer


def test_a_real_edge_of_another_name_is_refused_and_its_caller_gets_503(
    stack: Stack, tmp_path: Path
) -> None:
    """The twin of the premises call above: an edge process whose certificate names
    another host dials the call service; the connection is refused with a log line, and
    the caller gets a 503 from the edge saying why (with TLS 1.3 the edge finishes its
    side of the handshake before the call service has judged its certificate, so the edge
    relays the INVITE into a connection the call service then closes unanswered; the edge
    answers what it relayed there, edge/dialout.py)."""
    identity = issue_leaf(stack.pki, "impostor", "impostor-edge.hybridge.test", tmp_path)
    impostor = start_edge(tmp_path / "edge", stack.pki, stack.sip_port, cert=identity)
    try:
        peer = TraversalPeer(stack.pki, impostor.traversal_port)
        try:
            peer.sock.sendall(
                premises_request("INVITE", f"sip:test@{CALLSERVICE}", call_id="i1", cseq=1,
                                 branch="z9hG4bKi1")
            )  # fmt: skip
            answer = peer.recv(timeout=15)
        finally:
            peer.close()
        assert isinstance(answer, Response) and answer.status_code == 503, answer
        (warning,) = answer.get_all("Warning")
        assert "cloud refused the edge: the peer closed the connection after the TLS " in warning
    finally:
        impostor.stop()
    stack.wait_cloud_line(
        r"refused: peer certificate identity unacceptable: presented SAN "
        r"DNS:impostor-edge\.hybridge\.test and CN impostor-edge\.hybridge\.test; the call "
        r"service expects edge\.hybridge\.test \(Demo Org\) \[reason name_mismatch\]"
    )
