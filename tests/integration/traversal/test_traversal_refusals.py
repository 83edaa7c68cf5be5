"""The traversal client's rejecting twins, with real processes.

One ``hybridge connector serve`` for the module, reconfigured per test with the real CLI
(the running client picks the change up and re-dials). Each twin asserts the exact reason
the connector (or the edge) logs, that the connector never reports itself connected, and
that it keeps re-dialling with a capped back-off (0.1 s base, 0.5 s cap in these tests).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from traversalkit import (
    CONNECTOR,
    EDGE,
    ConnectorProcess,
    EdgeProcess,
    Identity,
    Pki,
    prepare_edge_dir,
    running_edge,
    start_connector,
    start_edge_as,
)

from hybridge.connector.demo_run import free_port

CONNECTED = "hybridge_connector_traversal_connected"
REDIALS = "hybridge_connector_traversal_redials_total"
FAILURES = "hybridge_connector_traversal_failures_total"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def edge(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with running_edge(tmp_path_factory.mktemp("edge"), pki) as process:
        yield process


@pytest.fixture(scope="module")
def connector(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnectorProcess]:
    process = start_connector(tmp_path_factory.mktemp("connector-role"), pki)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def traversal_id(pki: Pki) -> Identity:
    return pki.leaf("traversal", dns=[CONNECTOR])


def _configure(
    connector: ConnectorProcess, port: int, identity: Identity | None, *, edge_name: str = EDGE
) -> int:
    """Set the configuration; returns the log offset from which its effects show."""
    start = len(connector.log())
    premises = f"sip:127.0.0.1:{free_port()};transport=tcp"
    connector.configure(f"127.0.0.1:{port}", edge_name, premises, identity)
    return start


def _assert_keeps_redialling(connector: ConnectorProcess, start: int, reason: str) -> None:
    """Three re-dials for ``reason`` after ``start``, each delay within the 0.5 s cap."""
    pattern = rf"\[reason {reason}\]; re-dialling the edge \S+ in (\d+\.\d+)s \(attempt (\d+)\)"
    deadline = time.monotonic() + 20
    found: list[re.Match[str]] = []
    while time.monotonic() < deadline and len(found) < 3:
        found = list(re.finditer(pattern, connector.log()[start:]))
        time.sleep(0.1)
    assert len(found) >= 3, connector.log()[start:]
    assert all(float(m.group(1)) <= 0.5 for m in found)  # capped back-off
    attempts = [int(m.group(2)) for m in found]
    assert attempts == sorted(attempts)
    assert connector.metric(CONNECTED) == 0.0


def test_edge_presenting_another_name_is_refused(
    pki: Pki, connector: ConnectorProcess, traversal_id: Identity, tmp_path: Path
) -> None:
    directory = tmp_path / "edge-wrong-name"
    directory.mkdir()
    prepare_edge_dir(directory, pki)
    impostor = start_edge_as(directory, pki.leaf("edge-wrong", dns=["intruder.example.test"]))
    try:
        start = _configure(connector, impostor.traversal_port, traversal_id)
        connector.wait_log(
            r"traversal: edge 127\.0\.0\.1:\d+ refused: peer certificate identity unacceptable: "
            r"presented SAN DNS:intruder\.example\.test; the traversal configuration expects "
            r"edge\.example\.test \[reason name_mismatch\]",
            start=start,
        )
        _assert_keeps_redialling(connector, start, "name_mismatch")
        assert connector.metric(FAILURES, reason="name_mismatch") >= 3
        assert "connected to the edge" not in connector.log()[start:]
    finally:
        impostor.stop()


def test_edge_from_an_untrusted_ca_is_refused(
    pki: Pki, connector: ConnectorProcess, traversal_id: Identity, tmp_path: Path
) -> None:
    directory = tmp_path / "edge-rogue"
    directory.mkdir()
    prepare_edge_dir(directory, pki)
    rogue = start_edge_as(directory, pki.leaf("edge-rogue", issuer=pki.rogue, dns=[EDGE]))
    try:
        start = _configure(connector, rogue.traversal_port, traversal_id)
        connector.wait_log(
            r"traversal: edge 127\.0\.0\.1:\d+: peer certificate refused \(untrusted_issuer\): "
            r"unable to get local issuer certificate \(OpenSSL verify code 20\); it must chain "
            r"to the platform trust store \[reason untrusted_issuer\]",
            start=start,
        )
        _assert_keeps_redialling(connector, start, "untrusted_issuer")
    finally:
        rogue.stop()


def test_edge_down_is_redialled_with_capped_backoff(
    connector: ConnectorProcess, traversal_id: Identity
) -> None:
    port = free_port()  # nothing listens there
    start = _configure(connector, port, traversal_id)
    connector.wait_log(rf"traversal: cannot connect to edge 127\.0\.0\.1:{port}", start=start)
    before = connector.metric(REDIALS)
    _assert_keeps_redialling(connector, start, "unreachable")
    assert connector.metric(REDIALS) > before


def test_connector_certificate_not_the_zones_name_is_refused_by_the_edge(
    pki: Pki, edge: EdgeProcess, connector: ConnectorProcess
) -> None:
    intruder = pki.leaf("traversal-intruder", dns=["intruder.example.test"])
    start = _configure(connector, edge.traversal_port, intruder)
    edge.wait_line(
        r"traversal listener: peer certificate identity unacceptable: presented "
        r".*intruder\.example\.test.*; zone expects connector\.example\.test",
        timeout=20,
    )
    connector.wait_log(
        r"the edge closed the traversal connection before answering the first keep-alive",
        start=start,
    )
    _assert_keeps_redialling(connector, start, "unreachable")
    assert "connected to the edge" not in connector.log()[start:]


def test_no_certificate_to_present(edge: EdgeProcess, connector: ConnectorProcess) -> None:
    # No dedicated certificate and no registration: nothing is dialled, the reason is logged.
    start = _configure(connector, edge.traversal_port, None)
    connector.wait_log(
        r"no certificate to present to the edge: no traversal certificate is configured and "
        r"the connector is not registered",
        start=start,
    )
    _assert_keeps_redialling(connector, start, "no_identity")


def test_the_right_configuration_connects_after_the_refusals(
    edge: EdgeProcess, connector: ConnectorProcess, traversal_id: Identity
) -> None:
    # The accepting twin on the same process: the back-off ends once the edge is right.
    start = _configure(connector, edge.traversal_port, traversal_id)
    connector.wait_log(r"traversal: connected to the edge", start=start, timeout=20)
    connector.wait_metric(CONNECTED, 1.0)
    done = connector.traversal("clear", "--json")  # the real CLI, on the running connector
    assert done.returncode == 0 and '"removed": true' in done.stdout
    connector.wait_metric(CONNECTED, 0.0)
