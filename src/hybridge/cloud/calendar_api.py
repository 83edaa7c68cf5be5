"""The connectors' calendar API (docs/calendar-protocol.md), authenticated by mutual TLS.

Each request maps the client certificate to an *active* connector and its organisation
(``cloud.mtls.authenticate_connector``) and reaches only that organisation's users and
meetings: another organisation's mailbox is 404, exactly like a mailbox nobody enabled,
so a connector cannot probe which addresses other tenants use. Errors are JSON
``{"error": code, "detail": text, "field": name}`` (``field`` on 400 only).
"""

# No ``from __future__ import annotations``: FastAPI resolves the Annotated dependencies.
import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hybridge.calendar import wire
from hybridge.cloud import calendar_meetings as meeting_store
from hybridge.cloud import calendar_service as service
from hybridge.cloud.api import PeerCertificate
from hybridge.cloud.calendar_errors import (
    CalendarInputError,
    CalendarServiceError,
    CalendarTooLarge,
)
from hybridge.cloud.models import connector
from hybridge.cloud.mtls import ConnectorAuthError, authenticate_connector
from hybridge.cloud.services import CloudServices, Services

T = TypeVar("T")

#: docs/calendar-protocol.md: a body over 256 KiB is answered 413.
MAX_BODY_BYTES = wire.MAX_MEETING_BYTES
#: A retain list names at most this many meetings (a year of a busy calendar is ~5,000).
MAX_RETAIN_IDS = 50_000
#: The retain list is the one body that grows with the mailbox: ids of ~150 characters.
MAX_RETAIN_BYTES = 16 * 1024 * 1024


