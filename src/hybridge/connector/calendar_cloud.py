"""The cloud's calendar API (docs/calendar-protocol.md), spoken by the connector.

Each call is a flow (a generator that yields one ``httpx.Request`` and returns the parsed
answer, the shape of ``connector.flow``), run by :class:`CloudCalendarApi` through
``CloudLink``: HTTPS with the connector's client certificate (mutual TLS), the cloud
verified by the trust store's *platform* anchors (manual + cloud), never the bootstrap set
(DESIGN.md §3 invariant 1), the anchors read afresh for every call so an applied push
counts at once. Meetings and join details are encoded by ``hybridge.calendar.wire``, the
only code the two roles share.

Errors::

    CalendarLinkError             (ConnectorError)
     ├── CloudCalendarUnavailable  no answer, TLS refused, 5xx: transient, retried later
     └── CloudCalendarRefused      a 4xx (``status``, ``code``, ``detail``, ``field`` as the
                                   cloud sent them), or an answer that breaks the protocol

Both are also ``calendar.errors.BackendError``\\s: raised from the sink inside a mailbox's
sync, the engine puts that one mailbox in back-off with the message as its reason and
re-delivers the page later (its sync state is not advanced), instead of crashing the sync.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import structlog

from hybridge.calendar import wire
from hybridge.calendar.errors import BackendError
from hybridge.calendar.interfaces import UserStatus
from hybridge.calendar.model import Meeting, OutOfOffice
from hybridge.connector.cloudlink import ClientIdentity, CloudLink, CloudSession
from hybridge.connector.credentials import Registration
from hybridge.connector.errors import ConnectorError
from hybridge.connector.flow import Flow
from hybridge.core.errors import HybridgeError
from hybridge.core.meetings import JoinDetails
from hybridge.truststore import TrustUse

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Largest answer read (bytes). The user list is the big one: 15,000 users (the largest
#: connector host's capacity) at ~100 bytes each is 1.5 MB; 16 MiB leaves room.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
#: The cloud's error ``detail`` is shown to the admin, bounded.
_MAX_DETAIL = 500


class CalendarLinkError(ConnectorError):
    """The cloud's calendar service could not be used."""


class CloudCalendarUnavailable(CalendarLinkError, BackendError):
    """No usable answer from the cloud (unreachable, certificate refused, 5xx)."""


