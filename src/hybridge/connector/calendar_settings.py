"""The calendar service's settings, and what decides how it reaches Exchange."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hybridge.connector.exchange_config import ExchangeConfig, ExchangeRecord
from hybridge.core.control import Backoff
from hybridge.truststore import TrustStore, TrustUse


@dataclass(frozen=True)
class CalendarSettings:
    """Timings of the calendar service (seconds); ``from_env`` reads ``HYBRIDGE_CALENDAR_*``."""

    users_poll: float = 60.0
    config_poll: float = 5.0
    #: The engine's poll of a mailbox without notifications (streaming catches the rest).
    sync_poll: float = 300.0
    #: How often a user's out-of-office settings are read again.
    status_interval: float = 300.0
    backoff: Backoff = field(default_factory=lambda: Backoff(2.0, 300.0))
    streaming: bool = True
    workers: int = 8

    def __post_init__(self) -> None:
        for name in ("users_poll", "config_poll", "sync_poll", "status_interval"):
            value = getattr(self, name)
            if not 0.1 <= value <= 86400:
                raise ValueError(f"calendar {name} {value!r} must be 0.1..86400 seconds")
        if not 1 <= self.workers <= 64:
            raise ValueError(f"calendar workers {self.workers!r} must be 1..64")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CalendarSettings:
        """Settings from ``HYBRIDGE_CALENDAR_USERS_POLL``, ``_CONFIG_POLL``, ``_SYNC_POLL``,
        ``_STATUS_INTERVAL``, ``_BACKOFF_BASE``, ``_BACKOFF_CAP``, ``_STREAMING`` (0/1),
        ``_WORKERS``. Raises ValueError naming a bad one."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in ("users_poll", "config_poll", "sync_poll", "status_interval"):
            raw = env.get(f"HYBRIDGE_CALENDAR_{name.upper()}")
            if raw is not None:
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise ValueError(
                        f"HYBRIDGE_CALENDAR_{name.upper()}={raw!r} is not a number of seconds"
                    ) from None
        base = env.get("HYBRIDGE_CALENDAR_BACKOFF_BASE")
        cap = env.get("HYBRIDGE_CALENDAR_BACKOFF_CAP")
        if base is not None or cap is not None:
            try:
                values["backoff"] = Backoff(float(base or 2.0), float(cap or 300.0))
            except ValueError as exc:
                raise ValueError(f"HYBRIDGE_CALENDAR_BACKOFF_*: {exc}") from None
        streaming = env.get("HYBRIDGE_CALENDAR_STREAMING")
        if streaming is not None:
            if streaming not in ("0", "1"):
                raise ValueError(f"HYBRIDGE_CALENDAR_STREAMING={streaming!r} must be 0 or 1")
            values["streaming"] = streaming == "1"
        workers = env.get("HYBRIDGE_CALENDAR_WORKERS")
        if workers is not None:
            if not workers.isdigit():
                raise ValueError(f"HYBRIDGE_CALENDAR_WORKERS={workers!r} must be a number")
            values["workers"] = int(workers)
        return cls(**values)


def fingerprint(record: ExchangeRecord) -> tuple[str, ...] | None:
    """What makes a running engine stale: the configuration's id, its last change and its
    password's version. None when the configuration has no password (nothing can run)."""
    if record.password is None:
        return None
    return (
        record.id,
        record.updated_at.isoformat(),
        str(record.password.version),
        record.password.set_at.isoformat(),
    )


def ews_ssl_context(store: TrustStore, config: ExchangeConfig) -> ssl.SSLContext:
    """The TLS context for EWS: the platform trust store, or the admin's explicit opt-out.

    Raises:
        TrustStoreError: no anchor to verify with.
    """
    if not config.verify_tls:
        # TLS stays on; only the certificate check is off, because the admin confirmed it
        # when saving (ExchangeService.save needs confirm_insecure) and pages warn about it.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    # DESIGN.md §3 invariant 1: EWS is verified by the platform anchors, never bootstrap.
    return store.ssl_context(TrustUse.PLATFORM)
