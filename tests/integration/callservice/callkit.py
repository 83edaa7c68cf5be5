"""Helpers for the call service's integration tests: a real cloud with its SIP peer, a real
``hybridge edge serve``, and a blocking traversal peer standing in for the connector.

Nothing is mocked: the demo PKI's certificates (real keys), ``hybridge cloud serve`` and
``hybridge edge serve`` as subprocesses on 127.0.0.1, and Python ``ssl`` sockets speaking
SIP framed by our codec. The traversal peer is a test-side stand-in for the connector's
traversal client: it dials the edge's traversal port with the connector's certificate,
answers calls as a small UAS and places calls towards the cloud.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU
from cryptography.x509.oid import NameOID

from hybridge.cloud.callservice_edges import set_org_edge as store_org_edge
from hybridge.cloud.orgs import create_org_admin
from hybridge.connector.demo_run import RoleProcess, free_port, start_role
from hybridge.core.sip import (
    NEED_DATA,
    PONG,
    HeaderField,
    Ping,
    Pong,
    Request,
    Response,
    SipStream,
    serialize,
)
from hybridge.demo.pki import DemoPki
from hybridge.edge.service import open_zone_store
from hybridge.edge.zones import PeerAddress, Zone, ZoneKind
from hybridge.storage.db import Database, open_database, sqlite_url
from hybridge.truststore import CertificateSource, open_trust_store

ORG = "Demo Org"
EDGE_NAME = "edge.hybridge.test"
CALLSERVICE = "callservice.hybridge.test"
CONNECTOR = "connector.hybridge.test"


def hybridge(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``hybridge ARGS`` to completion (any exit status) and return it."""
    return subprocess.run(
        [sys.executable, "-m", "hybridge", *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def issue_leaf(
    pki: DemoPki,
    stem: str,
    dns: str,
    directory: Path,
    *,
    rogue: bool = False,
    expired: bool = False,
) -> tuple[Path, Path]:
    """A serverAuth+clientAuth leaf for ``dns`` from the demo issuing CA, or (``rogue``)
    from a fresh self-signed CA nobody trusts; ``expired``: it ended yesterday.
    Returns (chain file, key file)."""
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=30)
    if expired:
        start, end = now - dt.timedelta(days=30), now - dt.timedelta(days=1)
    if rogue:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rogue Root CA")])
        ca = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
    else:
        ca = x509.load_pem_x509_certificate((pki.directory / "issuing-ca.pem").read_bytes())
        loaded = serialization.load_pem_private_key(
            (pki.directory / "issuing-ca.key").read_bytes(), None
        )
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        ca_key = loaded
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
        .issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([EKU.SERVER_AUTH, EKU.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    chain = directory / f"{stem}.pem"
    chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, ca)))
    key_file = directory / f"{stem}.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return chain, key_file


def start_cloud_with_sip(work: Path, pki: DemoPki) -> tuple[RoleProcess, int]:
    """``hybridge cloud serve --sip-port`` with the demo PKI; returns it and its SIP port."""
    port, sip_port = free_port(), free_port()
    url = f"https://localhost:{port}"
    args = [
        "cloud", "serve", "--data-dir", str(work / "cloud"), "--host", "127.0.0.1",
        "--port", str(port), "--base-url", url,
        "--cert", str(pki.cloud_cert), "--key", str(pki.cloud_key),
        "--connector-ca", str(pki.connector_ca_cert),
        "--connector-ca-key", str(pki.connector_ca_key),
        "--list-signing-key", str(pki.list_signing_key), "--ca-roots", str(pki.cloud_ca_roots),
        "--sip-port", str(sip_port),
        "--callservice-cert", str(pki.callservice_cert),
        "--callservice-key", str(pki.callservice_key),
    ]  # fmt: skip
    cloud = start_role("cloud", args, url, pki.root_ca, work / "cloud.log", env=dict(os.environ))
    return cloud, sip_port


def _cloud_db(work: Path) -> Database:
    return open_database(sqlite_url(work / "cloud" / "cloud.db"), "cloud")


def create_org(work: Path, org: str = ORG) -> None:
    """An organisation (with one admin) in the cloud's database (in-process: fast)."""
    (work / "cloud").mkdir(parents=True, exist_ok=True)
    database = _cloud_db(work)
    try:
        with database.transaction() as db:
            now = dt.datetime.now(dt.UTC)
            email = f"admin{len(org)}@demo.test"
            create_org_admin(db, org, email, "correct horse battery staple 42", now)
    finally:
        database.dispose()


def set_org_edge(work: Path, subject_name: str, address: str | None, org: str = ORG) -> None:
    """What ``hybridge cloud edge set`` does (in-process: fast)."""
    database = _cloud_db(work)
    try:
        with database.transaction() as db:
            store_org_edge(db, org, subject_name, address, actor="test",
                           now=dt.datetime.now(dt.UTC))  # fmt: skip
    finally:
        database.dispose()


