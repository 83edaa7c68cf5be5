"""Helpers for the edge's integration tests: a real PKI, a real ``hybridge edge serve``
process on loopback, and small blocking SIP-over-TLS peers (a "cloud" and a "connector").

Nothing is mocked: certificates are built with ``cryptography`` (the shared factory in
``tests/unit/core/tlsverify/tlspki.py``, loaded by ``certs.load_tlspki``), the edge runs as a
subprocess, and every peer is a Python ``ssl`` socket speaking SIP framed by our own codec.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from certs import load_tlspki
from hybridge.core.sip import NEED_DATA, HeaderField, Pong, Request, Response, SipStream, serialize
from hybridge.core.tlsverify import CnRule
from hybridge.edge.service import open_zone_store
from hybridge.edge.zones import PeerAddress, Zone, ZoneKind
from hybridge.truststore import CertificateSource, open_trust_store

CLOUD = "callservice.example.test"
CONNECTOR = "connector.example.test"
EDGE = "edge.example.test"


@dataclass
class Identity:
    """A certificate chain file and key file on disk."""

    chain: Path
    key: Path


class Pki:
    """A trusted root, an untrusted root, and leaves valid around the real current time."""

    def __init__(self, directory: Path) -> None:
        self.mod = load_tlspki()
        self.dir = directory
        now = dt.datetime.now(dt.UTC)
        self.window = {
            "not_before": now - dt.timedelta(days=1),
            "not_after": now + dt.timedelta(days=1),
        }
        self.root = self.mod.make_ca("Edge Test Root", **self.window)
        self.rogue = self.mod.make_ca("Rogue Root", **self.window)

    def leaf(
        self, stem: str, *, issuer: Any = None, extra: tuple[Any, ...] = (), **kw: Any
    ) -> Identity:
        """A leaf written to ``<stem>.pem`` (leaf then ``extra``) and ``<stem>.key``."""
        options = {**self.window, **kw}
        issued = self.mod.make_leaf(issuer or self.root, **options)
        chain = self.dir / f"{stem}.pem"
        chain.write_bytes(issued.pem + b"".join(e.pem for e in extra))
        key = self.dir / f"{stem}.key"
        key.write_bytes(issued.key_pem())
        return Identity(chain, key)

    def root_file(self) -> Path:
        path = self.dir / "root.pem"
        path.write_bytes(self.root.pem)
        return path


def prepare_edge_dir(
    directory: Path,
    pki: Pki,
    *,
    cn_rule: CnRule = CnRule.WHEN_NO_SAN,
    wildcards: bool = False,
    cloud_peer: str | None = None,
    traversal: bool = True,
) -> None:
    """An edge data directory: the test root in its trust store, a DNS and a traversal zone."""
    with open_trust_store(directory) as trust:
        trust.add_manual([CertificateSource("root.pem", pki.root.pem)], actor="test")
    with open_zone_store(directory) as zones:
        zones.add(
            Zone(
                "cloud",
                ZoneKind.DNS,
                CLOUD,
                cn_rule=cn_rule,
                wildcards=wildcards,
                peer=PeerAddress.parse(cloud_peer) if cloud_peer else None,
            ),
            actor="test",
        )
        if traversal:
            zones.add(Zone("connector", ZoneKind.TRAVERSAL, CONNECTOR), actor="test")


@dataclass
class EdgeProcess:
    """A running ``hybridge edge serve``; its stderr lines are collected as they arrive."""

    proc: subprocess.Popen[str]
    directory: Path
    lines: list[str] = field(default_factory=list)
    cloud_port: int = 0
    traversal_port: int = 0
    metrics_port: int = 0

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str]:
        """The first stderr line (from index ``start``) matching ``pattern``; else fail."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines[start:]):
                found = regex.search(line)
                if found:
                    return found
            if self.proc.poll() is not None and not self._pumping.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r}; edge said:\n" + "\n".join(self.lines))

    def metric(self, name: str, **labels: str) -> float:
        """A sample from the edge's /metrics endpoint (0.0 when absent)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            text = r.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def start_edge(
    directory: Path,
    pki: Pki,
    *,
    header_timeout: float = 2.0,
    idle_timeout: float = 600.0,
    extra: tuple[str, ...] = (),
) -> EdgeProcess:
    """Start ``hybridge edge serve`` on free loopback ports and wait until it listens."""
    edge_id = pki.leaf("edge", dns=[EDGE], ips=["127.0.0.1"], cn=EDGE)
    options = (
        "--header-timeout", str(header_timeout), "--idle-timeout", str(idle_timeout), *extra,
    )  # fmt: skip
    return launch_edge(directory, edge_id, options=options)


def launch_edge(
    directory: Path, identity: Identity, *, options: tuple[str, ...] = (), metrics: bool = True
) -> EdgeProcess:
    """``hybridge edge serve`` presenting ``identity``, once it says where it listens.

    ``options`` follow the common ones; ``metrics`` also waits for (and records) the metrics
    port. Fails with the edge's output if it does not come up within 20 seconds.
    """
    argv = [
        sys.executable, "-m", "hybridge", "edge", "serve",
        "--data-dir", str(directory),
        "--cert", str(identity.chain), "--key", str(identity.key),
        "--cloud-port", "0", "--traversal-port", "0", "--metrics-port", "0",
        "--handshake-timeout", "3", *options,
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    edge = EdgeProcess(proc, directory)
    edge._pumping = threading.Thread(target=edge._pump, daemon=True)  # type: ignore[attr-defined]
    edge._pumping.start()  # type: ignore[attr-defined]
    try:
        ports = edge.wait_line(r"cloud on [\d.]+:(\d+) .*traversal on [\d.]+:(\d+)", timeout=20)
        edge.cloud_port, edge.traversal_port = int(ports.group(1)), int(ports.group(2))
        if metrics:
            edge.metrics_port = int(edge.wait_line(r"metrics on http://[\d.]+:(\d+)/").group(1))
    except AssertionError:
        edge.stop()
        raise
    return edge


@contextmanager
def running_edge(directory: Path, pki: Pki) -> Iterator[EdgeProcess]:
    """An edge with the default data directory (``prepare_edge_dir``), stopped on exit."""
    prepare_edge_dir(directory, pki)
    process = start_edge(directory, pki)
    yield process
    process.stop()


def client_ssl(pki: Pki, identity: Identity | None) -> ssl.SSLContext:
    """A client context trusting the test root, presenting ``identity`` if given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata=pki.root.pem.decode())
    if identity is not None:
        context.load_cert_chain(str(identity.chain), str(identity.key))
    return context


