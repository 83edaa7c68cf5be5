"""The calendar service of the connector process: Exchange in, the cloud out.

One supervisor thread, started and stopped with the app (``start``/``stop``), decides what
runs, from what is stored, every ``config_poll`` seconds or at once when woken:

1. registered? If not, nothing runs (the cloud is where meetings go);
2. the enabled-user list: asked every ``users_poll`` seconds with ``If-None-Match``, at once
   on the control command ``calendar_users_changed``; a failure keeps the last list (on
   disk) and retries with capped exponential back-off and jitter (``core.control.Backoff``);
3. the Exchange configuration: the first one (by display name, EWS and Graph alike) with
   its credential in the vault (impersonation password, or Graph client secret). Its
   *fingerprint* (id, last change, credential version) decides whether the running engine
   still fits: a changed configuration, or a new credential after a 401 paused everything,
   restarts it — the persisted sync state makes that lossless;
4. the ``SyncEngine`` (its own thread, ``run_forever``) over the ``EwsBackend`` built from
   that configuration and the vault's password, with ``EwsStreamingNotifier`` for push
   (or over the ``GraphBackend``, polled: Graph push needs a public webhook),
   and the cloud as sink; then the per-user statuses (with out-of-office) to the cloud.

The password is revealed once, to build the backend; it is never logged or shown.
"""

from __future__ import annotations

import datetime as dt
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from hybridge.calendar.errors import BackendError, CalendarError
from hybridge.calendar.state import SyncStateStore, calendar_sync
from hybridge.calendar.sync import Alarm, MailboxState, SyncEngine
from hybridge.connector.calendar_cloud import (
    CalendarLinkError,
    CloudCalendarApi,
    CloudCalendarUnavailable,
    out_of_office_json,
)
from hybridge.connector.calendar_link import CloudMeetingSink, CloudUserSource, LinkAlarms
from hybridge.connector.calendar_settings import CalendarSettings, ews_ssl_context, fingerprint
from hybridge.connector.calendar_store import LinkStore
from hybridge.connector.exchange import ExchangeService
from hybridge.connector.exchange_config import PASSWORD_PURPOSE, ExchangeRecord
from hybridge.connector.exchange_graph_config import GraphRecord
from hybridge.connector.registration import RegistrationService
from hybridge.core.control import MAX_TEXT
from hybridge.core.errors import HybridgeError
from hybridge.storage.db import Database
from hybridge.truststore import TrustStore
from hybridge.vault import Vault

if TYPE_CHECKING:
    from hybridge.calendar.ews.backend import EwsBackend
    from hybridge.calendar.ews.streaming import EwsStreamingNotifier
    from hybridge.calendar.interfaces import CalendarBackend

log = structlog.get_logger(__name__)

#: Said to the admin (page, API, cloud portal) when Exchange answers 401.
REJECTED_ALARM = (
    "The impersonation password was rejected, often because it expired. Every mailbox is "
    "paused until the Exchange admin enters the current password (Exchange page: create a "
    "credential-entry link)."
)
#: Out-of-office settings read per supervisor round at most (one EWS call each).
_OOF_PER_ROUND = 20
#: After a failed engine start, the same configuration is tried again after this long.
_START_RETRY = 60.0


@dataclass
class _Running:
    fingerprint: tuple[str, ...]
    record: ExchangeRecord | GraphRecord
    backend: CalendarBackend
    notifier: EwsStreamingNotifier | None
    engine: SyncEngine
    stop: threading.Event
    thread: threading.Thread
    watched: frozenset[str] = frozenset()
    #: mailbox -> monotonic time its out-of-office settings were last read.
    oof_read: dict[str, float] = field(default_factory=dict)


