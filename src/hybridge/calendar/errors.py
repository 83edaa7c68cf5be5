"""Errors of the calendar backends.

    HybridgeError
     └── CalendarError
          └── CalendarSettingsError   an Exchange/calendar setting is invalid (names the field)

A failed *connection test* is not an exception: it is a ``ConnectionTestResult`` with a code,
because the caller (UI, API, CLI) shows it and decides whether to save anyway.
"""

from __future__ import annotations

from hybridge.core.errors import HybridgeError


class CalendarError(HybridgeError):
    """Root of the calendar package's errors."""


class CalendarSettingsError(CalendarError):
    """A calendar backend setting is invalid; the message names it and what is accepted."""
