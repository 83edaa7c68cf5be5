"""Real calendar servers for the calendar tests: the EWS emulator (in-process, TLS on
127.0.0.1), Radicale (a subprocess, TLS on 127.0.0.1) and the Graph emulator (in-process,
TLS on 127.0.0.1; msal and httpx its clients), behind one ``CalendarHarness``.

The harness mutates a mailbox the way *another client* would (Outlook, a phone), directly
on the server, so the backend under test sees genuine server-side changes.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import itertools
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
import trustme

from hybridge.calendar.ews import EwsSettings
from hybridge.calendar.ews.backend import EwsBackend
from hybridge.calendar.graph import GraphBackend, GraphSettings
from hybridge.calendar.interfaces import CalendarBackend
from hybridge.calendar.local import LocalCalendarService
from hybridge.calendar.state import SyncStateStore
from hybridge.storage.db import open_database, sqlite_url
from hybridge.testing.ews import (
    DirectoryAccount,
    EmulatorConfig,
    EwsEmulator,
    ImpersonationAssignment,
)
from hybridge.testing.ews.soap import T, el, sub
from hybridge.testing.graph import (
    CALENDARS_READWRITE,
    MAILBOX_SETTINGS_READ,
    AppRegistration,
    GraphEmulator,
    GraphTenantConfig,
    Mailbox,
    Pattern,
    RoleAssignment,
)
from hybridge.testing.graph.resources import weekday_names
from hybridge.vault.secret import Secret

SVC_PASSWORD = "Imp3rs0n@te-Secret!"
USERS = ("alice", "bob", "carol", "dave")
_WIN_ZONES = {"Europe/Berlin": "W. Europe Standard Time", "UTC": "UTC"}
_DAYS = {"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday", "FR": "Friday"}


class CalendarHarness(Protocol):
    kind: str
    backend: Any

    def mailbox(self, name: str) -> str: ...
    def add(
        self,
        mailbox: str,
        subject: str,
        *,
        body: str = "",
        start: dt.datetime,
        minutes: int = 60,
        tz: str = "UTC",
        weekly: tuple[str, ...] = (),
        last_weekday_of_month: int = 0,
        attendees: tuple[str, ...] = (),
        location: str = "",
        organizer: str | None = None,
    ) -> str: ...
    def set_subject(self, mailbox: str, meeting_id: str, subject: str) -> None: ...
    def set_body(self, mailbox: str, meeting_id: str, body: str) -> None: ...
    def remove(self, mailbox: str, meeting_id: str) -> None: ...
    def body(self, mailbox: str, meeting_id: str) -> str: ...
    def new_backend(self, password: str = SVC_PASSWORD) -> CalendarBackend: ...


@pytest.fixture(scope="session")
def calendar_ca() -> trustme.CA:
    return trustme.CA(organization_name="Contoso Test CA")


@pytest.fixture(scope="session")
def calendar_pki(
    calendar_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("calendar-pki")
    cert = calendar_ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    calendar_ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return d / "cert.pem", d / "key.pem", d / "ca.pem"


@pytest.fixture(scope="session")
def client_ssl_context(calendar_ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=None)
    ctx.load_verify_locations(cadata=calendar_ca.cert_pem.bytes().decode())
    return ctx


# -- EWS --------------------------------------------------------------------------------------


def ews_config(scope: frozenset[str] | None = None) -> EmulatorConfig:
    accounts = [
        DirectoryAccount("svc@contoso.test", "svc-hybridge", SVC_PASSWORD, has_mailbox=False)
    ]
    accounts += [DirectoryAccount(f"{u}@contoso.test", u, f"{u}-pw") for u in USERS]
    return EmulatorConfig(
        accounts=tuple(accounts),
        impersonation=(ImpersonationAssignment("Hybridge", "svc-hybridge", scope),),
        streaming_minute_seconds=1.0,
        streaming_heartbeat_seconds=0.2,
    )


class EwsHarness:
    kind = "ews"

    def __init__(self, emulator: EwsEmulator, context: ssl.SSLContext) -> None:
        self.emulator = emulator
        self.context = context
        self.backend = self.new_backend()

    def new_backend(self, password: str = SVC_PASSWORD) -> EwsBackend:
        settings = EwsSettings(
            username="CONTOSO\\svc-hybridge",
            test_mailbox="alice@contoso.test",
            ews_url=self.emulator.ews_url,
            timeout_seconds=10,
        )
        return EwsBackend(settings, password, ssl_context=self.context)

    def mailbox(self, name: str) -> str:
        return f"{name}@contoso.test"

    def add(self, mailbox: str, subject: str, **kw: Any) -> str:
        start: dt.datetime = kw["start"]
        tz = kw.get("tz", "UTC")
        item = self.emulator.store.add_calendar_item(
            mailbox,
            subject=subject,
            start=start,
            end=start + dt.timedelta(minutes=kw.get("minutes", 60)),
            timezone=_WIN_ZONES[tz],
            body=kw.get("body", ""),
            location=kw.get("location", ""),
            organizer=kw.get("organizer"),
            required_attendees=kw.get("attendees", ()),
            recurrence_weekly_days=[_DAYS[d] for d in kw.get("weekly", ())],
        )
        count = kw.get("last_weekday_of_month", 0)
        if count:
            # types.xsd RecurrenceType: the last weekday of every month, COUNT occurrences.
            rec = el(T, "Recurrence")
            pattern = sub(rec, T, "RelativeMonthlyRecurrence")
            sub(pattern, T, "Interval", "1")
            sub(pattern, T, "DaysOfWeek", "Weekday")
            sub(pattern, T, "DayOfWeekIndex", "Last")
            numbered = sub(rec, T, "NumberedRecurrence")
            sub(numbered, T, "StartDate", start.date().isoformat())
            sub(numbered, T, "NumberOfOccurrences", str(count))
            item = self.emulator.store.update_item(item, {"Recurrence": rec})
        return item.item_id

    def _item(self, meeting_id: str) -> Any:
        item = self.emulator.store.item(meeting_id)
        assert item is not None, meeting_id
        return item

    def set_subject(self, mailbox: str, meeting_id: str, subject: str) -> None:
        self.emulator.store.set_subject(meeting_id, subject)

    def set_body(self, mailbox: str, meeting_id: str, body: str) -> None:
        self.emulator.store.update_item(
            self._item(meeting_id), {"Body": el(T, "Body", body, BodyType="Text")}
        )

    def remove(self, mailbox: str, meeting_id: str) -> None:
        self.emulator.store.remove(meeting_id)

    def body(self, mailbox: str, meeting_id: str) -> str:
        return self._item(meeting_id).text("Body") or ""


@pytest.fixture
def ews_emulator(calendar_pki: tuple[Path, Path, Path]) -> Iterator[EwsEmulator]:
    cert, key, _ = calendar_pki
    with EwsEmulator(ews_config(), cert_file=cert, key_file=key) as ews:
        yield ews


@pytest.fixture
def ews_harness(
    ews_emulator: EwsEmulator, client_ssl_context: ssl.SSLContext
) -> Iterator[EwsHarness]:
    harness = EwsHarness(ews_emulator, client_ssl_context)
    yield harness
    harness.backend.close()


# -- Microsoft Graph (emulator) ---------------------------------------------------------------

GRAPH_TENANT = "8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f"
GRAPH_CLIENT = "3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c"


def graph_config(scope: frozenset[str] | None = None) -> GraphTenantConfig:
    app = AppRegistration(GRAPH_CLIENT, secrets=(SVC_PASSWORD,))
    return GraphTenantConfig(
        tenant_id=GRAPH_TENANT,
        apps=(app,),
        mailboxes=tuple(Mailbox(f"{u}@contoso.test") for u in USERS),
        assignments=(
            RoleAssignment(GRAPH_CLIENT, CALENDARS_READWRITE, scope),
            RoleAssignment(GRAPH_CLIENT, MAILBOX_SETTINGS_READ, scope),
        ),
    )


def _graph_pattern(weekly: tuple[str, ...], last_weekday_count: int) -> Pattern | None:
    if last_weekday_count:
        weekdays = ("monday", "tuesday", "wednesday", "thursday", "friday")
        return Pattern("relativeMonthly", 1, weekdays, count=last_weekday_count, index="last")
    return Pattern("weekly", 1, weekday_names(weekly)) if weekly else None


class GraphHarness:
    kind = "graph"

    def __init__(self, emulator: GraphEmulator, context: ssl.SSLContext) -> None:
        self.emulator = emulator
        self.context = context
        self.backend = self.new_backend()

    def new_backend(self, password: str = SVC_PASSWORD) -> GraphBackend:
        settings = GraphSettings(
            tenant_id=GRAPH_TENANT,
            client_id=GRAPH_CLIENT,
            test_mailbox="alice@contoso.test",
            client_secret=Secret.from_text(password),
            authority_host=self.emulator.base_url,
            graph_url=self.emulator.graph_url,
            timeout_seconds=10,
        )
        return GraphBackend.from_settings(settings, self.context)

    def mailbox(self, name: str) -> str:
        return f"{name}@contoso.test"

    def add(self, mailbox: str, subject: str, **kw: Any) -> str:
        start: dt.datetime = kw["start"]
        weekly = kw.get("weekly", ())
        return str(
            self.emulator.add_event(
                mailbox,
                subject,
                start=start,
                end=start + dt.timedelta(minutes=kw.get("minutes", 60)),
                time_zone=kw.get("tz", "UTC"),
                body=kw.get("body", ""),
                location=kw.get("location", ""),
                organizer=kw.get("organizer"),
                attendees=tuple((a, "required") for a in kw.get("attendees", ())),
                pattern=_graph_pattern(weekly, kw.get("last_weekday_of_month", 0)),
            )
        )

    def set_subject(self, mailbox: str, meeting_id: str, subject: str) -> None:
        self.emulator.update_event(meeting_id, subject=subject)

    def set_body(self, mailbox: str, meeting_id: str, body: str) -> None:
        self.emulator.update_event(meeting_id, body=body, body_type="text")

    def remove(self, mailbox: str, meeting_id: str) -> None:
        self.emulator.delete_event(meeting_id)

    def body(self, mailbox: str, meeting_id: str) -> str:
        return str(self.emulator.event(meeting_id).body)


@pytest.fixture
def graph_emulator(calendar_pki: tuple[Path, Path, Path]) -> Iterator[GraphEmulator]:
    cert, key, _ = calendar_pki
    with GraphEmulator(graph_config(), cert_file=cert, key_file=key) as emulator:
        yield emulator


@pytest.fixture
def graph_harness(
    graph_emulator: GraphEmulator, client_ssl_context: ssl.SSLContext
) -> Iterator[GraphHarness]:
    harness = GraphHarness(graph_emulator, client_ssl_context)
    yield harness
    harness.backend.close()


# -- CalDAV (Radicale) ------------------------------------------------------------------------

_RIGHTS = """[service]
user: svc
collection: .*
permissions: RrWw

