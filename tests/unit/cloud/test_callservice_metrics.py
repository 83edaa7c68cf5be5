"""The call service's Prometheus counters, moved by real TLS connections and real calls.

In-process (the counters live in this process's default registry) but nothing mocked: the
call service's listener on 127.0.0.1 with the demo PKI, real client certificates, and a
second listener presenting the edge's certificate as the far end of a test call. Each
test reads the counters before and after and asserts the exact labelled series moved (and
its neighbours did not).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from cloud_helpers import Cloud
from cryptography import x509
from prometheus_client import REGISTRY
from trustme import CA

from hybridge.cloud.callservice_call import place_test_call
from hybridge.cloud.callservice_edges import EdgeAddress, OrgEdge
from hybridge.cloud.callservice_metrics import record_test_call
from hybridge.cloud.callservice_server import CallServiceConfig, CallServiceServer
from hybridge.cloud.callservice_settings import CallServiceSettings
from hybridge.connector.demo_run import free_port
from hybridge.demo.pki import DemoPki

PREFIX = "hybridge_cloud_callservice_"
ORG_ID = "00000000-0000-0000-0000-000000000001"


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(PREFIX + name, labels)
    return 0.0 if value is None else value


def snapshot() -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in REGISTRY.collect():
        if family.name.startswith(PREFIX):
            for s in family.samples:
                if s.name.endswith("_total"):
                    out[(s.name, repr(sorted(s.labels.items())))] = s.value
    return out


def moved(before: dict[tuple[str, str], float]) -> dict[str, float]:
    after = snapshot()
    return {
        f"{name}{labels}": value - before.get((name, labels), 0.0)
        for (name, labels), value in after.items()
        if value != before.get((name, labels), 0.0)
    }


def anchors(pki: DemoPki) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_pem_x509_certificates(pki.root_ca.read_bytes()))


def listener(
    cert: Path, key: Path, edge_name: str, trusted: tuple[x509.Certificate, ...]
) -> CallServiceServer:
    settings = CallServiceSettings(cert_file=cert, key_file=key, port=0, handshake_timeout=5)
    edge = OrgEdge(ORG_ID, "Acme", edge_name)
    return CallServiceServer(settings, lambda: CallServiceConfig(trusted, (edge,)))


async def dial(port: int, pki: DemoPki, identity: tuple[Path, Path] | None) -> None:
    """Dial as a would-be edge and send an OPTIONS; read until the server closes."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(pki.root_ca))
    if identity is not None:
        context.load_cert_chain(str(identity[0]), str(identity[1]))
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context), 10
        )
    except (ssl.SSLError, OSError):
        return
    try:
        writer.write(b"OPTIONS sip:callservice.hybridge.test SIP/2.0\r\n\r\n")
        async with asyncio.timeout(10):
            while await reader.read(65536):
                pass
    except (ssl.SSLError, OSError):
        pass
    finally:
        writer.transport.abort()


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the counter did not move in time"
        await asyncio.sleep(0.02)


