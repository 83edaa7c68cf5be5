"""The call service's refusal counters on a real cloud process's ``/metrics``.

``hybridge cloud serve --sip-port`` with the demo PKI; would-be edges dial its SIP port
over real TLS with real certificates (one naming another host, one from a CA nobody
trusts, none at all), then ``/metrics`` is scraped over verified HTTPS and parsed with
prometheus-client's own parser. Each refusal must move exactly its reason's series.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from callkit import (
    CALLSERVICE,
    create_org,
    issue_leaf,
    premises_request,
    set_org_edge,
    start_cloud_with_sip,
)
from prometheus_client.parser import text_string_to_metric_families

from hybridge.connector.demo_run import RoleProcess
from hybridge.demo.pki import DemoPki, init_demo_pki

pytestmark = pytest.mark.slow  # a real cloud process on loopback

REFUSED = "hybridge_cloud_callservice_connections_refused_total"
ACCEPTED = "hybridge_cloud_callservice_connections_accepted_total"


@dataclass
class Cloud:
    pki: DemoPki
    process: RoleProcess
    sip_port: int

    def counters(self) -> dict[tuple[str, str], float]:
        """Every call-service counter sample, keyed by (name, reason label or "")."""
        context = ssl.create_default_context(cafile=str(self.pki.root_ca))
        context.check_hostname = False  # the demo cloud's name is not 127.0.0.1
        page = httpx.get(self.process.url + "/metrics", verify=context, timeout=10).text
        out: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(page):
            for s in family.samples:
                if s.name.startswith("hybridge_cloud_callservice_") and s.name.endswith("_total"):
                    out[(s.name, s.labels.get("reason", ""))] = s.value
        return out

    def moved_after(self, before: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
        """The samples that changed, polled until one did (the refusal is counted after the
        client's side of a TLS 1.3 handshake is already done)."""
        deadline = time.monotonic() + 15
        while True:
            after = self.counters()
            changed = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k)}
            if changed or time.monotonic() > deadline:
                return changed
            time.sleep(0.1)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    work = tmp_path_factory.mktemp("callservice-metrics")
    pki, _ = init_demo_pki(work / "pki")
    create_org(work)
    process, sip_port = start_cloud_with_sip(work, pki)
    set_org_edge(work, "edge.hybridge.test", None)
    yield Cloud(pki, process, sip_port)
    process.stop()


def dial(cloud: Cloud, identity: tuple[Path, Path] | None) -> bytes:
    """Dial the SIP port as a would-be edge, send an OPTIONS, return what came back."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(cloud.pki.root_ca))
    if identity is not None:
        context.load_cert_chain(str(identity[0]), str(identity[1]))
    raw = socket.create_connection(("127.0.0.1", cloud.sip_port), timeout=20)
    try:
        with context.wrap_socket(raw, server_hostname=CALLSERVICE) as sock:
            sock.sendall(premises_request("OPTIONS", f"sip:{CALLSERVICE}", call_id="m", cseq=1,
                                          branch="z9hG4bKm"))  # fmt: skip
            return sock.recv(65536)
    except (ssl.SSLError, ConnectionError):
        return b""


def test_a_wrong_name_certificate_moves_name_mismatch_only(cloud: Cloud, tmp_path: Path) -> None:
    identity = issue_leaf(cloud.pki, "wrong", "rogue-edge.hybridge.test", tmp_path)
    before = cloud.counters()
    assert before[(REFUSED, "name_mismatch")] == 0.0  # declared before the first refusal
    assert dial(cloud, identity) == b""
    assert cloud.moved_after(before) == {(REFUSED, "name_mismatch"): 1.0}


def test_the_twins_untrusted_expired_and_no_certificate(cloud: Cloud, tmp_path: Path) -> None:
    cases: list[tuple[tuple[Path, Path] | None, str]] = [
        (issue_leaf(cloud.pki, "rogue", "edge.hybridge.test", tmp_path, rogue=True),
         "untrusted_issuer"),
        (issue_leaf(cloud.pki, "old", "edge.hybridge.test", tmp_path, expired=True), "expired"),
        (None, "no_certificate"),
    ]  # fmt: skip
    for identity, reason in cases:
        before = cloud.counters()
        assert dial(cloud, identity) == b""
        assert cloud.moved_after(before) == {(REFUSED, reason): 1.0}, reason


def test_the_right_name_moves_accepted(cloud: Cloud) -> None:
    before = cloud.counters()
    answer = dial(cloud, (cloud.pki.edge_cert, cloud.pki.edge_key))
    assert answer.startswith(b"SIP/2.0 200 OK\r\n")
    assert cloud.moved_after(before) == {(ACCEPTED, ""): 1.0}