[owner]
user: .+
collection: {user}(/.*)?
permissions: RrWw

[root]
user: .+
collection:
permissions: R
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def radicale_url(
    tmp_path_factory: pytest.TempPathFactory, calendar_pki: tuple[Path, Path, Path]
) -> Iterator[str]:
    if importlib.util.find_spec("radicale") is None or importlib.util.find_spec("caldav") is None:
        # With CI=true a skip is a failure (tests/conftest.py): CI must install them.
        pytest.skip("radicale and caldav are not installed (pip install radicale caldav)")
    cert, key, _ = calendar_pki
    d = tmp_path_factory.mktemp("radicale")
    port = _free_port()
    (d / "users").write_text(f"svc:{SVC_PASSWORD}\n")
    (d / "rights").write_text(_RIGHTS)
    (d / "config").write_text(
        "[server]\n"
        f"hosts = 127.0.0.1:{port}\n"
        "ssl = True\n"
        f"certificate = {cert}\n"
        f"key = {key}\n"
        "[auth]\ntype = htpasswd\n"
        f"htpasswd_filename = {d / 'users'}\n"
        "htpasswd_encryption = plain\n"
        "[rights]\ntype = from_file\n"
        f"file = {d / 'rights'}\n"
        "[storage]\n"
        f"filesystem_folder = {d / 'collections'}\n"
        "[logging]\nlevel = error\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--config", str(d / "config")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"radicale exited with {proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("radicale did not start within 15 s") from None
                time.sleep(0.05)
        yield f"https://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


_ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Hybridge tests//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20270101T000000Z
DTSTART{tzparam}:{start}
DTEND{tzparam}:{end}
{rrule}SUMMARY:{subject}
DESCRIPTION:{body}
LOCATION:{location}
ORGANIZER:mailto:{organizer}
{attendees}END:VEVENT
END:VCALENDAR
"""


def _ical_text(value: str) -> str:
    # RFC 5545 §3.3.11: escape backslash, semicolon, comma and newline.
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _caldav_rrule(weekly: tuple[str, ...], last_weekday_count: int) -> str:
    if last_weekday_count:
        return f"RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT={last_weekday_count}\n"
    return f"RRULE:FREQ=WEEKLY;BYDAY={','.join(weekly)}\n" if weekly else ""


class CaldavHarness:
    kind = "caldav"
    _counter = itertools.count()

    def __init__(self, url: str, ca_file: Path) -> None:
        from hybridge.calendar.caldav_backend import CaldavBackend, CaldavSettings

        self.url = url
        self.ca_file = ca_file
        self._settings_cls, self._backend_cls = CaldavSettings, CaldavBackend
        self.run = uuid.uuid4().hex[:6]
        self.backend = self.new_backend()
        import caldav

        self.admin = caldav.DAVClient(
            url,
            username="svc",
            password=SVC_PASSWORD,
            auth_type="basic",
            ssl_verify_cert=str(ca_file),
        )
        self._uids: dict[str, str] = {}

    def new_backend(self, password: str = SVC_PASSWORD) -> Any:
        settings = self._settings_cls(url=self.url, username="svc", ca_bundle=self.ca_file)
        return self._backend_cls(settings, password)

    def mailbox(self, name: str) -> str:
        address = f"{name}-{self.run}@contoso.test"
        base = self.url.rstrip("/") + f"/{address}/"
        if self.admin.request(base, "PROPFIND", "", {"Depth": "0"}).status == 404:
            self.admin.request(base, "MKCOL")
            self.admin.mkcalendar(base + "calendar/")
        return address

    def _url(self, href: str) -> str:
        from urllib.parse import quote

        return self.url.rstrip("/") + quote(href, safe="/@")

    def add(self, mailbox: str, subject: str, **kw: Any) -> str:
        start: dt.datetime = kw["start"]
        end = start + dt.timedelta(minutes=kw.get("minutes", 60))
        tz = kw.get("tz", "UTC")
        if tz == "UTC":
            tzparam, fmt = "", "%Y%m%dT%H%M%SZ"
            start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
        else:
            from zoneinfo import ZoneInfo

            tzparam, fmt = f";TZID={tz}", "%Y%m%dT%H%M%S"
            start, end = start.astimezone(ZoneInfo(tz)), end.astimezone(ZoneInfo(tz))
        weekly = kw.get("weekly", ())
        uid = f"{uuid.uuid4().hex}@hybridge.test"
        data = _ICS.format(
            uid=uid,
            tzparam=tzparam,
            start=start.strftime(fmt),
            end=end.strftime(fmt),
            rrule=_caldav_rrule(weekly, kw.get("last_weekday_of_month", 0)),
            subject=_ical_text(subject),
            body=_ical_text(kw.get("body", "")),
            location=_ical_text(kw.get("location", "")),
            organizer=kw.get("organizer") or mailbox,
            attendees="".join(
                f"ATTENDEE;ROLE=REQ-PARTICIPANT:mailto:{a}\n" for a in kw.get("attendees", ())
            ),
        )
        href = f"/{mailbox}/calendar/{uid.split('@')[0]}.ics"
        response = self.admin.put(
            self._url(href), data, {"Content-Type": "text/calendar; charset=utf-8"}
        )
        assert response.status in (201, 204), response.status
        return href

    def _edit(self, href: str, prop: str, value: str) -> None:
        import icalendar

        response = self.admin.request(self._url(href), "GET")
        cal = icalendar.Calendar.from_ical(str(response.raw))
        event = next(iter(cal.walk("VEVENT")))
        if prop in event:
            del event[prop]
        event.add(prop, value)
        put = self.admin.put(
            self._url(href), cal.to_ical().decode(), {"Content-Type": "text/calendar"}
        )
        assert put.status in (201, 204), put.status

    def set_subject(self, mailbox: str, meeting_id: str, subject: str) -> None:
        self._edit(meeting_id, "SUMMARY", subject)

    def set_body(self, mailbox: str, meeting_id: str, body: str) -> None:
        self._edit(meeting_id, "DESCRIPTION", body)

    def remove(self, mailbox: str, meeting_id: str) -> None:
        assert self.admin.delete(self._url(meeting_id)).status in (200, 204)

    def body(self, mailbox: str, meeting_id: str) -> str:
        import icalendar

        response = self.admin.request(self._url(meeting_id), "GET")
        cal = icalendar.Calendar.from_ical(str(response.raw))
        return str(next(iter(cal.walk("VEVENT"))).get("DESCRIPTION") or "")


@pytest.fixture
def caldav_harness(radicale_url: str, calendar_pki: tuple[Path, Path, Path]) -> Iterator[Any]:
    harness = CaldavHarness(radicale_url, calendar_pki[2])
    yield harness
    harness.backend.close()
    harness.admin.close()


@pytest.fixture(params=["ews", "caldav", "graph"])
def harness(request: pytest.FixtureRequest) -> Any:
    """The shared contract suite runs once per backend."""
    return request.getfixturevalue(f"{request.param}_harness")


# -- the engine's surroundings -----------------------------------------------------------------


@pytest.fixture
def node_db(tmp_path: Path) -> Iterator[Any]:
    db = open_database(sqlite_url(tmp_path / "node.db"), "node")
    yield db
    db.dispose()


@pytest.fixture
def state_store(node_db: Any) -> SyncStateStore:
    return SyncStateStore(node_db, "test-config")


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[LocalCalendarService]:
    service = LocalCalendarService(tmp_path / "cloud.sqlite")
    yield service
    service.close()
