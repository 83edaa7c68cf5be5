"""The cloud refuses the edge's certificate after the edge's TLS 1.3 handshake: 503, not silence.

A real ``hybridge edge serve`` dials a test "cloud" (a Python ``ssl`` server on 127.0.0.1)
when the premises side sends an INVITE and no cloud connection is up. Under TLS 1.3 the
edge's handshake completes before the cloud judges the edge's client certificate, so the
edge has already admitted the cloud and relayed the INVITE when the refusal comes: an alert
on its first read, or a close without a word. Either way the caller must get a 503 with a
``Warning`` saying why, and the edge one log line and one count. Twins: the same refusal
under TLS 1.2 (inside the handshake: a 503 as for any failed dial, the same log line), and
a cloud that admits the edge and answers (its 180 reaches the caller, nothing refused).
"""

from __future__ import annotations

import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from edgekit import (
    CLOUD,
    CONNECTOR,
    EdgeProcess,
    Pki,
    SipPeer,
    client_ssl,
    expect,
    prepare_edge_dir,
    request,
    start_edge,
)

from hybridge.core.sip import Pong, Request, Response, serialize

REFUSED = "hybridge_edge_connections_refused_total"
UNKNOWN_CA = (
    "the peer refused our certificate (alert unknown_ca): its trust store lacks the root of "
    "our certificate"
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def _cloud_context(pki: Pki, *, trusts: bytes, version: ssl.TLSVersion) -> ssl.SSLContext:
    identity = pki.leaf("callservice", dns=[CLOUD])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.verify_mode = ssl.CERT_REQUIRED  # the edge must present its certificate
    context.load_verify_locations(cadata=trusts.decode())
    context.load_cert_chain(str(identity.chain), str(identity.key))
    context.maximum_version = version
    return context


class Cloud:
    """A test cloud on one loopback port: each connection is served by the next behaviour
    a test queued (one edge process serves the whole module; each test's INVITE finds no
    cloud connection up, so the edge dials again)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.behaviours: queue.Queue[Callable[[socket.socket], None]] = queue.Queue()
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return  # closed: the module is done
            with raw:
                try:
                    self.behaviours.get(timeout=10)(raw)
                except Exception as exc:  # reported by the test that queued it
                    self.errors.append(exc)

    def close(self) -> None:
        self.listener.close()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def stage(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cloud, EdgeProcess]]:
    """The test cloud and an edge whose DNS zone dials it."""
    test_cloud = Cloud()
    directory = tmp_path_factory.mktemp("edge")
    prepare_edge_dir(directory, pki, cloud_peer=f"127.0.0.1:{test_cloud.port}")
    edge = start_edge(directory, pki)
    try:
        yield test_cloud, edge
    finally:
        edge.stop()
        test_cloud.close()


@contextmanager
def calling(
    pki: Pki, stage: tuple[Cloud, EdgeProcess], serve: Callable[[socket.socket], None]
) -> Iterator[tuple[EdgeProcess, SipPeer, int]]:
    """A connector admitted on the edge; the cloud's next connection is served by ``serve``.

    Yields the edge, the connector and the edge's log length before the test.
    """
    test_cloud, edge = stage
    test_cloud.behaviours.put(serve)
    start = len(edge.lines)
    connector = SipPeer.connect(
        edge.traversal_port, client_ssl(pki, pki.leaf("connector", dns=[CONNECTOR]))
    )
    try:
        connector.send(b"\r\n\r\n")  # RFC 5626 keep-alive: the pong proves admission
        assert isinstance(connector.recv(), Pong)
        yield edge, connector, start
    finally:
        connector.close()
    assert not test_cloud.errors, test_cloud.errors


def _invite(n: str) -> bytes:
    return request("INVITE", f"sip:alice@{CLOUD}", branch=f"z9hG4bK{n}", call_id=n, cseq=1,
                   via_host="pbx.premises.example.test")  # fmt: skip


def _refusing(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    def serve(raw: socket.socket) -> None:
        try:
            context.wrap_socket(raw, server_side=True)
        except ssl.SSLError:
            # OpenSSL has sent its alert; keep the socket open a moment so the alert, not
            # a reset caused by the edge's INVITE arriving at a closed socket, is read.
            time.sleep(1.0)
            return
        raise AssertionError("the test cloud admitted a certificate it must refuse")

    return serve


Stage = tuple[Cloud, EdgeProcess]


def _refusals(edge: EdgeProcess) -> float:
    return edge.metric(REFUSED, side="cloud", reason="refused_by_peer")


def test_an_alert_after_the_tls13_handshake_gets_the_caller_a_503_with_a_warning(
    pki: Pki, stage: Stage
) -> None:
    context = _cloud_context(pki, trusts=pki.rogue.pem, version=ssl.TLSVersion.TLSv1_3)
    before = _refusals(stage[1])
    with calling(pki, stage, _refusing(context)) as (edge, connector, start):
        connector.send(_invite("a13"))
        refused = expect(connector, Response, status_code=503, timeout=10)
        assert isinstance(refused, Response)
        assert refused.via[0].branch == "z9hG4bKa13"
        assert refused.get_all("Warning") == (
            f'399 127.0.0.1 "cloud refused the edge: {UNKNOWN_CA}"',
        )
        line = edge.wait_line(r"cloud dial-out: the peer refused our certificate", start=start)
        assert line.string.endswith(
            f"{UNKNOWN_CA} [peer 127.0.0.1:{stage[0].port}, reason refused_by_peer]"
        )
        assert _refusals(edge) == before + 1


def test_a_silent_close_after_the_handshake_gets_the_caller_a_503_with_a_warning(
    pki: Pki, stage: Stage
) -> None:
    """The cloud admits the edge in TLS, then (its own check failing) closes unanswered."""
    context = _cloud_context(pki, trusts=pki.root.pem, version=ssl.TLSVersion.TLSv1_3)
    got: list[bytes] = []

    def serve(raw: socket.socket) -> None:
        sock = context.wrap_socket(raw, server_side=True)
        sock.settimeout(5)
        got.append(sock.recv(65536))  # the relayed INVITE, left unanswered
        sock.close()  # no close_notify: as our call service drops a refused edge

    with calling(pki, stage, serve) as (edge, connector, start):
        connector.send(_invite("s13"))
        refused = expect(connector, Response, status_code=503, timeout=10)
        assert isinstance(refused, Response)
        (warning,) = refused.get_all("Warning")
        assert warning.startswith(
            '399 127.0.0.1 "cloud refused the edge: the peer closed the connection after the '
            "TLS handshake without answering"
        )
        edge.wait_line(
            r"cloud dial-out: the peer closed the connection after the TLS handshake without "
            r"answering.* reason refused_by_peer\]",
            start=start,
        )
    assert got and got[0].startswith(b"INVITE sip:alice@")


def test_the_same_refusal_under_tls12_comes_inside_the_handshake(pki: Pki, stage: Stage) -> None:
    context = _cloud_context(pki, trusts=pki.rogue.pem, version=ssl.TLSVersion.TLSv1_2)
    with calling(pki, stage, _refusing(context)) as (edge, connector, start):
        connector.send(_invite("a12"))
        refused = expect(connector, Response, status_code=503, timeout=10)
        assert isinstance(refused, Response) and refused.get_all("Warning") == ()
        line = edge.wait_line(r"cloud dial-out: the peer refused our certificate", start=start)
        assert line.string.endswith(
            f"{UNKNOWN_CA} [peer 127.0.0.1:{stage[0].port}, reason refused_by_peer]"
        )


def test_a_cloud_that_admits_the_edge_answers_and_nothing_is_refused(
    pki: Pki, stage: Stage
) -> None:
    context = _cloud_context(pki, trusts=pki.root.pem, version=ssl.TLSVersion.TLSv1_3)

    def serve(raw: socket.socket) -> None:
        peer = SipPeer(context.wrap_socket(raw, server_side=True))
        invite = peer.recv(timeout=5)
        assert isinstance(invite, Request)
        peer.send(serialize(invite.response(180, "Ringing", to_tag="cloud1")))
        time.sleep(0.5)
        peer.close()

    before = _refusals(stage[1])
    with calling(pki, stage, serve) as (edge, connector, start):
        connector.send(_invite("ok13"))
        expect(connector, Response, status_code=180, timeout=10)
        time.sleep(1.0)  # the cloud's close after its answer is no refusal either
        assert _refusals(edge) == before
        assert not [line for line in edge.lines[start:] if "dial-out" in line]
