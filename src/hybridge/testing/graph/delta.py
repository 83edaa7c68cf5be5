"""``calendarView/delta``: paged rounds with ``$skiptoken`` and a final ``$deltatoken``.

Documented behaviour this follows (learn.microsoft.com, "event: delta" and "Get
incremental changes to events in a calendar view"):

- the first request names the window (``startDateTime``, ``endDateTime``); every later
  request is the previous response's ``@odata.nextLink`` (``$skiptoken``) or
  ``@odata.deltaLink`` (``$deltatoken``), whose opaque token encodes the window;
- a page holds at most ``Prefer: odata.maxpagesize`` entries; a page with a nextLink has no
  deltaLink and vice versa;
- the initial round returns the events present in the window (nothing deleted before it
  started); later rounds return what changed, deletions as ``{"id", "@removed"}``;
- occurrences and exceptions of a series appear as instances (``type: occurrence`` or
  ``exception``, with ``seriesMasterId``), not as the series master, and carry only their
  id, ETag and times (what Graph returns for them in practice; ``GET events/{id}`` has the
  rest); a changed exception is listed on its own, without its series' other occurrences
  (the documentation does not say so; it is how an instance-level change is reported);
- a deleted occurrence, like a deleted event, is ``{"id", "@removed"}`` with its own id;
  a deleted series lists every instance it had in the window as removed;
- a token the service no longer holds is refused with ``410 Gone`` and the code
  ``syncStateNotFound``: the client starts a full synchronization again.

Tokens are kept server-side (so tests can invalidate a mailbox's tokens, as Exchange does
when its token cache evicts them). A round's position is (change sequence, index within
that change's entries); each page is computed from the *current* store, so a change made
while a client pages through a round shows up later in that round or in the next one:
never lost.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from dataclasses import dataclass, replace
from typing import Any

from hybridge.testing.graph.resources import (
    event_json,
    instance_delta_json,
    occurrence_delta_json,
    removed_json,
)
from hybridge.testing.graph.store import CalendarStore, Event, Instance, occurrence_id

_END = 1 << 30  # "after every entry of this change"


class SyncStateNotFoundError(LookupError):
    """The token is unknown, was invalidated, or belongs to another mailbox."""


@dataclass(frozen=True)
class Round:
    """Where a client is in a mailbox's change list for one calendar view window."""

    mailbox: str
    window_start: dt.datetime
    window_end: dt.datetime
    #: Tombstones stamped at or before this are not reported (initial round: deleted before).
    tombstones_after: int
    position: tuple[int, int]
    initial: bool = True


@dataclass(frozen=True)
class DeltaPage:
    entries: list[dict[str, Any]]
    next_token: str | None  # $skiptoken, when more entries wait
    delta_token: str | None  # $deltatoken, at the end of the round


class DeltaTokens:
    """Issued skip/delta tokens and the rounds they stand for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rounds: dict[str, Round] = {}

    def _issue(self, state: Round) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._rounds[token] = state
        return token

    def resolve(self, token: str, mailbox: str) -> Round:
        """The round ``token`` continues; raises SyncStateNotFoundError."""
        with self._lock:
            state = self._rounds.get(token)
        if state is None or state.mailbox != mailbox.lower():
            raise SyncStateNotFoundError(token)
        return state

    def invalidate(self, mailbox: str) -> int:
        """Forget every token of ``mailbox``; returns how many."""
        with self._lock:
            gone = [t for t, r in self._rounds.items() if r.mailbox == mailbox.lower()]
            for token in gone:
                del self._rounds[token]
        return len(gone)

    def start(
        self, store: CalendarStore, mailbox: str, start: dt.datetime, end: dt.datetime
    ) -> Round:
        """A new initial round over ``[start, end)``."""
        return Round(mailbox.lower(), start, end, store.seq(mailbox), (0, _END))

    def page(
        self,
        store: CalendarStore,
        state: Round,
        size: int,
        tz: str,
        body: str | None,
        token: str | None = None,
    ) -> DeltaPage:
        """The next page of ``state``'s round (reached with ``token``, None for a new
        round), with the token that continues or ends it."""
        with store.lock:
            entries = _entries(store, state, tz, body)
            head = entries[:size]
            if len(entries) > size:
                position = head[-1][0]
                return DeltaPage(
                    [e for _, e in head], self._issue(replace(state, position=position)), None
                )
            now = store.seq(state.mailbox)
            done = replace(state, tombstones_after=now, position=(now, _END), initial=False)
            if token is not None and done == state:
                # Nothing happened since this delta token: the same token stays valid.
                return DeltaPage([], None, token)
            return DeltaPage([e for _, e in head], None, self._issue(done))


def _entries(
    store: CalendarStore, state: Round, tz: str, body: str | None
) -> list[tuple[tuple[int, int], dict[str, Any]]]:
    out: list[tuple[tuple[int, int], dict[str, Any]]] = []
    for record in store.changed_after(state.mailbox, state.position[0] - 1):
        if isinstance(record, Instance):
            entries = _instance_entries(store, record, state, tz)
        else:
            entries = _event_entries(store, record, state, tz, body)
        for index, entry in enumerate(entries):
            key = (record.seq, index)
            if key > state.position:
                out.append((key, entry))
    return out


def _in_window(event: Event, state: Round) -> list[dt.datetime]:
    duration = event.end - event.start
    return [s for s in event.occurrences(state.window_end) if s + duration > state.window_start]


def _event_entries(
    store: CalendarStore, event: Event, state: Round, tz: str, body: str | None
) -> list[dict[str, Any]]:
    starts = _in_window(event, state)
    instances = store.instances_of(event.event_id) if event.pattern is not None else {}
    if event.deleted:
        if event.seq <= state.tombstones_after:
            return []
        if event.pattern is None:
            return [removed_json(event.event_id)]
        # Every instance of the deleted series leaves the view (deleted ones already did).
        return [
            removed_json(occurrence_id(event.event_id, s))
            for s in starts
            if not _gone(instances.get(s.astimezone(dt.UTC)))
        ]
    if not starts:
        # Moved out of the window: gone from this view (an initial round just skips it).
        if state.initial or event.pattern is not None:
            return []
        return [removed_json(event.event_id)]
    if event.pattern is None:
        return [event_json(event, tz=tz, body_type=body)]
    out: list[dict[str, Any]] = []
    for start in starts:
        instance = instances.get(start.astimezone(dt.UTC))
        if instance is None:
            out.append(occurrence_delta_json(event, start, tz=tz))
        elif not instance.deleted:
            out.append(instance_delta_json(event, instance, tz=tz))
    return out


def _gone(instance: Instance | None) -> bool:
    return instance is not None and instance.deleted


def _instance_entries(
    store: CalendarStore, instance: Instance, state: Round, tz: str
) -> list[dict[str, Any]]:
    """A changed instance on its own: an exception, or a deleted occurrence (``@removed``)."""
    master = store.get(instance.master_id, include_deleted=True)
    if master.deleted:
        return []  # the master's tombstone lists its instances
    duration = master.end - master.start
    original = instance.original_start
    if original >= state.window_end or original + duration <= state.window_start:
        return []
    if instance.deleted:
        if instance.seq <= state.tombstones_after:
            return []
        return [removed_json(instance.instance_id)]
    if master.seq > state.position[0]:
        return []  # the master's entries, still ahead in this round, list it as it is now
    return [instance_delta_json(master, instance, tz=tz)]
