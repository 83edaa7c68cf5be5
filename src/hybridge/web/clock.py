"""Time for the web layer and the roles: injected, so tests move it instead of sleeping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def aware(value: dt.datetime) -> dt.datetime:
    """``value`` as aware UTC: SQLite hands back naive datetimes for what we stored as UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
