"""The portal's Calendar pages and the admin's JSON API for the calendar service.

Pages: ``/calendar`` (enabled users with status and out-of-office, add, paste many,
remove; the join template editor with preview) and ``/calendar/users/{mailbox}/meetings``
(a user's meetings list). JSON: the same data under ``/portal/api/calendar/...``.

Every unsafe request passes ``auth.csrf_protect`` (the form field, or the
``X-CSRF-Token`` header for JSON); an admin reaches only their own organisation. A change
of the enabled users bumps the list's version and sends the signed control command
``calendar_users_changed`` to the organisation's active connectors, after the commit.
"""

# No ``from __future__ import annotations``: FastAPI resolves the Annotated dependencies.
import json
import logging
from typing import Annotated, Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hybridge.calendar import wire
from hybridge.cloud import calendar_meetings as meeting_store
from hybridge.cloud import calendar_service as service
from hybridge.cloud.calendar_api import (
    calendar_api_router,
    error_response,
    read_body,
    room_answer,
)
from hybridge.cloud.calendar_errors import (
    CalendarInputError,
    CalendarNotFound,
    CalendarServiceError,
)
from hybridge.cloud.calendar_join import load_join_key, preview_lines
from hybridge.cloud.calendar_joinpage import join_page_router
from hybridge.cloud.models import connector
from hybridge.cloud.orgs import PortalAdmin
from hybridge.cloud.services import CloudServices, Services
from hybridge.core.meetings import JoinTemplate
from hybridge.web.auth import WebAuth
from hybridge.web.pages import render

log = logging.getLogger("hybridge.cloud.calendar")

COMMAND = "calendar_users_changed"
#: A pasted list: 20,000 lines of ~60 characters.
MAX_PASTE_CHARS = 2 * 1024 * 1024
MAX_JSON_BYTES = 4 * 1024 * 1024


async def notify_users_changed(request: Request, org_id: str, version: int) -> int:
    """Send ``calendar_users_changed`` with the new version to ``org_id``'s active
    connectors; returns how many were sent. A connector that misses it (offline) learns
    the list by its poll (``If-None-Match``), so a failed send is logged, not raised."""
    hub = getattr(request.app.state, "control", None)
    if hub is None:
        return 0
    services: CloudServices = request.app.state.cloud

    def active() -> list[str]:
        with services.database.transaction() as db:
            return list(
                db.execute(
                    sa.select(connector.c.id).where(
                        connector.c.org_id == org_id, connector.c.status == "active"
                    )
                ).scalars()
            )

    sent = 0
    for connector_id in await run_in_threadpool(active):
        try:
            # Command args are strings (core.control_commands.Command).
            await hub.send_command(connector_id, COMMAND, {"version": str(version)})
            sent += 1
        except Exception:
            log.exception("calendar: %s to connector %s failed", COMMAND, connector_id)
    return sent


def _user_json(user: service.EnabledUser) -> dict[str, Any]:
    return {
        "mailbox": user.mailbox,
        "display_name": user.display_name,
        "status": user.status,
        "reason": user.reason,
        "status_at": None if user.status_at is None else user.status_at.isoformat(),
        "out_of_office": None
        if user.ooo_state is None
        else {
            "state": user.ooo_state,
            "active": user.ooo_active,
            "until": None if user.ooo_until is None else user.ooo_until.isoformat(),
        },
        "meetings": user.meetings,
    }