@dataclass
class EdgeRun:
    """A running ``hybridge edge serve`` and its ports; stderr lines are collected."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    cloud_port: int = 0
    traversal_port: int = 0

    def wait_line(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The first line matching ``pattern``; fails with the edge's output otherwise."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = regex.search(line)
                if found:
                    return found
            time.sleep(0.02)
        raise AssertionError(f"no edge line matching {pattern!r}:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def start_edge(
    directory: Path, pki: DemoPki, cloud_sip_port: int, *, cert: tuple[Path, Path] | None = None
) -> EdgeRun:
    """An edge data dir (demo root trusted, DNS zone for the call service dialling
    ``cloud_sip_port``, traversal zone for the connector) and ``hybridge edge serve``."""
    d = str(directory)
    with open_trust_store(directory) as trust:
        trust.add_manual([CertificateSource("root-ca.pem", pki.root_ca.read_bytes())], actor="test")
    with open_zone_store(directory) as zones:
        zones.add(Zone("cloud", ZoneKind.DNS, CALLSERVICE,
                       peer=PeerAddress("127.0.0.1", cloud_sip_port)), actor="test")  # fmt: skip
        zones.add(Zone("connector", ZoneKind.TRAVERSAL, CONNECTOR), actor="test")
    chain, key = cert or (pki.edge_cert, pki.edge_key)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybridge", "edge", "serve", "--data-dir", d, "--cert", str(chain),
         "--key", str(key), "--cloud-port", "0", "--traversal-port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    edge = EdgeRun(proc)

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            edge.lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        ports = edge.wait_line(r"cloud on [\d.]+:(\d+) .*traversal on [\d.]+:(\d+)", timeout=30)
    except AssertionError:
        edge.stop()
        raise
    edge.cloud_port, edge.traversal_port = int(ports.group(1)), int(ports.group(2))
    return edge


class SipPeer:
    """A blocking SIP peer on a connected socket (TLS or TCP), run from the test.

    Answers INVITE (100, 180, 200 with SDP), ACK (nothing) and BYE (200) in the background
    (``serve_in_background``), or sends and receives by hand. Records requests received.
    """

    def __init__(self, sock: socket.socket, *, expect_pongs: bool = False) -> None:
        self.sock = sock
        self.stream = SipStream(expect_pongs=expect_pongs)
        self.received: list[Request | Response] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def recv(self, timeout: float = 10.0) -> Request | Response | Pong:
        deadline = time.monotonic() + timeout
        while True:
            event = self.stream.next_event()
            if isinstance(event, Request | Response | Pong):
                return event
            if isinstance(event, Ping):  # RFC 5626 §3.5.1 keep-alive from the peer
                self.sock.sendall(PONG)
                continue
            assert event is NEED_DATA, event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no SIP message in time")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the edge closed the traversal connection")
            self.stream.receive_data(data)

    def answer(self, request: Request) -> None:
        routes = tuple(HeaderField("Record-Route", v) for v in request.get_all("Record-Route"))
        contact = HeaderField("Contact", "<sip:alice@pbx.premises.test;transport=tls>")
        if request.method == "INVITE":
            self.sock.sendall(serialize(request.response(100, "Trying")))
            self.sock.sendall(serialize(request.response(180, "Ringing", to_tag="uas1",
                                                         headers=(*routes, contact))))  # fmt: skip
            ok = request.response(200, "OK", to_tag="uas1", headers=(*routes, contact))
            body = b"v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            body += b"m=audio 40000 RTP/AVP 0\r\n"
            headers = tuple(h for h in ok.headers if h.name != "Content-Length")
            headers += (HeaderField("Content-Type", "application/sdp"),
                        HeaderField("Content-Length", str(len(body))))  # fmt: skip
            self.sock.sendall(serialize(Response(200, "OK", headers, body)))
        elif request.method == "BYE":
            self.sock.sendall(serialize(request.response(200, "OK")))

    def serve_in_background(self) -> None:
        """Answer requests until ``close`` (a daemon thread)."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    message = self.recv(timeout=0.5)
                except TimeoutError:
                    continue
                except (OSError, ConnectionError, ssl.SSLError):
                    return
                if isinstance(message, Request):
                    self.received.append(message)
                    self.answer(message)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def methods(self) -> list[str]:
        return [m.method for m in self.received if isinstance(m, Request)]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()


class TraversalPeer(SipPeer):
    """The connector's side of the traversal connection (a stand-in for the connector's
    traversal client): mutual TLS to the edge with the connector's certificate."""

    def __init__(self, pki: DemoPki, edge_port: int) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.load_verify_locations(cafile=str(pki.root_ca))
        context.load_cert_chain(str(pki.connector_cert), str(pki.connector_key))
        raw = socket.create_connection(("127.0.0.1", edge_port), timeout=20)
        super().__init__(context.wrap_socket(raw, server_hostname=EDGE_NAME), expect_pongs=True)
        # RFC 5626 §3.5.1: the edge pongs a ping once it admitted the connection.
        self.sock.sendall(b"\r\n\r\n")
        assert isinstance(self.recv(), Pong)


def premises_request(method: str, uri: str, *, call_id: str, cseq: int, branch: str,
                     to_tag: str | None = None, routes: tuple[str, ...] = (),
                     body: bytes = b"") -> bytes:  # fmt: skip
    """A request as the premises' PBX sends it over the traversal connection."""
    to = f"<sip:test@{CALLSERVICE}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/TLS pbx.premises.test:5061;branch={branch}",
        *(f"Route: {r}" for r in routes),
        "Max-Forwards: 70",
        "From: <sip:alice@premises.test>;tag=pbx1",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:alice@pbx.premises.test:5061;transport=tls>",
        *(["Content-Type: application/sdp"] if body else []),
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


def call_json(work: Path, pki: DemoPki, *args: str) -> tuple[int, dict[str, object] | None, str]:
    """``hybridge cloud call ... --json``: (exit status, parsed JSON or None, stderr)."""
    done = hybridge(
        "cloud", "call", "--data-dir", str(work / "cloud"),
        "--callservice-cert", str(pki.callservice_cert),
        "--callservice-key", str(pki.callservice_key), "--json", "--timeout", "10", *args,
    )  # fmt: skip
    parsed = json.loads(done.stdout) if done.stdout.strip().startswith("{") else None
    return done.returncode, parsed, done.stderr
