"""``EdgeSettings``: how the edge listens and what it tolerates from a peer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hybridge.core.sip.section import DEFAULT_MAX_MESSAGE_SIZE
from hybridge.core.tlsverify import ChainLimits
from hybridge.edge.errors import EdgeSetupError
from hybridge.edge.zones import DEFAULT_CLOUD_PORT, DEFAULT_TRAVERSAL_PORT


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """How the edge listens and what it tolerates. Ports 0 pick free ports (tests)."""

    cert_file: Path
    key_file: Path
    host: str = "127.0.0.1"
    advertise: str | None = None
    cloud_port: int = DEFAULT_CLOUD_PORT
    traversal_port: int = DEFAULT_TRAVERSAL_PORT
    handshake_timeout: float = 5.0
    header_timeout: float = 5.0
    idle_timeout: float = 600.0
    connect_timeout: float = 5.0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    # Inbound TCP connections held at once, handshaking or admitted; past it a new one is
    # closed at once (Kamailio's tcp_max_connections defaults to 2048 for a whole proxy).
    max_connections: int = 1024
    chain_limits: ChainLimits = field(default_factory=ChainLimits)

    def __post_init__(self) -> None:
        for name in ("handshake_timeout", "header_timeout", "idle_timeout", "connect_timeout"):
            value = getattr(self, name)
            if not value > 0:
                raise EdgeSetupError(f"{name} must be a positive number of seconds, not {value!r}")
        if not isinstance(self.max_connections, int) or self.max_connections < 1:
            raise EdgeSetupError(
                f"max_connections must be a positive integer, not {self.max_connections!r}"
            )
        for name in ("cloud_port", "traversal_port"):
            value = getattr(self, name)
            if not 0 <= value < 65536:
                raise EdgeSetupError(f"{name} {value!r} is not a TCP port (0..65535)")
