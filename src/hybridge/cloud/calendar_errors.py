"""Errors of the cloud's calendar service, each with the HTTP status and code it answers.

CloudError
 └── CalendarServiceError
      ├── CalendarInputError     400 "malformed": a field is invalid (``field`` names it)
      ├── CalendarForbidden      403 "forbidden": not an active connector
      ├── CalendarNotFound       404 "not_found": no such mailbox in the caller's org
      └── CalendarTooLarge       413 "too_large": a body over the limit
"""

from __future__ import annotations

from hybridge.cloud.errors import CloudError


class CalendarServiceError(CloudError):
    """Something the calendar service refused; ``status`` and ``code`` say how to answer."""

    status = 400
    code = "malformed"

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class CalendarInputError(CalendarServiceError):
    """A field of a request is invalid; ``field`` names it."""


class CalendarForbidden(CalendarServiceError):
    """The caller is not an active connector (or admin) of an organisation."""

    status = 403
    code = "forbidden"


class CalendarNotFound(CalendarServiceError):
    """The mailbox or meeting is not one of the caller's organisation."""

    status = 404
    code = "not_found"


class CalendarTooLarge(CalendarServiceError):
    """A request body over the limit."""

    status = 413
    code = "too_large"