def calendar_portal_router(auth: WebAuth, portal_admin: Any, join_key: bytes) -> APIRouter:
    """The Calendar pages and ``/portal/api/calendar`` (session, CSRF on unsafe methods)."""
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])
    Admin = Annotated[PortalAdmin, Depends(portal_admin)]

    def calendar_page(
        request: Request,
        admin: PortalAdmin,
        services: CloudServices,
        *,
        flash: str | None = None,
        flash_kind: str = "ok",
        status_code: int = 200,
        draft: JoinTemplate | None = None,
        typed: tuple[str, str] | None = None,
    ) -> Response:
        with services.database.transaction() as db:
            users = service.list_users(db, admin.organisation.id)
            version = service.users_version(db, admin.organisation.id)
            saved = service.template(db, admin.organisation.id)
        shown = draft or saved
        # A refused draft is shown back as typed (so the admin can shorten it), unpreviewed.
        header, footer = typed or (shown.header, shown.footer)
        preview = (
            None
            if typed
            else preview_lines(join_key, services.settings.base_url, admin.organisation.id, shown)
        )
        return render(
            services.templates,
            request,
            "calendar.html",
            {
                "admin": admin,
                "users": users,
                "version": version,
                "header": header,
                "footer": footer,
                "saved": draft is None and typed is None,
                "preview": preview,
                "flash": flash,
                "flash_kind": flash_kind,
                "max_chars": 1024,
            },
            web=auth.web_session(request),
            status_code=status_code,
        )

    def change_users(admin: PortalAdmin, services: CloudServices, kind: str, value: Any) -> Any:
        def work() -> service.UsersChange:
            now = services.settings.clock()
            with services.database.transaction() as db:
                org_id = admin.organisation.id
                if kind == "add":
                    return service.add_users(db, org_id, value, admin.login, now)
                return service.remove_users(db, org_id, value, admin.login, now)

        return service.retry_on_conflict(work)

    async def page_change(
        request: Request, admin: PortalAdmin, services: CloudServices, kind: str, value: Any
    ) -> Response:
        change = await run_in_threadpool(change_users, admin, services, kind, value)
        if change.changed:
            await notify_users_changed(request, admin.organisation.id, change.version)
        verb = "Enabled" if kind == "add" else "Removed"
        flash = f"{verb} {len(change.changed)} user(s); users list version {change.version}."
        if change.unchanged:
            flash += f" Unchanged: {', '.join(change.unchanged[:10])}"
            flash += "…" if len(change.unchanged) > 10 else ""
        return await run_in_threadpool(lambda: calendar_page(request, admin, services, flash=flash))

    async def refused(
        request: Request, admin: PortalAdmin, services: CloudServices, exc: Exception
    ) -> Response:
        return await run_in_threadpool(
            lambda: calendar_page(
                request, admin, services, flash=str(exc), flash_kind="error", status_code=400
            )
        )

    # -- pages -------------------------------------------------------------------------

    @router.get("/calendar")
    def calendar(request: Request, admin: Admin, services: Services) -> Response:
        return calendar_page(request, admin, services)

    @router.post("/calendar/users/add")
    async def add_user(
        request: Request,
        admin: Admin,
        services: Services,
        mailbox: Annotated[str, Form(max_length=300)],
        display_name: Annotated[str, Form(max_length=300)] = "",
    ) -> Response:
        try:
            entry = (service.check_mailbox(mailbox), service.check_display_name(display_name))
        except CalendarInputError as exc:
            return await refused(request, admin, services, exc)
        return await page_change(request, admin, services, "add", [entry])

    @router.post("/calendar/users/paste")
    async def paste_users(
        request: Request,
        admin: Admin,
        services: Services,
        users: Annotated[str, Form(max_length=MAX_PASTE_CHARS)],
    ) -> Response:
        try:
            entries = service.parse_users(users)
        except CalendarInputError as exc:
            return await refused(request, admin, services, exc)
        return await page_change(request, admin, services, "add", entries)

    @router.post("/calendar/users/remove")
    async def remove_user(
        request: Request,
        admin: Admin,
        services: Services,
        mailbox: Annotated[str, Form(max_length=300)],
    ) -> Response:
        try:
            address = service.check_mailbox(mailbox)
        except CalendarInputError as exc:
            return await refused(request, admin, services, exc)
        return await page_change(request, admin, services, "remove", [address])

    @router.post("/calendar/template")
    async def save_template(
        request: Request,
        admin: Admin,
        services: Services,
        header: Annotated[str, Form(max_length=64 * 1024)] = "",
        footer: Annotated[str, Form(max_length=64 * 1024)] = "",
        action: Annotated[str, Form(max_length=16)] = "save",
    ) -> Response:
        # Browsers send CRLF in textareas (HTML §4.10.11); the block is written with LF.
        header, footer = header.replace("\r\n", "\n"), footer.replace("\r\n", "\n")
        try:
            checked = service.check_template(header, footer)
        except CalendarInputError as exc:
            message = f"Template not saved: {exc}"
            return await run_in_threadpool(
                lambda: calendar_page(
                    request,
                    admin,
                    services,
                    flash=message,
                    flash_kind="error",
                    status_code=400,
                    typed=(header, footer),
                )
            )
        if action == "preview":
            return await run_in_threadpool(
                lambda: calendar_page(
                    request,
                    admin,
                    services,
                    flash="Preview only: not saved yet.",
                    draft=checked,
                )
            )

        def save() -> None:
            with services.database.transaction() as db:
                service.set_template(
                    db, admin.organisation.id, checked, admin.login, services.settings.clock()
                )

        await run_in_threadpool(save)
        return await run_in_threadpool(
            lambda: calendar_page(
                request,
                admin,
                services,
                flash="Template saved; each meeting gets it on its next update.",
            )
        )

    @router.get("/calendar/users/{mailbox}/meetings")
    def meetings_page(mailbox: str, request: Request, admin: Admin, services: Services) -> Response:
        address = service.check_mailbox(mailbox)
        with services.database.transaction() as db:
            try:
                meetings = meeting_store.meetings_of(db, admin.organisation.id, address)
            except CalendarNotFound as exc:
                raise HTTPException(404, str(exc)) from exc
            [user] = service.list_users(db, admin.organisation.id, address)
        return render(
            services.templates,
            request,
            "calendar_meetings.html",
            {"admin": admin, "user": user, "meetings": meetings},
            web=auth.web_session(request),
        )

    # -- JSON --------------------------------------------------------------------------

    api = "/portal/api/calendar"

    async def json_body(request: Request) -> Any:
        return wire.loads(await read_body(request, MAX_JSON_BYTES), max_bytes=MAX_JSON_BYTES)

    @router.get(f"{api}/users")
    def api_users(admin: Admin, services: Services) -> Response:
        with services.database.transaction() as db:
            version = service.users_version(db, admin.organisation.id)
            users = service.list_users(db, admin.organisation.id)
        return JSONResponse(
            {"version": version, "users": [_user_json(u) for u in users]},
            headers={"ETag": f'"{version}"'},
        )

    @router.post(f"{api}/users")
    async def api_add(request: Request, admin: Admin, services: Services) -> Response:
        try:
            entries = _entries(await json_body(request))
            change = await run_in_threadpool(change_users, admin, services, "add", entries)
        except (CalendarServiceError, wire.WireFormatError) as exc:
            return error_response(exc)
        if change.changed:
            await notify_users_changed(request, admin.organisation.id, change.version)
        return JSONResponse(
            {
                "version": change.version,
                "changed": list(change.changed),
                "unchanged": list(change.unchanged),
            }
        )

    @router.delete(f"{api}/users/{{mailbox}}")
    async def api_remove(
        mailbox: str, request: Request, admin: Admin, services: Services
    ) -> Response:
        try:
            address = service.check_mailbox(mailbox)
            change = await run_in_threadpool(change_users, admin, services, "remove", [address])
            if not change.changed:
                raise CalendarNotFound(f"mailbox {address!r} is not an enabled user here")
        except CalendarServiceError as exc:
            return error_response(exc)
        await notify_users_changed(request, admin.organisation.id, change.version)
        return JSONResponse({"version": change.version, "changed": list(change.changed)})

    @router.get(f"{api}/users/{{mailbox}}/meetings")
    def api_meetings(mailbox: str, admin: Admin, services: Services) -> Response:
        try:
            address = service.check_mailbox(mailbox)
            with services.database.transaction() as db:
                meetings = meeting_store.meetings_of(db, admin.organisation.id, address)
        except CalendarServiceError as exc:
            return error_response(exc)
        return JSONResponse({"mailbox": address, "meetings": [m.to_json() for m in meetings]})

    def template_json(services: CloudServices, org_id: str, value: JoinTemplate) -> dict[str, Any]:
        return {
            **wire.join_template_to_json(value),
            "preview": preview_lines(join_key, services.settings.base_url, org_id, value),
        }

    @router.get(f"{api}/template")
    def api_template(admin: Admin, services: Services) -> Response:
        with services.database.transaction() as db:
            value = service.template(db, admin.organisation.id)
        return JSONResponse(template_json(services, admin.organisation.id, value))

    @router.put(f"{api}/template")
    async def api_set_template(request: Request, admin: Admin, services: Services) -> Response:
        try:
            document = await json_body(request)
            value = wire.join_template_from_json(document, field="")
        except (CalendarServiceError, wire.WireFormatError) as exc:
            return error_response(exc)

        def save() -> None:
            with services.database.transaction() as db:
                service.set_template(
                    db, admin.organisation.id, value, admin.login, services.settings.clock()
                )

        await run_in_threadpool(save)
        return JSONResponse(template_json(services, admin.organisation.id, value))

    @router.get(f"{api}/rooms/{{room}}/meetings")
    def api_rooms(room: str, request: Request, admin: Admin, services: Services) -> Response:
        try:
            with services.database.transaction() as db:
                body = room_answer(db, services, admin.organisation.id, room, request, join_key)
        except CalendarServiceError as exc:
            return error_response(exc)
        return JSONResponse(body)

    return router


