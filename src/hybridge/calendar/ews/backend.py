"""The EWS calendar backend: each enabled mailbox read and written through impersonation.

exchangelib (unmodified) does the SOAP; this module adds what the connector needs around it:

- one ``Protocol`` (one HTTP connection pool, one NTLM identity) shared by every mailbox of
  the configuration, built by ``transport`` over *our* SSLContext. Nothing is kept per
  mailbox: each call gets a throwaway ``Account`` (a shallow copy of one prototype that
  only changes the ``ExchangeImpersonation`` header), and items are fetched with
  ``GetItem`` directly — ``Account.fetch`` would first fetch and cache the mailbox's root
  folder (a GetFolder round trip, and a folder tree kept per mailbox: 15,000 of them on one
  connector);
- ``changes`` calls ``SyncFolderItems`` once per page (not exchangelib's ``sync_items``
  loop), so the sync engine can persist the state after every page: a restart resumes at
  the last page it finished;
- every foreign exception is translated at the boundary into a ``BackendError`` subclass
  naming the mailbox (``_translate``); exchangelib's ``FailFast`` policy means a throttled
  mailbox raises at once instead of sleeping inside a shared pool.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import ssl
import threading
from typing import Any

from exchangelib import Account, Credentials, HTMLBody
from exchangelib.account import Identity
from exchangelib.errors import (
    ErrorImpersonateUserDenied,
    ErrorInternalServerTransientError,
    ErrorInvalidSyncStateData,
    ErrorItemNotFound,
    ErrorNonExistentMailbox,
    ErrorServerBusy,
    UnauthorizedError,
)
from exchangelib.fields import FieldPath
from exchangelib.items import ID_ONLY, SEND_TO_NONE, CalendarItem
from exchangelib.properties import Body, DistinguishedFolderId, Mailbox
from exchangelib.protocol import FailFast
from exchangelib.services import GetItem, SyncFolderItems
from exchangelib.services.common import EWSAccountService
from exchangelib.util import MNS

from hybridge.calendar.errors import (
    BackendError,
    CalendarSettingsError,
    CredentialsRejectedError,
    ImpersonationDeniedError,
    InvalidSyncStateError,
    MailboxNotFoundError,
    MailboxThrottledError,
    MeetingNotFoundError,
)
from hybridge.calendar.ews.failures import _chain, scrub
from hybridge.calendar.ews.itemview import CALENDAR_ITEM_TAG, FIELDS, ItemView, item_view
from hybridge.calendar.ews.recurrence import recurrence_from_item
from hybridge.calendar.ews.settings import EwsSettings
from hybridge.calendar.ews.transport import account_for, install_log_redaction
from hybridge.calendar.interfaces import WriteOutcome
from hybridge.calendar.model import (
    Attendee,
    AttendeeRole,
    Change,
    ChangePage,
    Meeting,
    OutOfOffice,
)
from hybridge.core.meetings import BodyType, JoinDetails, apply_join_details

log = logging.getLogger(__name__)

#: Said to the admin when Exchange answers 401 to the impersonation account.
PASSWORD_REJECTED = "impersonation password rejected (often expired)"  # noqa: S105 - a message
#: messages.xsd: MaxChangesReturned is 1..512.
MAX_CHANGES_LIMIT = 512


class _FailFastRetryAfter(FailFast):  # type: ignore[misc]
    """FailFast, but an HTTP 503 keeps its ``Retry-After`` as ``ErrorServerBusy.back_off``.

    exchangelib's FailFast raises a bare ErrorInternalServerTransientError for a 503 and
    drops the header; the engine needs it to schedule that one mailbox.
    """

    def raise_response_errors(self, response: Any) -> None:
        if response.status_code == 503:
            # RFC 9110 §10.2.3: Retry-After is delay-seconds (or a date, which we treat as
            # absent and fall back to a default back-off).
            raw = response.headers.get("Retry-After", "")
            back_off = float(raw) if raw.isdigit() else None
            raise ErrorServerBusy("Caused by HTTP 503 response", back_off=back_off)
        super().raise_response_errors(response)


class _SyncFolderItems(SyncFolderItems):  # type: ignore[misc]
    """SyncFolderItems that surfaces an error ResponseCode even without a SyncState, and
    parses calendar items into :class:`ItemView` (only the fields asked for, see itemview).

    exchangelib reads ``m:SyncState`` before looking at the response class; an error
    message that omits it (the schema allows that) would become an AttributeError instead
    of ``ErrorInvalidSyncStateData``.
    """

    def _get_element_container(self, message: Any, name: Any = None) -> Any:
        if message.find(f"{{{MNS}}}SyncState") is None:
            return EWSAccountService._get_element_container(self, message=message, name=name)
        return super()._get_element_container(message=message, name=name)

    def _elem_to_obj(self, elem: Any) -> Any:
        change_type = self.change_types_map[elem.tag]
        if (
            change_type in (self.CREATE, self.UPDATE)
            and len(elem)
            and elem[0].tag == CALENDAR_ITEM_TAG
        ):
            return change_type, item_view(elem[0], self.account)
        return super()._elem_to_obj(elem)


def _translate(exc: BaseException, mailbox: str, password: str) -> BackendError:
    """Map an exchangelib/requests failure to the BackendError the engine acts on."""
    for err in _chain(exc):
        if isinstance(err, UnauthorizedError):
            return CredentialsRejectedError(
                f"Exchange answered 401 to the service account: {PASSWORD_REJECTED}. "
                "Enter the current password of the impersonation account.",
                mailbox=mailbox,
            )
        if isinstance(err, ErrorImpersonateUserDenied):
            return ImpersonationDeniedError(
                f"Exchange refused impersonation of {mailbox!r} (ErrorImpersonateUserDenied): "
                "the ApplicationImpersonation role or its management scope does not cover it",
                mailbox=mailbox,
            )
        if isinstance(err, ErrorNonExistentMailbox):
            return MailboxNotFoundError(f"Exchange has no mailbox {mailbox!r}", mailbox=mailbox)
        if isinstance(err, ErrorInvalidSyncStateData):
            return InvalidSyncStateError(
                f"Exchange refused the sync state of {mailbox!r} (ErrorInvalidSyncStateData)",
                mailbox=mailbox,
            )
        if isinstance(err, ErrorServerBusy | ErrorInternalServerTransientError):
            back_off = getattr(err, "back_off", None) or 1.0
            return MailboxThrottledError(
                f"Exchange is throttling {mailbox!r}; it asked to wait {back_off:g} s",
                mailbox=mailbox,
                retry_after_seconds=float(back_off),
            )
        if isinstance(err, ErrorItemNotFound):
            return MeetingNotFoundError(f"the meeting is gone from {mailbox!r}", mailbox=mailbox)
    text = scrub(str(exc), password)[:300]
    return BackendError(
        f"EWS call for {mailbox!r} failed: {type(exc).__name__}: {text}", mailbox=mailbox
    )


def _field_paths(names: tuple[str, ...]) -> set[Any]:
    """The ``FieldPath``s GetItem/SyncFolderItems ask for, for CalendarItem field ``names``."""
    return {FieldPath(field=CalendarItem.get_field_by_fieldname(f)) for f in names}


def calendar_folder_id(mailbox: str) -> DistinguishedFolderId:
    """The ``calendar`` distinguished folder of ``mailbox``, named without a GetFolder.

    ``account.calendar`` would first fetch the root folder and then the calendar (two
    GetFolder calls and a cached folder tree per mailbox); SyncFolderItems and Subscribe
    take the distinguished id directly (messages.xsd: TargetFolderIdType).
    """
    return DistinguishedFolderId(id="calendar", mailbox=Mailbox(email_address=mailbox.lower()))


def _address(mailbox_like: Any) -> str:
    if isinstance(mailbox_like, str):
        return mailbox_like  # an ItemView's organizer or attendee
    mailbox = getattr(mailbox_like, "mailbox", mailbox_like)
    return str(getattr(mailbox, "email_address", "") or "")


def meeting_from_item(mailbox: str, item: Any) -> Meeting:
    """A :class:`Meeting` from an exchangelib ``CalendarItem`` fetched with :data:`FIELDS`,
    or from an :class:`ItemView` of one."""
    start_tz = getattr(item, "_start_timezone", None)
    end_tz = getattr(item, "_end_timezone", None) or start_tz
    roles: tuple[tuple[AttendeeRole, Any], ...] = (
        ("required", item.required_attendees),
        ("optional", item.optional_attendees),
        ("resource", item.resources),
    )
    attendees = [
        Attendee(_address(a), role) for role, people in roles for a in people or () if _address(a)
    ]
    body = item.body or ""
    return Meeting(
        mailbox=mailbox,
        meeting_id=item.id,
        version=item.changekey or "",
        organizer=_address(item.organizer) or mailbox,
        subject=item.subject or "",
        start=item.start,
        end=item.end,
        start_tz=start_tz.key if start_tz is not None else "UTC",
        end_tz=end_tz.key if end_tz is not None else "UTC",
        body=str(body),
        body_type="HTML" if isinstance(body, HTMLBody) else "Text",
        location=item.location or "",
        attendees=tuple(attendees),
        recurrence=recurrence_from_item(item),
        uid=item.uid or "",
    )


class EwsBackend:
    """:class:`~hybridge.calendar.interfaces.CalendarBackend` for one EWS configuration."""

    name = "ews"

    def __init__(
        self,
        settings: EwsSettings,
        password: str,
        *,
        ssl_context: ssl.SSLContext,
        ews_url: str | None = None,
        max_connections: int = 8,
    ) -> None:
        url = ews_url or settings.ews_url
        if url is None:
            raise CalendarSettingsError(
                "the EWS backend needs the EWS URL: run the connection test (Autodiscover) "
                "first and pass its ews_url"
            )
        install_log_redaction()
        self.settings = settings
        self.ews_url = url
        self._password = password
        self._context = ssl_context
        self._credentials = Credentials(settings.username, password)
        self._lock = threading.Lock()
        #: Never used for a call: copied (shallowly) into each call's Account.
        self._prototype: Account | None = None
        self._protocol: Any = None
        if not 1 <= max_connections <= 64:
            raise CalendarSettingsError(f"max_connections {max_connections!r} must be 1..64")
        #: Size of the configuration's connection pool (exchangelib opens them on demand).
        self.max_connections = max_connections
        self._fields = _field_paths(FIELDS)
        self._body_field = _field_paths(("body",))

    # -- accounts ---------------------------------------------------------------------------

    def account(self, mailbox: str) -> Account:
        """An impersonating ``Account`` of ``mailbox`` over the configuration's shared pool.

        Built for the call and dropped after it (a shallow copy of a prototype with its own
        ``Identity``): at 15,000 mailboxes a cached Account each would be a third of the
        connector's memory. The copy carries every attribute exchangelib's ``Account``
        sets, whatever its version; its server version is read from the shared protocol
        on first use, as a new Account's is.
        """
        key = mailbox.lower()
        with self._lock:
            prototype = self._prototype
            if prototype is None:
                prototype = account_for(
                    self.ews_url,
                    key,
                    self._credentials,
                    self.settings.auth,
                    self._context,
                    self.settings.timeout_seconds,
                )
                self._protocol = prototype.protocol
                self._protocol.config.retry_policy = _FailFastRetryAfter()
                # One pool for the whole configuration: N mailboxes, a handful of connections.
                self._protocol.max_connections = self.max_connections
                self._prototype = prototype
        account = copy.copy(prototype)
        account.identity = Identity(primary_smtp_address=key)
        account.affinity_cookie = None
        account._version = None
        account._version_lock = threading.Lock()
        return account

    def new_streaming_account(self, mailbox: str) -> Account:
        """An Account with its *own* connection, for one long-lived streaming request."""
        account = account_for(
            self.ews_url,
            mailbox.lower(),
            self._credentials,
            self.settings.auth,
            self._context,
            self.settings.timeout_seconds,
        )
        account.protocol.config.retry_policy = _FailFastRetryAfter()
        return account

    def translate(self, exc: BaseException, mailbox: str) -> BackendError:
        """Translate a foreign exception raised for ``mailbox`` (see module docstring)."""
        return _translate(exc, mailbox.lower(), self._password)

    # -- the CalendarBackend protocol -------------------------------------------------------

    def changes(self, mailbox: str, state: str | None, *, max_changes: int) -> ChangePage:
        """See :meth:`CalendarBackend.changes`; one SyncFolderItems call."""
        if not 1 <= max_changes <= MAX_CHANGES_LIMIT:
            raise CalendarSettingsError(f"max_changes {max_changes!r} must be 1..512")
        account = self.account(mailbox)
        try:
            svc = _SyncFolderItems(account=account)
            results = list(
                svc.call(
                    folder=calendar_folder_id(mailbox),
                    shape=ID_ONLY,
                    additional_fields=self._fields,
                    sync_state=state,
                    ignore=None,
                    max_changes_returned=max_changes,
                    sync_scope=None,
                )
            )
        except Exception as exc:  # translated at the boundary
            raise self.translate(exc, mailbox) from exc
        changes: list[Change] = []
        for kind, item in results:
            if kind == SyncFolderItems.DELETE:
                changes.append(Change("delete", item.id))
            elif kind in (SyncFolderItems.CREATE, SyncFolderItems.UPDATE) and isinstance(
                item, ItemView | CalendarItem
            ):
                meeting = meeting_from_item(mailbox.lower(), item)
                changes.append(Change("upsert", meeting.meeting_id, meeting))
        return ChangePage(
            tuple(changes), str(svc.sync_state or ""), not bool(svc.includes_last_item_in_range)
        )

    def _fetch(self, account: Account, mailbox: str, meeting_id: str, fields: set[Any]) -> Any:
        try:
            # GetItem itself, not Account.fetch (see the module docstring).
            service = GetItem(account=account)
            items = list(
                service.call(items=[(meeting_id, None)], additional_fields=fields, shape=ID_ONLY)
            )
        except Exception as exc:  # translated at the boundary
            raise self.translate(exc, mailbox) from exc
        item = items[0] if items else None
        if isinstance(item, Exception):
            raise self.translate(item, mailbox) from item
        if not isinstance(item, CalendarItem):
            raise MeetingNotFoundError(
                f"{meeting_id!r} in {mailbox!r} is not a calendar item", mailbox=mailbox
            )
        return item

    def read(self, mailbox: str, meeting_id: str) -> Meeting:
        """See :meth:`CalendarBackend.read`."""
        account = self.account(mailbox)
        item = self._fetch(account, mailbox, meeting_id, self._fields)
        return meeting_from_item(mailbox.lower(), item)

    def write_join_details(
        self, mailbox: str, meeting_id: str, details: JoinDetails | None
    ) -> WriteOutcome:
        """See :meth:`CalendarBackend.write_join_details`; one GetItem, at most one UpdateItem."""
        account = self.account(mailbox)
        # The body (and the id and change key every item carries) is all a write needs.
        item = self._fetch(account, mailbox, meeting_id, self._body_field)
        body = item.body or ""
        body_type: BodyType = "HTML" if isinstance(body, HTMLBody) else "Text"
        new = apply_join_details(str(body), details, body_type)
        if new == str(body):
            return "unchanged"
        item.body = HTMLBody(new) if body_type == "HTML" else Body(new)
        try:
            # The organizer's copy: attendees get the join details with the next update the
            # organizer sends; sending one ourselves would mail every attendee per re-sync.
            item.save(update_fields=["body"], send_meeting_invitations=SEND_TO_NONE)
        except Exception as exc:  # translated at the boundary
            raise self.translate(exc, mailbox) from exc
        return "written"

    def out_of_office(self, mailbox: str, at: dt.datetime) -> OutOfOffice:
        """See :meth:`CalendarBackend.out_of_office` (GetUserOofSettings)."""
        account = self.account(mailbox)
        try:
            oof = account.oof_settings
        except Exception as exc:  # translated at the boundary
            raise self.translate(exc, mailbox) from exc
        state = str(oof.state).lower()
        start, end = oof.start, oof.end
        if state == "enabled":
            active = True
        elif state == "scheduled" and start is not None and end is not None:
            active = start <= at < end
        else:
            active = False
        return OutOfOffice(
            state if state in ("enabled", "scheduled", "disabled") else "disabled",  # type: ignore[arg-type]
            active,
            reply=str(oof.internal_reply or ""),
            start=start,
            end=end,
        )

    def close(self) -> None:
        """Close the shared connection pool."""
        with self._lock:
            protocol, self._protocol = self._protocol, None
            self._prototype = None
        if protocol is not None:
            protocol.close()
