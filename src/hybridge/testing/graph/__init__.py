"""An emulator of the documented Microsoft Graph endpoints the Graph calendar backend uses.

The Microsoft identity platform's client-credentials grant (client secret or certificate
assertion) and OpenID discovery, and Graph v1.0's ``calendarView/delta`` (series as
occurrences and exceptions, deleted occurrences as ``@removed``), ``events/{id}`` (GET,
PATCH with ``If-Match``, DELETE; an occurrence's id edits or deletes that occurrence) and
``mailboxSettings/automaticRepliesSetting``, with
Exchange Online's RBAC for Applications, throttling (429/503 + ``Retry-After``), token
expiry (401) and delta-token loss (410 ``syncStateNotFound``). msal and httpx, unmodified,
are its clients, over real TLS on loopback.
"""

from hybridge.testing.graph.config import (
    CALENDARS_READ,
    CALENDARS_READWRITE,
    MAILBOX_SETTINGS_READ,
    AppRegistration,
    GraphTenantConfig,
    Mailbox,
    RoleAssignment,
    ThrottlePolicy,
)
from hybridge.testing.graph.emulator import AutomaticReplies, GraphEmulator
from hybridge.testing.graph.recurrence import Pattern

__all__ = [
    "CALENDARS_READ",
    "CALENDARS_READWRITE",
    "MAILBOX_SETTINGS_READ",
    "AppRegistration",
    "AutomaticReplies",
    "GraphEmulator",
    "GraphTenantConfig",
    "Mailbox",
    "Pattern",
    "RoleAssignment",
    "ThrottlePolicy",
]