class SipPeer:
    """A blocking SIP-over-TLS peer: send bytes, receive parsed messages with a deadline."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.stream = SipStream(expect_pongs=True)

    @classmethod
    def connect(cls, port: int, context: ssl.SSLContext, *, timeout: float = 5.0) -> SipPeer:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        return cls(context.wrap_socket(raw, server_hostname=EDGE))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float = 5.0) -> Request | Response | Pong:
        """The next message; raises ``TimeoutError`` or ``ConnectionError`` (closed)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.stream.next_event()
            if isinstance(event, Request | Response | Pong):
                return event
            assert event is NEED_DATA, event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no SIP message in time")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the edge closed the connection")
            self.stream.receive_data(data)

    def closed_by_edge(self, timeout: float = 5.0) -> bool:
        """True when the edge closes the connection (EOF or reset) within ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                if not self.sock.recv(65536):
                    return True
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            return not isinstance(exc, TimeoutError)
        return False

    def close(self) -> None:
        self.sock.close()


def request(
    method: str,
    uri: str,
    *,
    branch: str,
    call_id: str,
    cseq: int,
    from_tag: str = "caller1",
    to_tag: str | None = None,
    via_host: str = "ua.example.test",
    routes: tuple[str, ...] = (),
    max_forwards: int | None = 70,
    extra: tuple[str, ...] = (),
    body: bytes = b"",
) -> bytes:
    """A request's wire bytes, as a UA would send it."""
    to = "<sip:bob@premises.example.test>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/TLS {via_host}:5061;branch={branch}",
        *(f"Route: {r}" for r in routes),
        *([f"Max-Forwards: {max_forwards}"] if max_forwards is not None else []),
        f"From: <sip:alice@example.test>;tag={from_tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:ua@{via_host}:5061;transport=tls>",
        *extra,
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


def expect(
    peer: SipPeer, kind: type, *, timeout: float = 5.0, **checks: object
) -> Request | Response | Pong:
    """The next message ``peer`` receives, asserted to be a ``kind`` whose attributes equal
    ``checks``; fails (AssertionError) on anything else or after ``timeout`` seconds."""
    message = peer.recv(timeout=timeout)
    assert isinstance(message, kind), message
    for name, value in checks.items():
        assert getattr(message, name) == value, (name, getattr(message, name))
    return message


def answer(
    peer: SipPeer, req: Request, status: int, reason: str, *, to_tag: str, contact: str
) -> None:
    """Send ``peer`` a response to ``req`` with ``to_tag`` and a Contact of ``contact``.

    RFC 3261 §12.1.1: a UAS copies the request's Record-Route values into its response.
    """
    copied = tuple(HeaderField("Record-Route", v) for v in req.get_all("Record-Route"))
    response = req.response(
        status, reason, to_tag=to_tag, headers=(*copied, HeaderField("Contact", contact))
    )
    peer.send(serialize(response))