def _entries(document: Any) -> list[tuple[str, str]]:
    """``{"users": [{"mailbox": ..., "display_name": ...}]}`` as (mailbox, name) pairs."""
    if not isinstance(document, dict) or set(document) != {"users"}:
        raise CalendarInputError('the body must be {"users": [...]}', field="users")
    users = document["users"]
    if not isinstance(users, list) or len(users) > service.MAX_PASTE_USERS:
        raise CalendarInputError(
            f"must be a list of at most {service.MAX_PASTE_USERS} users", field="users"
        )
    out = []
    for index, item in enumerate(users):
        field = f"users[{index}]"
        if not isinstance(item, dict) or not set(item) <= {"mailbox", "display_name"}:
            raise CalendarInputError('must be {"mailbox": ..., "display_name": ...}', field=field)
        mailbox, name = item.get("mailbox"), item.get("display_name", "")
        if not isinstance(mailbox, str):
            raise CalendarInputError(
                f"{json.dumps(mailbox)[:80]} must be a string", field=f"{field}.mailbox"
            )
        if not isinstance(name, str):
            raise CalendarInputError("must be a string", field=f"{field}.display_name")
        out.append(
            (
                service.check_mailbox(mailbox, f"{field}.mailbox"),
                service.check_display_name(name, f"{field}.display_name"),
            )
        )
    return out


def install_calendar(app: FastAPI, services: CloudServices, portal_admin: Any) -> None:
    """Add the calendar service to the cloud app: the connectors' API, the portal pages
    and the admin's JSON API, with the per-cloud join key (``calendar_join``).

    Raises:
        CloudKeyError: the join key cannot be loaded or created.
    """
    join_key = load_join_key(services.settings.data_dir)
    app.include_router(calendar_api_router(join_key))
    app.include_router(calendar_portal_router(services.auth, portal_admin, join_key))
    app.include_router(join_page_router(join_key))  # public: the URL is the capability
    # The meetings list links each user with a path-safe mailbox.
    services.templates.env.filters["mailbox_path"] = lambda value: quote(value, safe="@")