def error_response(exc: Exception) -> JSONResponse:
    """The JSON answer for a refused request (see the module docstring)."""
    if isinstance(exc, CalendarServiceError):
        status, code, field = exc.status, exc.code, exc.field
    elif isinstance(exc, wire.WireTooLargeError):
        status, code, field = 413, "too_large", exc.field
    elif isinstance(exc, wire.WireFormatError):
        status, code, field = 400, "malformed", exc.field
    elif isinstance(exc, ConnectorAuthError):
        status, code, field = 403, "forbidden", ""
    else:  # pragma: no cover - callers pass only the classes above
        raise exc
    body: dict[str, Any] = {"error": code, "detail": str(exc)}
    if status == 400:
        body["field"] = field
    return JSONResponse(body, status)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with CalendarTooLarge past ``limit`` bytes.

    The declared length is checked first and the stream is cut at the limit, so an
    oversize body is never held in memory whole.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise CalendarTooLarge(f"the body has {declared} bytes; at most {limit} are accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise CalendarTooLarge(f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def connector_org(session: Any, services: CloudServices, cert: Any) -> str:
    """The organisation of the active connector that presented ``cert`` (403 otherwise)."""
    connector_id = authenticate_connector(session, cert, services.keys, services.settings.clock())
    return str(
        session.execute(
            sa.select(connector.c.org_id).where(connector.c.id == connector_id)
        ).scalar_one()
    )


def parse_window(
    start: str | None, end: str | None, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """``from``/``to`` query values (ISO 8601 with offset); default: the next 24 hours."""

    def one(text: str | None, name: str, default: dt.datetime) -> dt.datetime:
        if text is None:
            return default
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise CalendarInputError(
                f"{text[:64]!r} is not an ISO 8601 date-time like '2026-12-01T00:00:00+00:00'",
                field=name,
            ) from exc
        if value.utcoffset() is None:
            raise CalendarInputError(f"{text[:64]!r} has no UTC offset", field=name)
        return value

    first = one(start, "from", now)
    return first, one(end, "to", first + dt.timedelta(days=1))


def calendar_api_router(join_key: bytes) -> APIRouter:
    """``/api/calendar/...``: no cookie, no CSRF; the client certificate is the credential."""
    router = APIRouter(prefix="/api/calendar")

    async def guarded(work: Callable[[], T]) -> T | JSONResponse:
        try:
            return await run_in_threadpool(service.retry_on_conflict, work)
        except (CalendarServiceError, wire.WireFormatError, ConnectorAuthError) as exc:
            return error_response(exc)

    def mailbox_of(value: str) -> str:
        return service.check_mailbox(value)

    async def no_content(
        services: CloudServices,
        cert: PeerCertificate,
        change: Callable[[Any, str], None],
    ) -> Response:
        """Run ``change(db, org_id)`` for the caller's organisation; 204, or the error."""

        def work() -> Response:
            with services.database.transaction() as db:
                change(db, connector_org(db, services, cert))
            return Response(status_code=204)

        return await guarded(work)

    @router.get("/users")
    async def users(request: Request, services: Services, cert: PeerCertificate) -> Response:
        def work() -> Response:
            with services.database.transaction() as db:
                org_id = connector_org(db, services, cert)
                version = service.users_version(db, org_id)
                etag = f'"{version}"'
                # RFC 9110 §13.1.2: If-None-Match is a list of (possibly weak) tags or "*".
                sent = request.headers.get("if-none-match", "")
                tags = {t.strip().removeprefix("W/") for t in sent.split(",") if t.strip()}
                if etag in tags or "*" in tags:
                    return Response(status_code=304, headers={"ETag": etag})
                listed = service.list_users(db, org_id)
            body = {
                "version": version,
                "users": [{"mailbox": u.mailbox, "display_name": u.display_name} for u in listed],
            }
            return JSONResponse(body, headers={"ETag": etag})

        return await guarded(work)

    @router.put("/meetings/{mailbox}/{meeting_id:path}")
    async def put_meeting(
        mailbox: str, meeting_id: str, request: Request, services: Services, cert: PeerCertificate
    ) -> Response:
        try:
            data = await read_body(request, MAX_BODY_BYTES)
        except CalendarTooLarge as exc:
            return error_response(exc)

        def work() -> Response:
            with services.database.transaction() as db:
                # Authentication first: a stranger learns nothing from our parse errors.
                org_id = connector_org(db, services, cert)
                meeting = wire.meeting_from_bytes(data)
                if meeting.mailbox != mailbox_of(mailbox):
                    raise CalendarInputError(
                        f"{meeting.mailbox!r} is not the mailbox of the path {mailbox[:300]!r}",
                        field="mailbox",
                    )
                if meeting.meeting_id != meeting_id:
                    raise CalendarInputError(
                        f"{meeting.meeting_id[:300]!r} is not the meeting id of the path",
                        field="meeting_id",
                    )
                details = meeting_store.put_meeting(
                    db,
                    org_id,
                    meeting,
                    key=join_key,
                    base_url=services.settings.base_url,
                    now=services.settings.clock(),
                )
            payload = None if details is None else wire.join_details_to_json(details)
            return JSONResponse({"join_details": payload})

        return await guarded(work)

    @router.delete("/meetings/{mailbox}/{meeting_id:path}")
    async def delete_meeting(
        mailbox: str, meeting_id: str, services: Services, cert: PeerCertificate
    ) -> Response:
        # Scoped to the caller's organisation: 204 whether or not it existed.
        return await no_content(
            services,
            cert,
            lambda db, org_id: meeting_store.delete_meeting(
                db, org_id, mailbox_of(mailbox), meeting_id
            ),
        )

    @router.post("/meetings/{mailbox}/retain")
    async def retain(
        mailbox: str, request: Request, services: Services, cert: PeerCertificate
    ) -> Response:
        try:
            data = await read_body(request, MAX_RETAIN_BYTES)
        except CalendarTooLarge as exc:
            return error_response(exc)

        def change(db: Any, org_id: str) -> None:
            box = mailbox_of(mailbox)
            service.require_enabled(db, org_id, box)
            ids = _retain_ids(wire.loads(data, max_bytes=MAX_RETAIN_BYTES))
            meeting_store.retain_meetings(db, org_id, box, ids)

        return await no_content(services, cert, change)

    @router.delete("/meetings/{mailbox}")
    async def forget(mailbox: str, services: Services, cert: PeerCertificate) -> Response:
        return await no_content(
            services,
            cert,
            lambda db, org_id: service.forget_mailbox(db, org_id, mailbox_of(mailbox)),
        )

    @router.put("/users/{mailbox}/status")
    async def status(
        mailbox: str, request: Request, services: Services, cert: PeerCertificate
    ) -> Response:
        try:
            data = await read_body(request, MAX_BODY_BYTES)
        except CalendarTooLarge as exc:
            return error_response(exc)

        def change(db: Any, org_id: str) -> None:
            box = mailbox_of(mailbox)
            report = wire.user_status_from_json(wire.loads(data))
            service.set_status(db, org_id, box, report, services.settings.clock())

        return await no_content(services, cert, change)

    @router.get("/rooms/{room}/meetings")
    async def rooms(
        room: str, request: Request, services: Services, cert: PeerCertificate
    ) -> Response:
        def work() -> Response:
            with services.database.transaction() as db:
                org_id = connector_org(db, services, cert)
                return JSONResponse(room_answer(db, services, org_id, room, request, join_key))

        return await guarded(work)

    return router


def room_answer(
    session: Any,
    services: CloudServices,
    org_id: str,
    room: str,
    request: Request,
    join_key: bytes,
) -> dict[str, Any]:
    """The rooms API's body: ``{"room", "from", "to", "meetings": [...]}``."""
    address = service.check_mailbox(room, "room")
    start, end = parse_window(
        request.query_params.get("from"),
        request.query_params.get("to"),
        services.settings.clock(),
    )
    meetings = meeting_store.room_meetings(
        session, org_id, address, start, end, key=join_key, base_url=services.settings.base_url
    )
    return {
        "room": address,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "meetings": meetings,
    }


def _retain_ids(document: Any) -> list[str]:
    if not isinstance(document, dict) or set(document) != {"meeting_ids"}:
        raise CalendarInputError(
            'the body must be {"meeting_ids": [...]} and nothing else', field="meeting_ids"
        )
    ids = document["meeting_ids"]
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise CalendarInputError("must be a list of non-empty strings", field="meeting_ids")
    if len(ids) > MAX_RETAIN_IDS:
        raise CalendarTooLarge(f"{len(ids)} ids; at most {MAX_RETAIN_IDS} are accepted")
    return ids
