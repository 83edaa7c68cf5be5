"""Load from real SIP software: SIPp (``sip-tester``, TCP only) behind ``stunnel4`` for TLS.

- Calls: a SIPp UAC → stunnel (mutual TLS, the call service's certificate, the edge's chain
  and name verified) → ``hybridge edge serve`` cloud zone → traversal → ``hybridge connector
  serve`` → a second SIPp, the premises UAS, over TCP. 200 calls at 40 calls/s on one
  persistent connection, each INVITE/180/200/ACK/BYE/200 with the Record-Route set used;
  every call completes on both SIPps and the edge stays healthy.
- OPTIONS: each ping on its own new mutual-TLS connection (``-t tn``), answered by the edge.
- Rejecting twins: stunnel presenting a certificate for another name — every call fails,
  the edge logs its refusal line once per connection and relays nothing; stunnel told to
  expect another edge name — stunnel itself refuses the edge (its checks are on).

The figures (calls/s achieved, mean response time) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgekit import (
    CLOUD,
    CONNECTOR,
    EDGE,
    EdgeProcess,
    Pki,
    SipPeer,
    client_ssl,
    expect,
    request,
    running_edge,
)
from sippkit import SippProcess, running_stunnel, start_sipp, wait_listening

from hybridge.core.sip import Response

# The real connector and its helpers live with the traversal tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traversal"))
from traversalkit import ConnectorProcess, start_connector

CALLS = 200
RATE = 40
MESSAGES = "hybridge_edge_messages_total"
REFUSED = "hybridge_edge_connections_refused_total"
ACCEPTED = "hybridge_edge_connections_accepted_total"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def edge(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with running_edge(tmp_path_factory.mktemp("edge"), pki) as process:
        yield process


@pytest.fixture(scope="module")
def uas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SippProcess]:
    """The premises SIP server: SIPp answering ``CALLS`` calls over TCP, then exiting."""
    process = start_sipp(
        tmp_path_factory.mktemp("sipp-uas"), "uas", scenario="uas_routed.xml", calls=CALLS,
        timeout=90,
    )  # fmt: skip
    wait_listening(process)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def connector(
    pki: Pki, edge: EdgeProcess, uas: SippProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConnectorProcess]:
    """``hybridge connector serve`` holding the traversal connection, relaying to SIPp."""
    process = start_connector(tmp_path_factory.mktemp("connector-role"), pki)
    try:
        identity = pki.leaf("traversal", dns=[CONNECTOR])
        done = process.traversal(
            "set", "--edge", f"127.0.0.1:{edge.traversal_port}", "--edge-name", EDGE,
            "--premises", f"sip:127.0.0.1:{uas.port};transport=tcp",
            "--cert", str(identity.chain), "--key", str(identity.key), "--keepalive", "0.5",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        process.wait_metric("hybridge_connector_traversal_connected", 1.0, timeout=30)
        process.wait_metric("hybridge_connector_traversal_premises_connected", 1.0, timeout=30)
        yield process
    finally:
        process.stop()


def _messages(edge: EdgeProcess, action: str) -> tuple[float, float]:
    """The edge's SIP message counter for ``action`` on its cloud and traversal sides."""
    return (
        edge.metric(MESSAGES, side="cloud", action=action),
        edge.metric(MESSAGES, side="traversal", action=action),
    )


def _edge_answers_options(pki: Pki, edge: EdgeProcess) -> None:
    # Health after the load: alive, and a fresh mutual-TLS connection gets its ping answered.
    assert edge.proc.poll() is None, "\n".join(edge.lines[-20:])
    peer = SipPeer.connect(edge.cloud_port, client_ssl(pki, pki.leaf("probe", dns=[CLOUD])))
    try:
        peer.send(request("OPTIONS", "sip:127.0.0.1", branch="z9hG4bKprobe", call_id="p", cseq=1))
        expect(peer, Response, status_code=200, timeout=10)
    finally:
        peer.close()


