"""The control hub's settings (``HYBRIDGE_CONTROL_*`` for ``hybridge cloud serve``)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ControlSettings:
    """The hub's knobs; ``from_env`` reads them for ``hybridge cloud serve``.

    ``HYBRIDGE_CONTROL_REDIS_URL``   Redis for fan-out across cloud processes (unset: one)
    ``HYBRIDGE_CONTROL_HEARTBEAT``   heartbeat interval asked of connectors (s, default 30)
    ``HYBRIDGE_CONTROL_POLL``        database poll for missed notices (s, default 5)
    """

    redis_url: str | None = None
    heartbeat_interval: int = 30
    poll_interval: float = 5.0
    hello_timeout: float = 10.0
    batch_interval: float = 0.2
    node: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )

    def __post_init__(self) -> None:
        if not 1 <= self.heartbeat_interval <= 3600:
            raise ValueError(f"heartbeat interval {self.heartbeat_interval!r}; 1..3600 seconds")
        if not 0.05 <= self.poll_interval <= 3600:
            raise ValueError(f"poll interval {self.poll_interval!r}; 0.05..3600 seconds")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ControlSettings:
        """Settings from ``HYBRIDGE_CONTROL_*`` (see the class docstring).

        Raises:
            ValueError: a value is not a number in range.
        """
        env = dict(os.environ if environ is None else environ)
        return cls(
            redis_url=env.get("HYBRIDGE_CONTROL_REDIS_URL") or None,
            heartbeat_interval=int(env.get("HYBRIDGE_CONTROL_HEARTBEAT", "30")),
            poll_interval=float(env.get("HYBRIDGE_CONTROL_POLL", "5")),
        )

    @property
    def liveness_timeout(self) -> float:
        """Silence after which a connection is considered dead: three missed heartbeats."""
        return 3 * self.heartbeat_interval + 10