class CalendarService:
    """Runs the calendar connector inside the connector process (see the module docstring)."""

    def __init__(
        self,
        *,
        database: Database,
        store: TrustStore,
        vault: Vault,
        registration: RegistrationService,
        exchange: ExchangeService,
        settings: CalendarSettings | None = None,
    ) -> None:
        self.database = database
        self.store = store
        self.vault = vault
        self.registration = registration
        self.exchange = exchange
        self.settings = settings or CalendarSettings()
        self.api = CloudCalendarApi(registration.link, registration.current, registration.identity)
        self.link_store = LinkStore(database)
        self.alarms = LinkAlarms()
        self.sink = CloudMeetingSink(
            self.api, self.link_store, self.alarms, on_unknown_user=self.users_changed
        )
        self.users = CloudUserSource(self.api, self.link_store, self.alarms)
        self.state = "starting"
        self.detail = ""
        self.users_error: str | None = None
        self._users_attempt = 0
        self._next_users = 0.0
        self._force_users = False
        self._force_restart = False
        #: Called with the alarm texts when they change (the control channel's heartbeat
        #: carries them to the cloud's connectors page).
        self.on_alarms: Callable[[list[str]], None] | None = None
        self._published: list[str] = []
        self._running: _Running | None = None
        self._failed: tuple[tuple[str, ...], float] | None = None
        self._registered: str | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor thread (the app's lifespan calls this)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="calendar-service", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the supervisor and the engine; waits for syncs in flight to finish."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None
        self._stop_running("the connector is stopping")
        self.api.close()

    def users_changed(self, version: int | None = None) -> None:
        """The cloud said the user list changed (control command): ask for it now."""
        log.info("connector.calendar_users_changed", version=version)
        self._force_users = True
        self._wake.set()

    def resume(self) -> None:
        """Start the engine again after a 401 (the password was fixed on Exchange's side,
        so the stored one is unchanged and nothing else would restart it)."""
        log.info("connector.calendar_resume_requested")
        self._force_restart = True
        self._failed = None
        self._wake.set()

    def wake(self) -> None:
        """Re-check the configuration now (after a save or a password entry)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the round: a wake-up during it is kept for the next one.
            self._wake.clear()
            try:
                timeout = self._tick()
            except Exception:  # never let the service die: log and try again
                log.exception("connector.calendar_round_failed")
                timeout = self.settings.config_poll
            self._publish_alarms()
            self._wake.wait(max(0.05, timeout))

    # -- one round ------------------------------------------------------------------------

    def _tick(self) -> float:
        registration = self.registration.current()
        if registration is None:
            if self._registered is not None:
                self.users.forget()
                self._registered = None
            self._stop_running("not registered")
            self._set_state("not_registered", "register this connector to a cloud first")
            return self.settings.config_poll
        if self._registered not in (None, registration.connector_id):
            # Registered anew (another cloud or organisation): the old list is not ours.
            self._stop_running("the registration changed")
            self.users.forget()
        self._registered = registration.connector_id
        self._poll_users()
        self._reconcile_engine()
        running = self._running
        if running is not None:
            self._apply_users(running)
            self._report(running)
        if self.users_error is None:
            self.sink.retry_removals()
            self._resend_statuses()
        # A refused meeting is retried (back-off, then error_retry): while it still fails it
        # raises the alarm again; quiet for this long means the cause is gone.
        self.alarms.expire("cloud_refused", max(600.0, 2 * self.settings.sync_poll))
        wait = self._next_users - time.monotonic()
        return min(self.settings.config_poll, wait)

    def _publish_alarms(self) -> None:
        # core.control: an alarm is at most MAX_TEXT characters on the channel.
        texts = [f"calendar: {a.message}"[:MAX_TEXT] for a in self.alarms.active()]
        if texts != self._published and self.on_alarms is not None:
            self.on_alarms(texts)
        self._published = texts

    def _set_state(self, state: str, detail: str) -> None:
        if (state, detail) != (self.state, self.detail):
            log.info("connector.calendar_state", state=state, detail=detail)
        self.state, self.detail = state, detail

    def _poll_users(self) -> None:
        now = time.monotonic()
        if not self._force_users and now < self._next_users:
            return
        self._force_users = False
        try:
            self.users.refresh()
        except CalendarLinkError as exc:
            self.users_error = str(exc)
            delay = self.settings.backoff.delay(self._users_attempt, random.random())  # noqa: S311 - jitter, not a secret
            self._users_attempt += 1
            self._next_users = now + max(0.5, delay)
            # The cached list stays in force: a network error never drops a mailbox.
            log.info(
                "connector.calendar_users_failed",
                error=self.users_error,
                retry_in=round(max(0.5, delay), 1),
            )
            if isinstance(exc, CloudCalendarUnavailable) and self._users_attempt >= 3:
                self.alarms.raise_(
                    Alarm(
                        "cloud_unreachable",
                        f"the cloud's calendar service cannot be reached: {exc}; the last "
                        "enabled-user list stays in force",
                    )
                )
            return
        self.users_error = None
        self._users_attempt = 0
        self._next_users = now + self.settings.users_poll
        self.alarms.clear("cloud_unreachable")

    # -- the engine -----------------------------------------------------------------------

    def _desired(self) -> ExchangeRecord | GraphRecord | None:
        # EWS (on premises) and Graph (Exchange Online) configurations, by display name:
        # the first with its credential in the vault runs.
        records: list[ExchangeRecord | GraphRecord] = [
            *self.exchange.configs(),
            *self.exchange.graph.configs(),
        ]
        records.sort(key=lambda r: r.config.display_name)
        usable = [r for r in records if _credential(r) is not None]
        if not records:
            self._set_state("no_configuration", "add an Exchange configuration")
            return None
        if not usable:
            what = (
                "client secret" if isinstance(records[0], GraphRecord) else "impersonation password"
            )
            self._set_state(
                "no_password",
                f"Exchange configuration {records[0].config.display_name!r} has no {what} yet",
            )
            return None
        return usable[0]

    def _reconcile_engine(self) -> None:
        record = self._desired()
        wanted = None if record is None else _fingerprint(record)
        running = self._running
        restart, self._force_restart = self._force_restart, False
        if running is not None and running.fingerprint == wanted and not restart:
            if running.engine.paused:
                self._set_state("paused", REJECTED_ALARM)
            else:
                self._set_state("running", f"watching with {running.record.config.display_name!r}")
            return
        if running is not None:
            self._stop_running(
                "resumed by the admin" if restart else "the Exchange configuration changed"
            )
        if record is None or wanted is None:
            return
        failed = self._failed
        if failed is not None and failed[0] == wanted and time.monotonic() < failed[1]:
            return
        try:
            self._running = self._start_engine(record, wanted)
        except (HybridgeError, OSError, ssl.SSLError) as exc:
            self._failed = (wanted, time.monotonic() + _START_RETRY)
            self._set_state("error", f"cannot start the calendar sync: {exc}")
            return
        self._failed = None
        self.alarms.clear("impersonation_password_rejected")
        self._set_state("running", f"watching with {record.config.display_name!r}")

    def _graph_backend(self, record: GraphRecord) -> CalendarBackend:
        # Imported here: msal and httpx cost at import, and most connector starts never sync.
        from hybridge.calendar.graph import GraphBackend

        secret = self.exchange.graph.stored_secret(record.id)
        if secret is None:
            raise CalendarError(f"the client secret of {record.config.display_name!r} is gone")
        # Verified by the platform trust store only (DESIGN.md §3 invariant 1).
        context = self.exchange.graph.ssl_context()
        return GraphBackend.from_settings(record.config.graph_settings(secret), context)

    def _start_engine(
        self, record: ExchangeRecord | GraphRecord, print_: tuple[str, ...]
    ) -> _Running:
        backend: CalendarBackend
        notifier: EwsStreamingNotifier | None = None
        if isinstance(record, GraphRecord):
            # No notifier: Graph change notifications need a public HTTPS webhook, which an
            # on-premises connector does not have; the engine polls (sync_poll).
            backend = self._graph_backend(record)
            endpoint = record.config.graph_url
        else:
            ews = self._ews_backend(record)
            backend, endpoint = ews, ews.ews_url
            if self.settings.streaming:
                from hybridge.calendar.ews.streaming import EwsStreamingNotifier

                notifier = EwsStreamingNotifier(ews)
        engine = SyncEngine(
            backend,
            SyncStateStore(self.database, record.id[:64]),
            self.sink,
            poll_interval=self.settings.sync_poll,
            error_retry=max(self.settings.sync_poll, 60.0),
            workers=self.settings.workers,
            on_alarm=self._engine_alarm,
        )
        stop = threading.Event()
        thread = threading.Thread(
            target=engine.run_forever, args=(stop,), name="calendar-engine", daemon=True
        )
        running = _Running(print_, record, backend, notifier, engine, stop, thread)
        self._forget_stale(running)
        thread.start()
        log.info("connector.calendar_engine_started", config_id=record.id, endpoint=endpoint)
        return running

    def _ews_backend(self, record: ExchangeRecord) -> EwsBackend:
        # Imported here: exchangelib costs ~1 s, and most connector starts never sync.
        from hybridge.calendar.ews.backend import EwsBackend

        ref = self.vault.find(PASSWORD_PURPOSE, record.id)
        if ref is None:
            raise CalendarError(f"the password of {record.config.display_name!r} is gone")
        password = self.vault.get(ref)
        config = record.config
        context = ews_ssl_context(self.store, config)
        ews_url = config.ews_url
        if ews_url is None:
            # Autodiscover finds the EWS URL; the connection test does exactly that.
            result = self.exchange.run_test(config, password)
            if not result.ok or not result.ews_url:
                raise CalendarError(f"Autodiscover did not find EWS: {result.message}")
            ews_url = result.ews_url
        return EwsBackend(
            config.ews_settings(), password.reveal_text(), ssl_context=context, ews_url=ews_url
        )

    def _engine_alarm(self, alarm: Alarm) -> None:
        self.alarms.raise_(Alarm(alarm.code, f"{REJECTED_ALARM} ({alarm.message})"))
        self._wake.set()  # report "paused" for every user now

    def _forget_stale(self, running: _Running) -> None:
        """Users removed while the connector was down: their state goes, the cloud forgets."""
        cached = self.users.current
        if cached is None:
            return
        wanted = cached.mailboxes
        for row in running.engine.store.mailboxes():
            if row.mailbox not in wanted:
                running.engine.store.delete(row.mailbox)
                self.sink.user_removed(row.mailbox)

    def _stop_running(self, why: str) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        running.stop.set()
        if running.notifier is not None:
            # A streaming group notices its stop flag only when its long-lived response
            # yields (a notification, or the connection's end): stop them in the
            # background, bounded, so that a shutdown or a restart is not held up by them.
            stopper = threading.Thread(
                target=running.notifier.stop, name="calendar-streaming-stop", daemon=True
            )
            stopper.start()
            stopper.join(2.0)
        running.thread.join(30)
        running.engine.close()
        running.backend.close()
        log.info("connector.calendar_engine_stopped", reason=why)

    def _apply_users(self, running: _Running) -> None:
        wanted = self.users.enabled_mailboxes()
        if wanted == running.watched:
            return
        added, removed = running.engine.set_mailboxes(wanted)
        running.watched = wanted
        for mailbox in removed:
            running.oof_read.pop(mailbox, None)
        if running.notifier is not None:
            running.notifier.watch(sorted(wanted), running.engine.notify)
        log.info("connector.calendar_watching", added=added, removed=removed, total=len(wanted))

    # -- statuses -------------------------------------------------------------------------

    def _report(self, running: _Running) -> None:
        """Send each user's status when it changed: ok after a sync, error, paused."""
        now = time.monotonic()
        oof_budget = _OOF_PER_ROUND
        known = self.link_store.statuses()  # one query a round, whatever the user count
        for mailbox in sorted(running.watched):
            state, reason = running.engine.state_of(mailbox)
            current = known.get(mailbox)
            oof = current.out_of_office if current is not None else None
            if state is MailboxState.IDLE:
                status, reason = "ok", ""
                last = running.oof_read.get(mailbox)
                if oof_budget > 0 and (last is None or now - last >= self.settings.status_interval):
                    oof_budget -= 1
                    running.oof_read[mailbox] = now
                    try:
                        at = dt.datetime.now(dt.UTC)
                        oof = out_of_office_json(running.backend.out_of_office(mailbox, at))
                    except BackendError as exc:
                        log.info("connector.calendar_oof_unread", mailbox=mailbox, error=str(exc))
            elif state is MailboxState.ERROR:
                status = "error"
            elif state is MailboxState.PAUSED:
                status, reason = "paused", REJECTED_ALARM
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
            if self.link_store.set_status(mailbox, status, reason, oof):
                self.sink.send_status(mailbox)

    def _resend_statuses(self) -> None:
        for mailbox, row in self.link_store.statuses().items():
            if not row.reported:
                self.sink.send_status(mailbox)

    # -- what the page and the API show ---------------------------------------------------

    def view(self) -> dict[str, Any]:
        """The service's state, every enabled user's sync state, and the alarms."""
        running = self._running
        cached = self.users.current
        counts = self.link_store.meeting_counts()
        statuses = self.link_store.statuses()
        last_sync: dict[str, dt.datetime] = {}
        if running is not None:
            with self.database.transaction() as session:
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
        fetched = self.link_store.fetched_at()
        return {
            "state": self.state,
            "detail": self.detail,
            "configuration": None
            if running is None
            else {"id": running.record.id, "display_name": running.record.config.display_name},
            "users": {
                "version": None if cached is None else cached.version,
                "count": 0 if cached is None else len(cached.users),
                "fetched_at": None if fetched is None else _utc(fetched).isoformat(),
                "last_error": self.users_error,
            },
            "mailboxes": mailboxes,
            "alarms": [{"code": a.code, "message": a.message} for a in self.alarms.active()],
        }


def _credential(record: ExchangeRecord | GraphRecord) -> object | None:
    return record.client_secret if isinstance(record, GraphRecord) else record.password


def _fingerprint(record: ExchangeRecord | GraphRecord) -> tuple[str, ...] | None:
    """What makes a running engine stale (see ``calendar_settings.fingerprint``)."""
    if not isinstance(record, GraphRecord):
        return fingerprint(record)
    secret = record.client_secret
    if secret is None:
        return None
    return (
        "graph",
        record.id,
        record.updated_at.isoformat(),
        str(secret.version),
        secret.set_at.isoformat(),
    )


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes for values stored as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
