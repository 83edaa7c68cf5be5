"""How the call service words a refused edge: the shared wording, with the cloud's store."""

from __future__ import annotations

import socket

from hybridge.cloud.callservice_peer import NO_EDGE, REASONS, Refusal, handshake_refusal
from hybridge.tls import refusal as shared


def test_the_cloud_uses_the_shared_refusal_worded_for_its_trust_store() -> None:
    assert Refusal is shared.Refusal
    assert handshake_refusal(TimeoutError()) == Refusal(
        "handshake_timeout", "TLS handshake not completed in time; closed"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        try:
            socket.create_connection(probe.getsockname(), timeout=5).close()
        except ConnectionRefusedError as exc:
            refused = exc
        else:
            raise AssertionError("a bound socket that never listened accepted a connection")
    assert handshake_refusal(refused) == shared.handshake_refusal(
        refused, trust_store="the cloud's trust store"
    )
    assert handshake_refusal(refused).reason == "connection_refused"


def test_its_metric_labels_are_the_edges_plus_its_own() -> None:
    assert NO_EDGE == "no_edge_configured"
    assert REASONS is shared.REASONS
    assert NO_EDGE not in REASONS
