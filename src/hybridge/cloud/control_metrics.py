"""The cloud's control-channel metrics (Prometheus, via prometheus-client).

Process-wide (prometheus-client's default registry), so they are defined once here. No
label carries a connector id: a metric per connector would grow without bound with the
fleet; per-connector state is in the portal and the database.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTED = Gauge(
    "hybridge_cloud_control_connected_connectors",
    "Connectors holding a control channel to this cloud process.",
)
PUSHES_SENT = Counter(
    "hybridge_cloud_control_pushes_sent_total", "CA-list manifests pushed to connectors."
)
PUSHES_APPLIED = Counter(
    "hybridge_cloud_control_pushes_applied_total", "Pushes connectors acknowledged as applied."
)
PUSHES_REFUSED = Counter(
    "hybridge_cloud_control_pushes_refused_total",
    "Pushes connectors refused, by reason.",
    ["reason"],
)
REFUSED_CONNECTIONS = Counter(
    "hybridge_cloud_control_connections_refused_total",
    "Control connections refused (no or unknown certificate, deregistered, protocol).",
    ["code"],
)
HEARTBEAT_LAG = Histogram(
    "hybridge_cloud_control_heartbeat_lag_seconds",
    "How late a heartbeat arrived after the interval the cloud asked for.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
