"""The Graph connection test: can the app sign in, and may it read the test mailbox?

Like the EWS test, a failure is not an exception but a :class:`GraphCheckResult` with a
code, a message for the admin and, when there is one, the fix — the UI, API and CLI show
it and let the admin decide whether to save the configuration anyway.

What it does: signs in (client credentials, through the trust store's TLS), then asks for
the first page of the test mailbox's calendar delta. That exercises the token endpoint,
Graph, and the RBAC for Applications assignment over that mailbox — the three things an
admin gets wrong.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from hybridge.calendar.errors import (
    BackendError,
    CredentialsRejectedError,
    ImpersonationDeniedError,
    MailboxNotFoundError,
    MailboxThrottledError,
)
from hybridge.calendar.graph.backend import GraphBackend
from hybridge.calendar.graph.client import GraphTlsError
from hybridge.calendar.graph.settings import GraphSettings

CODES = (
    "ok",
    "tls_untrusted",
    "credentials_rejected",
    "access_denied",
    "mailbox_not_found",
    "throttled",
    "graph_error",
)


@dataclass(frozen=True)
class GraphCheckResult:
    """``code`` from :data:`CODES`, the admin-facing ``message``, and ``fix`` if any."""

    code: str
    message: str
    fix: str = ""
    retry_after_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"result code {self.code!r} is not one of {CODES}")

    @property
    def ok(self) -> bool:
        return self.code == "ok"


def rbac_fix(settings: GraphSettings, mailbox: str) -> str:
    """The Exchange Online PowerShell that grants the app access to ``mailbox``."""
    return (
        "In Exchange Online PowerShell:\n"
        f"New-ServicePrincipal -AppId {settings.client_id} -ObjectId <enterprise app object id>"
        ' -DisplayName "Hybridge calendar"\n'
        'New-ManagementScope -Name "Hybridge users" -RecipientRestrictionFilter '
        "\"MemberOfGroup -eq '<group DN>'\"\n"
        'New-ManagementRoleAssignment -App <object id> -Role "Application Calendars.ReadWrite"'
        ' -CustomResourceScope "Hybridge users"\n'
        f"Test-ServicePrincipalAuthorization -Identity <object id> -Resource {mailbox}"
    )


def check_connection(settings: GraphSettings, ssl_context: ssl.SSLContext) -> GraphCheckResult:
    """Sign in and read the first delta page of ``settings.test_mailbox``; never raises
    for a server-side problem (the result says what went wrong)."""
    mailbox = settings.test_mailbox.lower()
    backend = GraphBackend.from_settings(settings, ssl_context)
    try:
        backend.changes(mailbox, None, max_changes=1)
    except GraphTlsError as exc:
        return GraphCheckResult(
            "tls_untrusted",
            str(exc),
            "Upload the issuing CA of the identity platform's and Graph's certificates to "
            "the trust store (or let the cloud push its CA list).",
        )
    except CredentialsRejectedError as exc:
        return GraphCheckResult(
            "credentials_rejected",
            str(exc),
            "In Entra ID > App registrations > Certificates & secrets, add a new client "
            "secret (or certificate) and enter it here.",
        )
    except ImpersonationDeniedError as exc:
        return GraphCheckResult("access_denied", str(exc), rbac_fix(settings, mailbox))
    except MailboxNotFoundError as exc:
        return GraphCheckResult(
            "mailbox_not_found", str(exc), "Use the address of a user with a mailbox."
        )
    except MailboxThrottledError as exc:
        return GraphCheckResult("throttled", str(exc), retry_after_seconds=exc.retry_after_seconds)
    except BackendError as exc:
        return GraphCheckResult("graph_error", str(exc))
    finally:
        backend.close()
    return GraphCheckResult(
        "ok", f"application {settings.client_id} signed in and read the calendar of {mailbox}"
    )