def run(work: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(work())


def refused_by(
    demo_pki: DemoPki,
    edge_name: str,
    identity: tuple[Path, Path] | None,
    trusted: tuple[x509.Certificate, ...] | None = None,
) -> dict[str, float]:
    before = snapshot()

    async def work() -> None:
        server = listener(
            demo_pki.callservice_cert,
            demo_pki.callservice_key,
            edge_name,
            anchors(demo_pki) if trusted is None else trusted,
        )
        await server.start()
        try:
            await dial(server.port, demo_pki, identity)
            stats = server.stats
            await until(lambda: sum(stats.refusals.values()) + sum(stats.admitted.values()) >= 1)
        finally:
            await server.close()

    run(work)
    return moved(before)


def test_a_wrong_name_certificate_counts_name_mismatch(demo_pki: DemoPki) -> None:
    # The edge's real certificate names edge.hybridge.test; the organisation expects another.
    identity = (demo_pki.edge_cert, demo_pki.edge_key)
    assert refused_by(demo_pki, "other-edge.hybridge.test", identity) == {
        f"{PREFIX}connections_refused_total[('reason', 'name_mismatch')]": 1.0
    }


def test_the_twin_the_right_name_counts_accepted(demo_pki: DemoPki) -> None:
    identity = (demo_pki.edge_cert, demo_pki.edge_key)
    assert refused_by(demo_pki, "edge.hybridge.test", identity) == {
        f"{PREFIX}connections_accepted_total[]": 1.0
    }


def test_no_client_certificate_counts_no_certificate(demo_pki: DemoPki) -> None:
    assert refused_by(demo_pki, "edge.hybridge.test", None) == {
        f"{PREFIX}connections_refused_total[('reason', 'no_certificate')]": 1.0
    }


def test_an_untrusted_issuer_counts_untrusted_issuer(demo_pki: DemoPki) -> None:
    # Anchors that do not include the demo root: the edge's chain leads nowhere we trust.
    stranger = x509.load_pem_x509_certificate(CA().cert_pem.bytes())
    identity = (demo_pki.edge_cert, demo_pki.edge_key)
    assert refused_by(demo_pki, "edge.hybridge.test", identity, (stranger,)) == {
        f"{PREFIX}connections_refused_total[('reason', 'untrusted_issuer')]": 1.0
    }


def placed(demo_pki: DemoPki, edge_name: str, *, listening: bool = True) -> dict[str, float]:
    """A test call from the call service to a listener presenting the edge's certificate
    (it expects the call service's name, as the edge's DNS zone does)."""
    before = snapshot()

    async def work() -> None:
        far = listener(
            demo_pki.edge_cert, demo_pki.edge_key, "callservice.hybridge.test", anchors(demo_pki)
        )
        await far.start()
        port = far.port if listening else free_port()
        if not listening:
            await far.close()
        try:
            await place_test_call(
                OrgEdge(ORG_ID, "Acme", edge_name, EdgeAddress("127.0.0.1", port)),
                to_uri="sip:test@edge.hybridge.test",
                anchors=anchors(demo_pki),
                cert_file=demo_pki.callservice_cert,
                key_file=demo_pki.callservice_key,
                via_host="127.0.0.1",
                timeout=5,
                invite_timeout=5,
            )
        finally:
            await far.close()

    run(work)
    return moved(before)


def test_a_completed_test_call_counts_ok_placed_and_answered(demo_pki: DemoPki) -> None:
    assert placed(demo_pki, "edge.hybridge.test") == {
        # The far listener (in this process too) admitted us and answered the INVITE.
        f"{PREFIX}connections_accepted_total[]": 1.0,
        f"{PREFIX}calls_answered_total[('status', '200')]": 1.0,
        f"{PREFIX}calls_placed_total[('status', '200')]": 1.0,
        f"{PREFIX}test_calls_total[('result', 'ok')]": 1.0,
    }


def test_an_edge_of_another_name_counts_edge_refused(demo_pki: DemoPki) -> None:
    result = placed(demo_pki, "other-edge.hybridge.test")
    # The far end admitted the call service; the call service refused the far end's name.
    assert result == {
        f"{PREFIX}connections_accepted_total[]": 1.0,
        f"{PREFIX}calls_placed_total[('status', 'none')]": 1.0,
        f"{PREFIX}test_calls_total[('result', 'edge_refused')]": 1.0,
    }


def test_nothing_listening_counts_tls_failed(demo_pki: DemoPki) -> None:
    assert placed(demo_pki, "edge.hybridge.test", listening=False) == {
        f"{PREFIX}calls_placed_total[('status', 'none')]": 1.0,
        f"{PREFIX}test_calls_total[('result', 'tls_failed')]": 1.0,
    }


def test_an_unknown_result_is_a_bug_not_a_new_series() -> None:
    before = sample("test_calls_total", result="ok")
    try:
        record_test_call("maybe", 200)
    except ValueError as exc:
        assert "'maybe' is not one of" in str(exc)
    else:
        raise AssertionError("an unknown result was counted")
    assert sample("test_calls_total", result="ok") == before
    assert REGISTRY.get_sample_value(PREFIX + "test_calls_total", {"result": "maybe"}) is None


def test_the_cloud_serves_them_on_its_metrics_page(cloud: Cloud) -> None:
    page = cloud.client.get("/metrics")
    assert page.status_code == 200
    for line in (
        f'{PREFIX}connections_refused_total{{reason="name_mismatch"}}',
        f'{PREFIX}connections_refused_total{{reason="no_certificate"}}',
        f'{PREFIX}connections_refused_total{{reason="expired"}}',
        f'{PREFIX}test_calls_total{{result="tls_failed"}}',
        f"# TYPE {PREFIX}connections_accepted_total counter",
        f"# TYPE {PREFIX}calls_placed_total counter",
        f"# TYPE {PREFIX}calls_answered_total counter",
    ):
        assert line in page.text, line
