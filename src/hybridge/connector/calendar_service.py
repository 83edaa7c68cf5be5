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
   and the cloud as sink; then the per-user statuses to the cloud, with out-of-office
   settings read once per ``status_interval`` for every user, spread evenly over it
   (``calendar_oof``: N / interval requests per second, 4 at a time).

What differs per kind (building the backend, the credential, the alarm a refused
credential raises) is in ``calendar_backends``. The credential is revealed once, to build
the backend; it is never logged or shown.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from hybridge.calendar.heap import limit_arenas
from hybridge.calendar.state import SyncStateStore
from hybridge.calendar.sync import Alarm, SyncEngine
from hybridge.connector.calendar_backends import (
    EWS_REJECTED_CODE,
    GRAPH_REJECTED_CODE,
    build_engine_backend,
    credential_of,
    engine_alarm,
    fingerprint_of,
    missing_credential,
    rejected_alarm,
)
from hybridge.connector.calendar_cloud import (
    CalendarLinkError,
    CloudCalendarApi,
    CloudCalendarUnavailable,
)
from hybridge.connector.calendar_link import CloudMeetingSink, CloudUserSource, LinkAlarms
from hybridge.connector.calendar_settings import CalendarSettings
from hybridge.connector.calendar_status import (
    Running,
    oof_reader,
    report_statuses,
    service_view,
)
from hybridge.connector.calendar_store import LinkStore
from hybridge.connector.exchange import ExchangeService
from hybridge.connector.exchange_config import ExchangeRecord
from hybridge.connector.exchange_graph_config import GraphRecord
from hybridge.connector.registration import RegistrationService
from hybridge.core.control import MAX_TEXT
from hybridge.core.errors import HybridgeError
from hybridge.storage.db import Database
from hybridge.truststore import TrustStore
from hybridge.vault import Vault

log = structlog.get_logger(__name__)

#: After a failed engine start, the same configuration is tried again after this long.
_START_RETRY = 60.0
#: malloc arenas the connector process's threads share (glibc's default: 8 per core).
MALLOC_ARENAS = 2


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
        self._running: Running | None = None
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
        # Sync workers and streaming groups are threads parsing large answers: with glibc's
        # default of 8 arenas per core, each keeps ~1 MiB resident after a sync (see
        # calendar.heap). A few shared arenas cost little with the GIL held around most
        # allocations.
        limit_arenas(MALLOC_ARENAS)
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
        usable = [r for r in records if credential_of(r) is not None]
        if not records:
            self._set_state("no_configuration", "add an Exchange configuration")
            return None
        if not usable:
            self._set_state(
                "no_password",
                f"Exchange configuration {records[0].config.display_name!r} has no "
                f"{missing_credential(records[0])} yet",
            )
            return None
        return usable[0]

    def _reconcile_engine(self) -> None:
        record = self._desired()
        wanted = None if record is None else fingerprint_of(record)
        running = self._running
        restart, self._force_restart = self._force_restart, False
        if running is not None and running.fingerprint == wanted and not restart:
            if running.engine.paused:
                self._set_state("paused", rejected_alarm(running.record))
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
        self.alarms.clear(EWS_REJECTED_CODE)
        self.alarms.clear(GRAPH_REJECTED_CODE)
        self._set_state("running", f"watching with {record.config.display_name!r}")

    def _start_engine(
        self, record: ExchangeRecord | GraphRecord, print_: tuple[str, ...]
    ) -> Running:
        built = build_engine_backend(
            record,
            settings=self.settings,
            store=self.store,
            vault=self.vault,
            exchange=self.exchange,
        )
        backend, notifier = built.backend, built.notifier
        engine = SyncEngine(
            backend,
            SyncStateStore(self.database, record.id[:64]),
            self.sink,
            poll_interval=self.settings.sync_poll,
            error_retry=max(self.settings.sync_poll, 60.0),
            workers=self.settings.workers,
            on_alarm=lambda alarm: self._engine_alarm(record, alarm),
        )
        stop = threading.Event()
        thread = threading.Thread(
            target=engine.run_forever, args=(stop,), name="calendar-engine", daemon=True
        )
        oof = oof_reader(backend, self.settings.status_interval)
        running = Running(print_, record, backend, notifier, engine, stop, thread, oof)
        self._forget_stale(running)
        thread.start()
        log.info("connector.calendar_engine_started", config_id=record.id, endpoint=built.endpoint)
        return running

    def _engine_alarm(self, record: ExchangeRecord | GraphRecord, alarm: Alarm) -> None:
        # The remedy depends on the kind: an impersonation password (EWS) or the
        # application's client secret in Entra ID (Graph).
        self.alarms.raise_(engine_alarm(record, alarm))
        self._wake.set()  # report "paused" for every user now

    def _forget_stale(self, running: Running) -> None:
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
            # Prompt and bounded: each group's live connection is cut, then joined
            # (EwsStreamingNotifier.stop, at most 2 s here).
            running.notifier.stop(timeout=2.0)
        running.thread.join(30)
        running.engine.close()
        running.oof.close()
        running.backend.close()
        log.info("connector.calendar_engine_stopped", reason=why)

    def _apply_users(self, running: Running) -> None:
        wanted = self.users.enabled_mailboxes()
        if wanted == running.watched:
            return
        added, removed = running.engine.set_mailboxes(wanted)
        running.watched = wanted
        running.oof.watch(wanted)
        if running.notifier is not None:
            running.notifier.watch(sorted(wanted), running.engine.notify)
        log.info("connector.calendar_watching", added=added, removed=removed, total=len(wanted))

    # -- statuses -------------------------------------------------------------------------

    def _report(self, running: Running) -> None:
        report_statuses(running, link_store=self.link_store, sink=self.sink)

    def _resend_statuses(self) -> None:
        for mailbox, row in self.link_store.statuses().items():
            if not row.reported:
                self.sink.send_status(mailbox)

    # -- what the page and the API show ---------------------------------------------------

    # -- what the page and the API show ---------------------------------------------------

    @property
    def running(self) -> Running | None:
        """The engine in force, if any."""
        return self._running

    def view(self) -> dict[str, Any]:
        """The service's state, every enabled user's sync state, and the alarms."""
        return service_view(self)
