"""Errors of the calendar backends and the sync engine.

    HybridgeError
     └── CalendarError
          ├── CalendarSettingsError     an Exchange/calendar setting is invalid (names the field)
          ├── MeetingValueError         a meeting read from a backend cannot be represented
          ├── SyncStateStoreError       the persisted sync state cannot be read or written
          └── BackendError              a backend call failed; ``mailbox`` names whose
               ├── CredentialsRejectedError   401: the whole configuration is paused
               ├── ImpersonationDeniedError   this mailbox may not be impersonated
               ├── MailboxNotFoundError       no such mailbox
               ├── InvalidSyncStateError      the server refused our sync state: resync it
               ├── MailboxThrottledError      busy: ``retry_after_seconds`` says when to retry
               └── MeetingNotFoundError       the meeting is gone (deleted meanwhile)

A failed *connection test* is not an exception: it is a ``ConnectionTestResult`` with a code,
because the caller (UI, API, CLI) shows it and decides whether to save anyway.
"""

from __future__ import annotations

from hybridge.core.errors import HybridgeError


class CalendarError(HybridgeError):
    """Root of the calendar package's errors."""


class CalendarSettingsError(CalendarError):
    """A calendar backend setting is invalid; the message names it and what is accepted."""


class MeetingValueError(CalendarError):
    """A meeting value is invalid (naive time, end before start, unknown time zone ...)."""


class SyncStateStoreError(CalendarError):
    """The sync-state table refused a read or a write."""


class BackendError(CalendarError):
    """A backend call failed for ``mailbox`` (empty when it concerns the whole backend)."""

    def __init__(self, message: str, *, mailbox: str = "") -> None:
        super().__init__(message)
        self.mailbox = mailbox


class CredentialsRejectedError(BackendError):
    """The server answered 401 to the service account: every mailbox of it stops."""


class ImpersonationDeniedError(BackendError):
    """The service account may not impersonate ``mailbox`` (role or scope)."""


class MailboxNotFoundError(BackendError):
    """``mailbox`` does not exist on the server."""


class InvalidSyncStateError(BackendError):
    """The server no longer accepts the sync state of ``mailbox``: resync that mailbox."""


class MailboxThrottledError(BackendError):
    """The server is busy for ``mailbox``; retry after ``retry_after_seconds``."""

    def __init__(self, message: str, *, mailbox: str, retry_after_seconds: float) -> None:
        super().__init__(message, mailbox=mailbox)
        self.retry_after_seconds = retry_after_seconds


class MeetingNotFoundError(BackendError):
    """The meeting no longer exists (deleted since it was listed)."""
