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
LISTENER_REFUSED = Counter(
    "hybridge_connector_traversal_listener_refused_total",
    "Connections to the premises listener refused, by reason (address_not_allowed, "
    "too_many_connections, and the TLS codes the edge uses: name_mismatch, untrusted_issuer, "
    "expired, no_certificate, handshake_failed, handshake_timeout, ...).",
    ["reason"],
)
PREMISES_INBOUND = Gauge(
    "hybridge_connector_traversal_premises_inbound_connections",
    "Connections the premises server holds open to the connector's listener.",
)
CONNECTIONS_CLOSED = Counter(
    "hybridge_connector_traversal_connections_closed_total",
    "Connections the connector closed because of what the peer sent, by side (edge, "
    "premises) and reason (header_timeout: a message left incomplete; bad_message: over "
    "the codec's limits or unframeable).",
    ["side", "reason"],
)
