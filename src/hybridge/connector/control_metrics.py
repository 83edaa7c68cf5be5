"""The connector's control-channel metrics (Prometheus, via prometheus-client)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTED = Gauge(
    "hybridge_connector_control_connected", "1 while the control channel to the cloud is open."
)
ALARM = Gauge(
    "hybridge_connector_control_unreachable_alarm",
    "1 while the cloud has been unreachable longer than the alarm threshold.",
)
PUSHES_APPLIED = Counter(
    "hybridge_connector_control_pushes_applied_total", "CA-list pushes applied."
)
PUSHES_REFUSED = Counter(
    "hybridge_connector_control_pushes_refused_total",
    "CA-list pushes refused, by reason.",
    ["reason"],
)
COMMANDS_REFUSED = Counter(
    "hybridge_connector_control_commands_refused_total",
    "Cloud commands refused, by reason.",
    ["reason"],
)
HEARTBEATS = Counter("hybridge_connector_control_heartbeats_total", "Heartbeats sent.")
RECONNECTS = Counter(
    "hybridge_connector_control_reconnects_total", "Reconnect attempts after a lost channel."
)
