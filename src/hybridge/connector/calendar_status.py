"""What the calendar service reports: per-user statuses to the cloud, and its view.

Split from ``calendar_service`` (which decides what runs): ``report_statuses`` turns each
watched mailbox's engine state into the status the cloud shows (ok with out-of-office,
error with its reason, paused with the alarm of the configuration's kind), sending only
changes; ``service_view`` is what the connector's calendar page and API show. The
out-of-office settings are read by ``calendar_oof.OofReader``: every mailbox once per
``status_interval``, spread evenly over it, a few at a time, off this thread.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from hybridge.calendar.state import calendar_sync
from hybridge.calendar.sync import MailboxState, SyncEngine
from hybridge.connector.calendar_backends import rejected_alarm
from hybridge.connector.calendar_cloud import out_of_office_json
from hybridge.connector.calendar_link import CloudMeetingSink
from hybridge.connector.calendar_oof import OofReader
from hybridge.connector.calendar_store import LinkStore
from hybridge.connector.exchange_config import ExchangeRecord
from hybridge.connector.exchange_graph_config import GraphRecord

if TYPE_CHECKING:
    from hybridge.calendar.ews.streaming import EwsStreamingNotifier
    from hybridge.calendar.interfaces import CalendarBackend
    from hybridge.connector.calendar_service import CalendarService

log = structlog.get_logger(__name__)


@dataclass
class Running:
    """The engine in force: its configuration, backend, notifier, thread and users."""

    fingerprint: tuple[str, ...]
    record: ExchangeRecord | GraphRecord
    backend: CalendarBackend
    notifier: EwsStreamingNotifier | None
    engine: SyncEngine
    stop: threading.Event
    thread: threading.Thread
    #: Reads every watched mailbox's out-of-office settings once per status interval.
    oof: OofReader
    watched: frozenset[str] = frozenset()


def oof_reader(backend: CalendarBackend, period: float) -> OofReader:
    """An :class:`OofReader` of ``backend``'s out-of-office settings, as the cloud takes them."""

    def read(mailbox: str) -> dict[str, Any] | None:
        return out_of_office_json(backend.out_of_office(mailbox, dt.datetime.now(dt.UTC)))

    return OofReader(read, period=period)


def report_statuses(running: Running, *, link_store: LinkStore, sink: CloudMeetingSink) -> None:
    """Send each user's status when it changed: ok after a sync, error, paused; and start
    the out-of-office reads whose turn came (their results are sent in a later round)."""
    fresh = running.oof.collect()
    for mailbox in running.oof.due(time.monotonic()):
        # Read for users whose sync is fine; the others wait for their next turn.
        if running.engine.state_of(mailbox)[0] is MailboxState.IDLE:
            running.oof.submit(mailbox)
    known = link_store.statuses()  # one query a round, whatever the user count
    for mailbox in sorted(running.watched):
        state, reason = running.engine.state_of(mailbox)
        current = known.get(mailbox)
        oof = current.out_of_office if current is not None else None
        if mailbox in fresh:
            oof = fresh[mailbox]
        if state is MailboxState.IDLE:
            status, reason = "ok", ""
        elif state is MailboxState.ERROR:
            status = "error"
        elif state is MailboxState.PAUSED:
            status, reason = "paused", rejected_alarm(running.record)
        elif mailbox in fresh and current is not None:
            status, reason = current.status, current.reason  # only the out-of-office changed
        else:
            continue  # due, syncing, backing off: the last status still holds
        if (
            current is not None
            and current.reported
            and (
                current.status,
                current.reason,
                current.out_of_office,
            )
            == (status, reason[:1000], oof)
        ):
            continue
        if link_store.set_status(mailbox, status, reason, oof):
            sink.send_status(mailbox)


def service_view(service: CalendarService) -> dict[str, Any]:
    """The service's state, every enabled user's sync state, and the alarms."""
    running = service.running
    cached = service.users.current
    counts = service.link_store.meeting_counts()
    statuses = service.link_store.statuses()
    last_sync: dict[str, dt.datetime] = {}
    if running is not None:
        with service.database.transaction() as session:
            rows = session.execute(
                sa.select(calendar_sync.c.mailbox, calendar_sync.c.updated_at).where(
                    calendar_sync.c.config == running.engine.store.config
                )
            ).all()
        last_sync = {r[0]: r[1] for r in rows}
    mailboxes = []
    for user in cached.users if cached is not None else ():
        state, reason = ("stopped", "")
        if running is not None and user.mailbox in running.watched:
            engine_state, reason = running.engine.state_of(user.mailbox)
            state = engine_state.value
        status = statuses.get(user.mailbox)
        meetings, with_keyword = counts.get(user.mailbox, (0, 0))
        synced = last_sync.get(user.mailbox)
        mailboxes.append(
            {
                "mailbox": user.mailbox,
                "display_name": user.display_name,
                "state": state,
                "reason": reason,
                "last_sync": None if synced is None else _utc(synced).isoformat(),
                "meetings": meetings,
                "keyword_meetings": with_keyword,
                "status": None if status is None else status.status,
                "status_reported": None if status is None else status.reported,
                "out_of_office": None if status is None else status.out_of_office,
            }
        )
    fetched = service.link_store.fetched_at()
    return {
        "state": service.state,
        "detail": service.detail,
        "configuration": None
        if running is None
        else {"id": running.record.id, "display_name": running.record.config.display_name},
        "users": {
            "version": None if cached is None else cached.version,
            "count": 0 if cached is None else len(cached.users),
            "fetched_at": None if fetched is None else _utc(fetched).isoformat(),
            "last_error": service.users_error,
        },
        "mailboxes": mailboxes,
        "alarms": [{"code": a.code, "message": a.message} for a in service.alarms.active()],
    }


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes for values stored as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