def test_sipp_calls_cross_the_edge_and_the_connector_to_a_sipp_uas(
    pki: Pki, edge: EdgeProcess, connector: ConnectorProcess, uas: SippProcess, tmp_path: Path
) -> None:
    forwarded, dropped = _messages(edge, "forwarded"), _messages(edge, "dropped")
    start = len(edge.lines)
    callservice = pki.leaf("callservice", dns=[CLOUD])
    with running_stunnel(
        tmp_path / "stunnel", callservice, pki.root_file(), connect=edge.cloud_port,
        verify_name=EDGE,
    ) as tunnel:  # fmt: skip
        # -d 200: each call stays up 200 ms between ACK and BYE, so calls overlap.
        uac = start_sipp(
            tmp_path / "sipp", "uac", scenario="uac_routed.xml", remote=tunnel.port,
            calls=CALLS, rate=RATE, timeout=40, extra=("-d", "200"),
        ).wait()  # fmt: skip
        stunnel_log = tunnel.log()
    print(f"\nSIPp UAC through stunnel, edge, connector: {uac.describe()}")
    assert uac.returncode == 0, uac.describe() + "\n" + uac.errors + uac.output[-3000:]
    assert (uac.created, uac.successful, uac.failed) == (CALLS, CALLS, 0), uac.describe()
    assert uac.errors.strip() == "", uac.errors  # no unexpected message on any call
    # The premises side saw every call through to its BYE, then exited by itself.
    premises = uas.wait()
    print(f"SIPp UAS on the premises side: {premises.counts()}")
    assert premises.returncode == 0, premises.counts() + "\n" + premises.errors
    assert (premises.created, premises.successful, premises.failed) == (CALLS, CALLS, 0)

    # stunnel verified the edge (verifyChain + checkHost) on one persistent connection.
    assert "Certificate accepted at depth=0: O=Hybridge Tests, CN=edge.example.test" in (
        stunnel_log
    )
    assert stunnel_log.count("accepted connection from") == 1
    edge.wait_line(r"cloud listener: admitted .* as zone cloud \(san_dns callservice", start=start)
    # Stateless relay, nothing lost: INVITE, ACK, BYE one way; 180, 200, 200 the other.
    assert _messages(edge, "forwarded") == (forwarded[0] + 3 * CALLS, forwarded[1] + 3 * CALLS)
    assert _messages(edge, "dropped") == dropped
    _edge_answers_options(pki, edge)
    assert connector.metric("hybridge_connector_traversal_connected") == 1.0
    assert not [line for line in edge.lines if re.search(r"Traceback|ERROR|CRITICAL", line)]
    assert "Traceback" not in connector.log()


def test_sipp_options_each_on_a_new_mutual_tls_connection(
    pki: Pki, edge: EdgeProcess, tmp_path: Path
) -> None:
    """100 pings at 25/s, ``-t tn``: one TLS handshake per ping, each answered by the edge."""
    pings = 100
    accepted = edge.metric(ACCEPTED, side="cloud", zone="cloud")
    answered = edge.metric(MESSAGES, side="cloud", action="answered_200")
    with running_stunnel(
        tmp_path / "stunnel", pki.leaf("callservice", dns=[CLOUD]), pki.root_file(),
        connect=edge.cloud_port, verify_name=EDGE,
    ) as tunnel:  # fmt: skip
        result = start_sipp(
            tmp_path / "sipp", "options", scenario="options_edge.xml", remote=tunnel.port,
            transport="tn", calls=pings, rate=25, timeout=30,
            extra=("-key", "edge_host", "127.0.0.1"),
        ).wait()  # fmt: skip
    print(f"\nSIPp OPTIONS, one mutual-TLS connection each: {result.describe()}")
    assert result.returncode == 0, result.describe() + "\n" + result.errors
    assert (result.created, result.successful, result.failed) == (pings, pings, 0)
    assert edge.metric(ACCEPTED, side="cloud", zone="cloud") == accepted + pings
    assert edge.metric(MESSAGES, side="cloud", action="answered_200") == answered + pings
    _edge_answers_options(pki, edge)


