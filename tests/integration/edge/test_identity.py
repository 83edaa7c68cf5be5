"""Who the edge admits, against a real ``hybridge edge serve`` on 127.0.0.1.

Every accepted peer has rejecting twins, each asserting the one log line the edge writes
and the metric it counts under the reason code. Two edges run: a strict one (CN never,
wildcards off) and a lenient one (CN when no SAN, wildcards on), so the CN-only and the
wildcard certificates are each refused by one and accepted by the other.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator

import pytest
from edgekit import (
    CLOUD,
    CONNECTOR,
    EdgeProcess,
    Identity,
    Pki,
    SipPeer,
    client_ssl,
    prepare_edge_dir,
    request,
    start_edge,
)

from hybridge.core.sip import Pong, Response
from hybridge.core.tlsverify import CnRule
from hybridge.edge.service import open_zone_store
from hybridge.edge.zones import Zone, ZoneKind

REFUSED = "hybridge_edge_connections_refused_total"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def strict(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    directory = tmp_path_factory.mktemp("strict")
    prepare_edge_dir(directory, pki, cn_rule=CnRule.NEVER, wildcards=False)
    process = start_edge(directory, pki, header_timeout=2.0, idle_timeout=3.0)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def lenient(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    directory = tmp_path_factory.mktemp("lenient")
    prepare_edge_dir(directory, pki, cn_rule=CnRule.WHEN_NO_SAN, wildcards=True)
    process = start_edge(directory, pki)
    yield process
    process.stop()


def _options(n: str) -> bytes:
    return request("OPTIONS", "sip:127.0.0.1", branch=f"z9hG4bK{n}", call_id=n, cseq=1)


def admitted(edge: EdgeProcess, port: int, pki: Pki, identity: Identity | None) -> bool:
    """True when an OPTIONS sent with ``identity`` is answered, False when the edge closes."""
    try:
        peer = SipPeer.connect(port, client_ssl(pki, identity))
    except (ssl.SSLError, ConnectionError):
        return False  # TLS 1.2-style refusal inside the handshake
    try:
        peer.send(_options("probe"))
        answer = peer.recv(timeout=5)
        return isinstance(answer, Response) and answer.status_code == 200
    except (ssl.SSLError, ConnectionError, OSError):
        # TLS 1.3: the client's handshake ends before the server has judged its certificate;
        # the refusal arrives as an alert or a closed connection on the first read.
        return False
    finally:
        peer.close()


def refused_with(
    edge: EdgeProcess, port: int, pki: Pki, identity: Identity | None, reason: str
) -> str:
    """Assert the connection is refused, counted under ``reason``; return the log line."""
    start = len(edge.lines)
    side = "cloud" if port == edge.cloud_port else "traversal"
    before = edge.metric(REFUSED, side=side, reason=reason)
    assert not admitted(edge, port, pki, identity)
    line = edge.wait_line(rf"{side} listener: .*reason {re.escape(reason)}\]", start=start)
    assert edge.metric(REFUSED, side=side, reason=reason) == before + 1
    return line.string


def test_right_name_from_the_trust_store_is_admitted(pki: Pki, strict: EdgeProcess) -> None:
    assert admitted(strict, strict.cloud_port, pki, pki.leaf("good", dns=[CLOUD]))


def test_wrong_name_is_refused_with_one_line_naming_both(pki: Pki, strict: EdgeProcess) -> None:
    wrong = pki.leaf("wrong", dns=["a.example", "b.example"])
    line = refused_with(strict, strict.cloud_port, pki, wrong, "name_mismatch")
    assert (
        "peer certificate identity unacceptable: presented SAN DNS:a.example, DNS:b.example; "
        "zone expects callservice.example.test (cn=never, wildcards=off)"
    ) in line


def test_right_name_from_an_untrusted_ca_is_refused(pki: Pki, strict: EdgeProcess) -> None:
    rogue = pki.leaf("rogue", issuer=pki.rogue, dns=[CLOUD])
    line = refused_with(strict, strict.cloud_port, pki, rogue, "untrusted_issuer")
    assert (
        "peer certificate refused (untrusted_issuer): unable to get local issuer certificate "
        "(OpenSSL verify code 20); it must chain to the edge's trust store"
    ) in line


def test_expired_certificate_is_refused(pki: Pki, strict: EdgeProcess) -> None:
    now = pki.window["not_before"]
    expired = pki.leaf(
        "expired", dns=[CLOUD], not_before=now - dt.timedelta(days=10), not_after=now
    )
    line = refused_with(strict, strict.cloud_port, pki, expired, "expired")
    assert "certificate has expired" in line


def test_no_client_certificate_is_refused(pki: Pki, strict: EdgeProcess) -> None:
    line = refused_with(strict, strict.cloud_port, pki, None, "no_certificate")
    assert "mutual TLS is required" in line


def test_cn_only_certificate_refused_when_cn_rule_is_never(
    pki: Pki, strict: EdgeProcess, lenient: EdgeProcess
) -> None:
    cn_only = pki.leaf("cn-only", cn=CLOUD)
    line = refused_with(strict, strict.cloud_port, pki, cn_only, "name_mismatch")
    assert f"presented CN {CLOUD}; zone expects {CLOUD} (cn=never" in line
    # the twin: the same certificate on a zone whose CN rule is when_no_san
    assert admitted(lenient, lenient.cloud_port, pki, cn_only)


def test_wildcard_certificate_refused_unless_the_zone_opted_in(
    pki: Pki, strict: EdgeProcess, lenient: EdgeProcess
) -> None:
    wildcard = pki.leaf("wildcard", dns=["*.example.test"])
    line = refused_with(strict, strict.cloud_port, pki, wildcard, "name_mismatch")
    assert "presented SAN DNS:*.example.test" in line
    assert admitted(lenient, lenient.cloud_port, pki, wildcard)


def test_two_hundred_intermediates_are_refused_fast(pki: Pki, strict: EdgeProcess) -> None:
    junk = tuple(pki.mod.make_ca(f"Junk {i}", issuer=pki.rogue, **pki.window) for i in range(200))
    many = pki.leaf("many", dns=[CLOUD], extra=junk)
    started = time.monotonic()
    line = refused_with(strict, strict.cloud_port, pki, many, "chain_too_long")
    assert time.monotonic() - started < 3.0
    # OpenSSL finds the path leaf -> root and ignores the junk; our bound refuses it
    assert "the peer sent 200 intermediate certificates; at most 8 are accepted" in line


def test_traversal_listener_admits_only_the_connector(pki: Pki, strict: EdgeProcess) -> None:
    connector = pki.leaf("connector", dns=[CONNECTOR])
    cloud = pki.leaf("cloud-on-traversal", dns=[CLOUD])
    assert admitted(strict, strict.traversal_port, pki, connector)
    line = refused_with(strict, strict.traversal_port, pki, cloud, "name_mismatch")
    assert f"zone expects {CONNECTOR}" in line
    # and the connector's certificate does not open the cloud listener
    refused_with(strict, strict.cloud_port, pki, connector, "name_mismatch")


def test_openssl_s_client_with_a_wrong_certificate_is_refused(
    pki: Pki, strict: EdgeProcess
) -> None:
    wrong = pki.leaf("s-client-wrong", dns=["intruder.example.test"])
    start = len(strict.lines)
    result = subprocess.run(
        [
            "openssl", "s_client", "-connect", f"127.0.0.1:{strict.cloud_port}",
            "-cert", str(wrong.chain), "-key", str(wrong.key), "-CAfile", str(pki.root_file()),
            "-tls1_3", "-quiet",
        ],
        input=_options("sclient").decode(), capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    assert "SIP/2.0 200" not in result.stdout
    line = strict.wait_line(r"cloud listener: .*reason name_mismatch\]", start=start)
    assert "presented SAN DNS:intruder.example.test" in line.string
    # the twin: the right certificate through the same tool gets its OPTIONS answered
    # (s_client -quiet keeps the connection after stdin ends: read, then stop it)
    good = pki.leaf("s-client-good", dns=[CLOUD])
    client = subprocess.Popen(
        [
            "openssl", "s_client", "-connect", f"127.0.0.1:{strict.cloud_port}",
            "-cert", str(good.chain), "-key", str(good.key), "-CAfile", str(pki.root_file()),
            "-tls1_3", "-quiet",
        ],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        output, _ = client.communicate(_options("sclient2").decode(), timeout=3)
    except subprocess.TimeoutExpired:
        client.kill()
        output, _ = client.communicate()
    assert "SIP/2.0 200 OK" in output


def test_slow_peer_is_timed_out(pki: Pki, strict: EdgeProcess) -> None:
    peer = SipPeer.connect(strict.cloud_port, client_ssl(pki, pki.leaf("slow", dns=[CLOUD])))
    start = len(strict.lines)
    started = time.monotonic()
    closed = False
    try:
        for byte in _options("slow")[:10]:
            peer.send(bytes([byte]))  # one header byte a second
            if peer.closed_by_edge(timeout=1.0):
                closed = True
                break
    except (ConnectionError, ssl.SSLError, OSError):
        closed = True
    finally:
        peer.close()
    elapsed = time.monotonic() - started
    assert closed and 2.0 <= elapsed < 8.0, elapsed  # header timeout 2 s, loaded CI slack
    line = strict.wait_line(
        r"closed: message incomplete after 2s .*reason header_timeout\]", start=start
    )
    assert line
    assert (
        strict.metric(
            "hybridge_edge_connections_closed_total", side="cloud", reason="header_timeout"
        )
        >= 1
    )


def test_ten_megabyte_message_is_refused_and_others_are_unaffected(
    pki: Pki, strict: EdgeProcess
) -> None:
    good = pki.leaf("big-sender", dns=[CLOUD])
    bystander = SipPeer.connect(strict.cloud_port, client_ssl(pki, good))
    big = SipPeer.connect(strict.cloud_port, client_ssl(pki, good))
    start = len(strict.lines)
    body = b"x" * (10 * 1024 * 1024)
    head = request(
        "MESSAGE", "sip:bob@premises.example.test", branch="z9hG4bKbig", call_id="big", cseq=1,
        extra=("Content-Type: text/plain",), body=b"",
    ).replace(b"Content-Length: 0", b"Content-Length: %d" % len(body))  # fmt: skip
    try:
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            big.send(head + body[: 1024 * 1024])
        assert big.closed_by_edge(timeout=5.0)
        line = strict.wait_line(r"closed: .*reason message_too_large\]", start=start)
        assert "SIP 413" in line.string
        bystander.send(_options("bystander"))
        answer = bystander.recv()
        assert isinstance(answer, Response) and answer.status_code == 200
    finally:
        big.close()
        bystander.close()


def test_idle_cloud_connection_is_closed_but_the_traversal_one_stays_up(
    pki: Pki, strict: EdgeProcess
) -> None:
    start = len(strict.lines)
    cloud = SipPeer.connect(strict.cloud_port, client_ssl(pki, pki.leaf("idle", dns=[CLOUD])))
    connector = SipPeer.connect(
        strict.traversal_port, client_ssl(pki, pki.leaf("keepalive", dns=[CONNECTOR]))
    )
    try:
        connector.send(b"\r\n\r\n")
        assert isinstance(connector.recv(), Pong)
        cloud.send(_options("idle"))
        assert isinstance(cloud.recv(), Response)
        # the cloud connection says nothing for longer than --idle-timeout 3 ...
        assert cloud.closed_by_edge(timeout=6.0)
        strict.wait_line(
            r"cloud connection \d+ .* closed: idle for 3s \[reason idle_timeout\]", start=start
        )
        # ... while the traversal connection, just as quiet, is kept up (RFC 5626 pings)
        connector.send(b"\r\n\r\n")
        assert isinstance(connector.recv(), Pong)
    finally:
        cloud.close()
        connector.close()


def test_sighup_reloads_zones_and_closes_connections_they_no_longer_admit(
    pki: Pki, lenient: EdgeProcess
) -> None:
    old_name = pki.leaf("before-reload", dns=[CLOUD])
    peer = SipPeer.connect(lenient.cloud_port, client_ssl(pki, old_name))
    try:
        peer.send(_options("before"))
        assert isinstance(peer.recv(), Response)
        start = len(lenient.lines)
        with open_zone_store(lenient.directory) as zones:
            zones.remove("cloud", actor="test")
            zones.add(Zone("cloud", ZoneKind.DNS, "callservice2.example.test"), actor="test")
        lenient.proc.send_signal(signal.SIGHUP)
        line = lenient.wait_line(
            r"closed: after reload: peer certificate identity unacceptable", start=start
        )
        assert "zone expects callservice2.example.test" in line.string
        lenient.wait_line(
            r"configuration reloaded: 2 zones, 1 anchors; 1 open connections closed", start=start
        )
        assert peer.closed_by_edge(timeout=5)
    finally:
        peer.close()
    # new connections follow the new zone at once: the old name is refused, the new admitted
    refused_with(lenient, lenient.cloud_port, pki, old_name, "name_mismatch")
    assert admitted(
        lenient, lenient.cloud_port, pki, pki.leaf("after", dns=["callservice2.example.test"])
    )
