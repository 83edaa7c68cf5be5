"""The edge's Prometheus metrics, in a registry of their own (one per server).

A registry per ``EdgeServer`` keeps two servers in one process (tests, the demo) apart;
``hybridge edge serve --metrics-port`` exposes it over HTTP.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class EdgeMetrics:
    """Counters by side, zone and refusal reason, and the open-connection gauge."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.accepted = Counter(
            "hybridge_edge_connections_accepted",
            "TLS connections whose peer passed path validation and a zone's name rule.",
            ["side", "zone"],
            registry=self.registry,
        )
        self.refused = Counter(
            "hybridge_edge_connections_refused",
            "Connections closed before any SIP was relayed, by reason code.",
            ["side", "reason"],
            registry=self.registry,
        )
        self.closed = Counter(
            "hybridge_edge_connections_closed",
            "Admitted connections closed by the edge, by reason code.",
            ["side", "reason"],
            registry=self.registry,
        )
        self.open = Gauge(
            "hybridge_edge_connections_open",
            "Admitted connections currently open.",
            ["side"],
            registry=self.registry,
        )
        self.messages = Counter(
            "hybridge_edge_messages",
            "SIP messages received on admitted connections, by what the relay did.",
            ["side", "action"],
            registry=self.registry,
        )

    def value(self, name: str, **labels: str) -> float:
        """The current value of sample ``name`` with ``labels`` (0.0 when never set)."""
        found = self.registry.get_sample_value(name, labels)
        return found if found is not None else 0.0
