"""Settings of the cloud's call-service SIP peer (``hybridge cloud serve --sip-port ...``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Expressway's SIP TLS port between the edge and the cloud (the seed's 5062).
DEFAULT_SIP_PORT = 5062


@dataclass(frozen=True)
class CallServiceSettings:
    """Where the call service listens and which certificate it presents.

    ``cert_file``/``key_file``: the ``callservice.<domain>`` chain and key (serverAuth for
    the edge dialling in, clientAuth for test calls out). ``trust_file``: CA certificates
    an edge's certificate must chain to; ``None`` uses the cloud's published CA list.
    ``advertise``: the host name put in Via, Contact and SDP (default ``host``).
    Raises ``ValueError`` for an out-of-range port or timeout.
    """

    cert_file: Path
    key_file: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_SIP_PORT
    advertise: str | None = None
    trust_file: Path | None = None
    handshake_timeout: float = 5.0
    #: Seconds for a whole SIP message once its first byte arrived (a slow peer is closed).
    message_timeout: float = 5.0
    #: Seconds without a message before an admitted connection is closed.
    idle_timeout: float = 600.0
    #: Connections held at once (handshaking or admitted); past it, refused at once.
    max_connections: int = 256

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ValueError(f"SIP port {self.port!r} is not 0..65535 (0: any free port)")
        for name in ("handshake_timeout", "message_timeout", "idle_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} {getattr(self, name)!r} must be above 0 seconds")
        if self.max_connections < 1:
            raise ValueError(f"max_connections {self.max_connections!r} must be at least 1")

    @property
    def public_host(self) -> str:
        """The host name the call service puts in its SIP headers."""
        return self.advertise or self.host
