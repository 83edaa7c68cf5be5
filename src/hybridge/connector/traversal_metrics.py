"""The traversal client's metrics (Prometheus, via prometheus-client; served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTED = Gauge(
    "hybridge_connector_traversal_connected",
    "1 while the traversal connection to the edge is up (admitted: a keep-alive was answered).",
)
REDIALS = Counter(
    "hybridge_connector_traversal_redials_total",
    "Re-dials of the edge after a failed or lost traversal connection.",
)
FAILURES = Counter(
    "hybridge_connector_traversal_failures_total",
    "Traversal connections that failed or were lost, by reason.",
    ["reason"],
)
RELAYED = Counter(
    "hybridge_connector_traversal_messages_relayed_total",
    "SIP messages relayed, by direction (to_edge, to_premises) and kind (request, response).",
    ["direction", "kind"],
)
ANSWERED = Counter(
    "hybridge_connector_traversal_messages_answered_total",
    "SIP requests the connector answered itself, by status (483, 503, ...).",
    ["status"],
)
DROPPED = Counter(
    "hybridge_connector_traversal_messages_dropped_total",
    "SIP messages dropped (a response whose Via is not ours, an ACK that cannot go on).",
)
PING_RTT = Gauge(
    "hybridge_connector_traversal_ping_rtt_seconds",
    "Round-trip time of the last CRLF keep-alive on the traversal connection.",
)
PREMISES_CONNECTED = Gauge(
    "hybridge_connector_traversal_premises_connected",
    "1 while the connection to the premises SIP server is up.",
)