def test_sipp_behind_a_certificate_for_another_name_gets_no_call_through(
    pki: Pki, edge: EdgeProcess, tmp_path: Path
) -> None:
    """Rejecting twin: every call's connection is refused with the edge's one log line."""
    calls = 10
    start = len(edge.lines)
    refused = edge.metric(REFUSED, side="cloud", reason="name_mismatch")
    forwarded = _messages(edge, "forwarded")
    intruder = pki.leaf("intruder", dns=["intruder.example.test"])
    with running_stunnel(
        tmp_path / "stunnel", intruder, pki.root_file(), connect=edge.cloud_port,
        verify_name=EDGE,
    ) as tunnel:  # fmt: skip
        # -t tn: each call on its own connection, so each one meets the edge's check.
        result = start_sipp(
            tmp_path / "sipp", "uac", scenario="uac_routed.xml", remote=tunnel.port,
            transport="tn", calls=calls, rate=10, timeout=20, recv_timeout_ms=3000,
        ).wait()  # fmt: skip
    print(f"\nSIPp UAC with the wrong certificate: {result.describe()}")
    assert result.returncode == 1, result.describe()
    assert (result.created, result.successful, result.failed) == (calls, 0, calls)
    # The edge closed each TLS connection before any SIP, so SIPp saw each one closed.
    assert result.count("FailedTcpClosed") == calls, result.stats
    line = (
        "cloud listener: peer certificate identity unacceptable: presented SAN "
        "DNS:intruder.example.test; zone expects callservice.example.test "
        "(cn=when_no_san, wildcards=off) [peer 127.0.0.1:"
    )
    edge.wait_line(r"reason name_mismatch\]", start=start)
    refusals = [entry for entry in edge.lines[start:] if line in entry]
    assert len(refusals) == calls, "\n".join(edge.lines[start:])
    assert all(entry.endswith(", reason name_mismatch]") for entry in refusals)
    assert edge.metric(REFUSED, side="cloud", reason="name_mismatch") == refused + calls
    # stunnel sent each INVITE as early data of the session; none of it was relayed.
    assert _messages(edge, "forwarded") == forwarded
    _edge_answers_options(pki, edge)


def test_stunnel_refuses_an_edge_that_does_not_carry_the_expected_name(
    pki: Pki, edge: EdgeProcess, tmp_path: Path
) -> None:
    """Rejecting twin of the helper's own check: told to expect another edge name, stunnel
    refuses the edge's certificate (``checkHost``) and closes the client's connection.

    A plain socket is the client here, not SIPp: stunnel never reads what the client sent
    before the refused handshake, so the kernel resets that connection, and SIPp 3.6 treats
    a reset as a fatal error of the whole run (exit 255) rather than a failed call.
    """
    with running_stunnel(
        tmp_path / "stunnel", pki.leaf("callservice", dns=[CLOUD]), pki.root_file(),
        connect=edge.cloud_port, verify_name="other-edge.example.test",
    ) as tunnel:  # fmt: skip
        with socket.create_connection(("127.0.0.1", tunnel.port), timeout=10) as client:
            client.sendall(
                request("OPTIONS", "sip:127.0.0.1", branch="z9hG4bKsn", call_id="sn", cseq=1)
            )
            try:
                answer = client.recv(65536)
            except ConnectionResetError:
                answer = b""
        assert answer == b"", answer  # closed without a byte of SIP
        deadline = time.monotonic() + 10
        while "Rejected by CERT" not in tunnel.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        stunnel_log = tunnel.log()
    assert "CERT: Subject checks failed" in stunnel_log, stunnel_log
    assert "Rejected by CERT at depth=0: O=Hybridge Tests, CN=edge.example.test" in stunnel_log
