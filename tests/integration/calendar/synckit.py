"""Helpers shared by the calendar sync tests: a delta drain and a hand-moved clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hybridge.core.meetings import JoinDetails

START = dt.datetime(2027, 2, 1, 9, 0, tzinfo=dt.UTC)
DETAILS = JoinDetails("https://meet.example.com/j/xyz")


def drain(backend: Any, mailbox: str, state: str | None = None, size: int = 50) -> Any:
    """Follow ``backend.changes`` pages of ``size`` until the last one.

    Returns ``(changes, state, pages)``: every change in order, the final state token and how
    many pages it took.
    """
    changes: list[Any] = []
    pages = 0
    while True:
        page = backend.changes(mailbox, state, max_changes=size)
        pages += 1
        changes.extend(page.changes)
        state = page.state
        if not page.more:
            return changes, state, pages


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
