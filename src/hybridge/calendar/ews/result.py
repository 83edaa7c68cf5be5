"""The outcome of an Exchange connection test: one code per failure, a message, a fix."""

from __future__ import annotations

from dataclasses import dataclass

CODES = (
    "ok",
    "tls_untrusted",
    "tls_name_mismatch",
    "tls_error",
    "dns",
    "connection_refused",
    "timeout",
    "unauthorized",
    "impersonation_denied",
    "mailbox_not_found",
    "server_busy",
    "autodiscover_failed",
    "ews_error",
)


@dataclass(frozen=True)
class ConnectionTestResult:
    """The outcome: ``code`` from :data:`CODES`, a one-paragraph ``message`` for the admin,
    and ``fix`` (e.g. the PowerShell to run) when there is one."""

    code: str
    message: str
    ews_url: str | None = None
    server_version: str | None = None
    fix: str = ""
    retry_after_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"result code {self.code!r} is not one of {CODES}")

    @property
    def ok(self) -> bool:
        return self.code == "ok"