class CloudCalendarRefused(CalendarLinkError, BackendError):
    """The cloud answered 4xx (or broke the protocol); ``code``/``detail`` are its words."""

    def __init__(
        self, message: str, *, status: int, code: str, detail: str, field: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field


@dataclass(frozen=True, slots=True)
class EnabledUser:
    """A user the cloud enabled for the calendar service (slots: 15,000 of them per list)."""

    mailbox: str
    display_name: str = ""

    def __post_init__(self) -> None:
        if (
            self.mailbox.count("@") != 1
            or len(self.mailbox) > 320
            or self.mailbox.strip() != (self.mailbox)
        ):
            raise ValueError(f"mailbox {self.mailbox!r} is not an address like a@b.c")
        # Interned: the engine, the notifier and the status reports key on the same string.
        object.__setattr__(self, "mailbox", sys.intern(self.mailbox.lower()))


@dataclass(frozen=True)
class UserList:
    """The organisation's enabled users and the list's ``version`` (grows on every change)."""

    version: int
    users: tuple[EnabledUser, ...]

    @property
    def mailboxes(self) -> frozenset[str]:
        return frozenset(u.mailbox for u in self.users)


def _path(value: str) -> str:
    # docs/calendar-protocol.md: addresses and ids percent-encoded in paths. EWS ItemIds are
    # base64 ('/', '+', '='), so nothing is left unencoded.
    return quote(value, safe="")


def _body(response: httpx.Response, what: str) -> Any:
    if len(response.content) > MAX_ANSWER_BYTES:
        raise _broken(response, what, f"{len(response.content)} bytes, at most {MAX_ANSWER_BYTES}")
    try:
        return json.loads(response.content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _broken(response, what, "a body that is not JSON") from None


def _broken(response: httpx.Response, what: str, why: str) -> CloudCalendarRefused:
    return CloudCalendarRefused(
        f"the cloud's answer to {what} breaks the calendar protocol: HTTP "
        f"{response.status_code} with {why}",
        status=response.status_code,
        code="protocol_error",
        detail=why,
    )


def _check(response: httpx.Response, what: str, ok: tuple[int, ...]) -> None:
    """Raise the error an unexpected status means; return for one of ``ok``."""
    status = response.status_code
    if status in ok:
        return
    if 400 <= status < 500:
        code, detail = "", response.text[:_MAX_DETAIL]
        try:
            body = json.loads(response.content)
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        field = ""
        if isinstance(body, dict):
            code = str(body.get("error", ""))[:64]
            detail = str(body.get("detail", ""))[:_MAX_DETAIL]
            field = str(body.get("field") or "")[:200]
        raise CloudCalendarRefused(
            f"the cloud refused {what}: HTTP {status} {code or '(no code)'}"
            + (f" (field {field!r})" if field else "")
            + f": {detail!r}",
            status=status,
            code=code,
            detail=detail,
            field=field,
        )
    raise CloudCalendarUnavailable(f"the cloud answered {what} with HTTP {status}")


def parse_user_list(body: Any) -> UserList:
    """The user list of a ``GET /api/calendar/users`` answer.

    Raises:
        ValueError: a member is missing or of the wrong type (the message names it).
    """
    if not isinstance(body, dict):
        raise ValueError("the answer is not a JSON object")
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"version {version!r} must be a non-negative integer")
    users = body.get("users")
    if not isinstance(users, list):
        raise ValueError(f"users {users!r} must be a list")
    out: dict[str, EnabledUser] = {}
    for index, item in enumerate(users):
        if not isinstance(item, dict) or not isinstance(item.get("mailbox"), str):
            raise ValueError(f"users[{index}].mailbox is missing or not a string")
        name = item.get("display_name", "")
        if not isinstance(name, str):
            raise ValueError(f"users[{index}].display_name {name!r} must be a string")
        user = EnabledUser(item["mailbox"], name[:200])
        out[user.mailbox] = user
    return UserList(version, tuple(out[m] for m in sorted(out)))


def users_flow(cloud_url: str, known_version: int | None) -> Flow[UserList | None]:
    """``GET /api/calendar/users``; None when unchanged since ``known_version`` (304)."""
    headers = {"Accept": "application/json"}
    if known_version is not None:
        # RFC 9110 §13.1.2: the list's version is its entity tag.
        headers["If-None-Match"] = f'"{known_version}"'
    what = "the enabled-user list request"
    response = yield httpx.Request("GET", f"{cloud_url}/api/calendar/users", headers=headers)
    if response.status_code == 304:
        return None
    _check(response, what, (200,))
    try:
        return parse_user_list(_body(response, what))
    except ValueError as exc:
        raise _broken(response, what, str(exc)) from exc


def put_meeting_flow(cloud_url: str, meeting: Meeting) -> Flow[JoinDetails | None]:
    """``PUT`` the meeting; returns the join details the cloud decided (None: none)."""
    what = f"meeting {meeting.meeting_id!r} of {meeting.mailbox!r}"
    response = yield httpx.Request(
        "PUT",
        f"{cloud_url}/api/calendar/meetings/{_path(meeting.mailbox)}/{_path(meeting.meeting_id)}",
        content=wire.dumps(wire.meeting_to_json(meeting)),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    _check(response, what, (200,))
    body = _body(response, what)
    if not isinstance(body, dict) or "join_details" not in body:
        raise _broken(response, what, "no join_details member")
    if body["join_details"] is None:
        return None
    try:
        return wire.join_details_from_json(body["join_details"])
    except wire.WireFormatError as exc:
        raise _broken(response, what, f"join_details.{exc.field}: {exc.reason}") from exc


def delete_meeting_flow(cloud_url: str, mailbox: str, meeting_id: str) -> Flow[None]:
    """``DELETE`` one meeting (204 also when the cloud never knew it)."""
    response = yield httpx.Request(
        "DELETE", f"{cloud_url}/api/calendar/meetings/{_path(mailbox)}/{_path(meeting_id)}"
    )
    _check(response, f"the deletion of meeting {meeting_id!r} of {mailbox!r}", (200, 204))


def retain_flow(cloud_url: str, mailbox: str, meeting_ids: frozenset[str]) -> Flow[None]:
    """``POST .../retain``: the cloud forgets every meeting of ``mailbox`` not listed."""
    response = yield httpx.Request(
        "POST",
        f"{cloud_url}/api/calendar/meetings/{_path(mailbox)}/retain",
        content=wire.dumps({"meeting_ids": sorted(meeting_ids)}),
        headers={"Content-Type": "application/json"},
    )
    _check(response, f"the meeting list of {mailbox!r} after a resync", (200, 204))


def forget_user_flow(cloud_url: str, mailbox: str) -> Flow[None]:
    """``DELETE /api/calendar/meetings/{mailbox}``: the user was removed."""
    response = yield httpx.Request("DELETE", f"{cloud_url}/api/calendar/meetings/{_path(mailbox)}")
    _check(response, f"forgetting the meetings of {mailbox!r}", (200, 204))


def out_of_office_json(oof: OutOfOffice | None) -> dict[str, Any] | None:
    """The protocol's ``out_of_office`` member; the reply text is never sent."""
    if oof is None:
        return None
    return {
        "state": oof.state,
        "active": oof.active,
        "until": None if oof.end is None else oof.end.isoformat(),
    }


def status_flow(
    cloud_url: str, mailbox: str, status: UserStatus, reason: str, oof: dict[str, Any] | None
) -> Flow[None]:
    """``PUT /api/calendar/users/{mailbox}/status``."""
    response = yield httpx.Request(
        "PUT",
        f"{cloud_url}/api/calendar/users/{_path(mailbox)}/status",
        content=wire.dumps({"status": status, "reason": reason[:1000], "out_of_office": oof}),
        headers={"Content-Type": "application/json"},
    )
    _check(response, f"the status of {mailbox!r}", (200, 204))


class CloudCalendarApi:
    """Runs the calendar flows against the cloud this connector is registered to.

    Each thread keeps one ``CloudSession`` (keep-alive: one TLS handshake for many calls,
    not one per meeting) for at most ``session_seconds``; then, or after a transport
    error, or when the registration changed, it opens a new one — so anchors changed by a
    push or an upload govern the connections opened from then on.
    """

    def __init__(
        self,
        link: CloudLink,
        current: Callable[[], Registration | None],
        identity: Callable[[Registration], ClientIdentity],
        *,
        session_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._link = link
        self._current = current
        self._identity = identity
        self._session_seconds = session_seconds
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: dict[threading.Thread, CloudSession] = {}

    def _session(self, registration: Registration) -> tuple[CloudSession, bool]:
        """This thread's session, and whether it was used before (False: just opened)."""
        key = (
            registration.connector_id,
            registration.cloud_url,
            registration.client_certificate_pem,
        )
        held = getattr(self._local, "held", None)
        now = self._clock()
        if held is not None and held[0] == key and now - held[2] < self._session_seconds:
            return held[1], True
        self._drop()
        # DESIGN.md §3 invariant 1: TrustUse.PLATFORM — never the bootstrap anchors, which
        # only ever verify the registration endpoint.
        session = self._link.session(
            registration.cloud_url, use=TrustUse.PLATFORM, identity=self._identity(registration)
        )
        with self._lock:
            # Sessions of threads that ended (an engine's pool after a restart) are closed.
            dead = [t for t in self._open if not t.is_alive()]
            stale = [self._open.pop(t) for t in dead]
            self._open[threading.current_thread()] = session
        for old in stale:
            old.close()
        self._local.held = (key, session, now)
        return session, False

    def _drop(self) -> None:
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            with self._lock:
                self._open.pop(threading.current_thread(), None)
            held[1].close()

    def close(self) -> None:
        """Close every thread's session (when the service stops)."""
        with self._lock:
            sessions, self._open = list(self._open.values()), {}
        for session in sessions:
            session.close()

    def run(self, make: Callable[[str], Flow[T]]) -> T:
        """Run the flow ``make(cloud_url)`` over mutual TLS, platform anchors only.

        Raises:
            CloudCalendarUnavailable: not registered, no connection, certificate refused
                (the message says which CA would be needed), 5xx.
            CloudCalendarRefused: a 4xx or a broken answer.
        """
        registration = self._current()
        if registration is None:
            raise CloudCalendarUnavailable("this connector is not registered to a cloud")
        while True:
            reused = False
            try:
                session, reused = self._session(registration)
                return session.run(make(registration.cloud_url))
            except CalendarLinkError:
                raise
            except HybridgeError as exc:  # CloudUntrusted, CloudUnreachable, NoAnchors, ...
                self._drop()  # the next call starts with a fresh connection
                if reused:
                    # A kept connection the cloud closed while idle (uvicorn's keep-alive
                    # is 5 s): every call of this protocol is idempotent, so ask again once
                    # on a fresh connection before calling the cloud unreachable.
                    continue
                raise CloudCalendarUnavailable(str(exc)) from exc

    def users(self, known_version: int | None) -> UserList | None:
        return self.run(lambda url: users_flow(url, known_version))

    def put_meeting(self, meeting: Meeting) -> JoinDetails | None:
        return self.run(lambda url: put_meeting_flow(url, meeting))

    def delete_meeting(self, mailbox: str, meeting_id: str) -> None:
        self.run(lambda url: delete_meeting_flow(url, mailbox, meeting_id))

    def retain(self, mailbox: str, meeting_ids: frozenset[str]) -> None:
        self.run(lambda url: retain_flow(url, mailbox, meeting_ids))

    def forget_user(self, mailbox: str) -> None:
        self.run(lambda url: forget_user_flow(url, mailbox))

    def put_status(
        self, mailbox: str, status: UserStatus, reason: str, oof: dict[str, Any] | None
    ) -> None:
        self.run(lambda url: status_flow(url, mailbox, status, reason, oof))
