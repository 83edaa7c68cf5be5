"""The Graph emulator's error answers, and the request values that raise them."""

from __future__ import annotations

import datetime as dt


class GraphHttpError(Exception):
    """An error answer: HTTP status, Graph error code, message, extra headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def parse_time(value: str, name: str) -> dt.datetime:
    """An aware datetime from a query parameter; raises GraphHttpError (400)."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GraphHttpError(
            400, "ErrorInvalidParameter", f"{name} {value!r} is not an ISO 8601 date-time."
        ) from None
    # Graph reads a time without an offset as UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
