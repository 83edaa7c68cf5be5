"""Calls both ways through the real processes of all three roles.

``hybridge cloud serve --sip-port`` (the call service) ↔ ``hybridge edge serve`` ↔
``hybridge connector serve`` (its traversal client, configured with ``hybridge connector
traversal set``) ↔ a premises SIP server played by the test over TCP: the connector dials
it, and the test answers the cloud's test call on it, then places a call to the cloud.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from callkit import (
    CALLSERVICE,
    EDGE_NAME,
    ORG,
    EdgeRun,
    SipPeer,
    call_json,
    create_org,
    premises_request,
    set_org_edge,
    start_cloud_with_sip,
    start_edge,
)

from hybridge.connector.demo_run import RoleProcess, run_command, start_connector
from hybridge.core.sip import Request, Response
from hybridge.demo.pki import DemoPki, init_demo_pki
from hybridge.truststore import CertificateSource, open_trust_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # three role processes


@dataclass
class Roles:
    work: Path
    pki: DemoPki
    cloud: RoleProcess
    edge: EdgeRun
    connector: RoleProcess
    premises: SipPeer


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Roles]:
    work = tmp_path_factory.mktemp("three-roles")
    pki, _ = init_demo_pki(work / "pki")
    create_org(work)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(180)
    cloud, sip_port = start_cloud_with_sip(work, pki)
    started: list[object] = [cloud]
    try:
        edge = start_edge(work / "edge", pki, sip_port)
        started.append(edge)
        set_org_edge(work, EDGE_NAME, f"127.0.0.1:{edge.cloud_port}")
        connector = start_connector(work, pki)
        started.append(connector)
        # The connector verifies the edge with its platform trust store: the demo root.
        with open_trust_store(work / "connector") as trust:
            trust.add_manual(
                [CertificateSource("root.pem", pki.root_ca.read_bytes())], actor="test"
            )
        premises_uri = f"sip:127.0.0.1:{listener.getsockname()[1]};transport=tcp"
        run_command(
            ["connector", "traversal", "set", "--data-dir", str(work / "connector"),
             "--edge", f"127.0.0.1:{edge.traversal_port}", "--edge-name", EDGE_NAME,
             "--premises", premises_uri, "--cert", str(pki.connector_cert),
             "--key", str(pki.connector_key)]
        )  # fmt: skip
        conn, _ = listener.accept()  # the connector dials the premises server
        edge.wait_line(r"traversal listener: admitted .* as zone connector", timeout=60)
        yield Roles(work, pki, cloud, edge, connector, SipPeer(conn))
    finally:
        listener.close()
        for role in reversed(started):
            role.stop()  # type: ignore[attr-defined]


def test_test_call_from_the_cloud_is_answered_at_the_premises(roles: Roles) -> None:
    answering = threading.Thread(target=_answer_one_call, args=(roles.premises,), daemon=True)
    answering.start()
    code, report, err = call_json(roles.work, roles.pki, "--org", ORG, "--to",
                                  "sip:alice@premises.test")  # fmt: skip
    answering.join(timeout=30)
    assert code == 0, (report, err)
    assert report is not None and report["ok"] is True
    assert roles.premises.methods() == ["INVITE", "ACK", "BYE"]
    invite = roles.premises.received[0]
    # Relayed twice: the connector's Via on top of the edge's, on top of the call service's.
    assert [v.host for v in invite.via][-1] == CALLSERVICE  # type: ignore[union-attr]
    assert len(invite.via) == 3  # type: ignore[union-attr]


def _answer_one_call(peer: SipPeer) -> None:
    while len(peer.received) < 3:
        message = peer.recv(timeout=30)
        if isinstance(message, Request):
            peer.received.append(message)
            peer.answer(message)


def test_call_from_the_premises_reaches_the_call_service_and_ends(roles: Roles) -> None:
    peer = roles.premises
    peer.sock.sendall(
        premises_request("INVITE", f"sip:test@{CALLSERVICE}", call_id="c2c-1", cseq=1,
                         branch="z9hG4bKc2c1")
    )  # fmt: skip
    statuses = []
    while not statuses or statuses[-1] < 200:
        message = peer.recv(timeout=30)
        assert isinstance(message, Response), message
        statuses.append(message.status_code)
    assert statuses == [100, 180, 200]
    assert message.get("Content-Type") == "application/sdp"
    routes = tuple(reversed(message.get_all("Record-Route")))
    contact = message.get("Contact")
    assert contact is not None and message.to_address.tag
    uri = contact.strip("<>").split(">")[0]
    for method, cseq, branch in (("ACK", 1, "z9hG4bKc2c2"), ("BYE", 2, "z9hG4bKc2c3")):
        peer.sock.sendall(
            premises_request(method, uri, call_id="c2c-1", cseq=cseq, branch=branch,
                             to_tag=message.to_address.tag, routes=routes)
        )  # fmt: skip
    done = peer.recv(timeout=30)
    assert isinstance(done, Response) and (done.status_code, done.cseq.method) == (200, "BYE")
