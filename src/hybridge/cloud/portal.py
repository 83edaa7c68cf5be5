"""Portal pages: the organisation's connectors, the published CA list, the audit log."""

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from hybridge.cloud import audit, calist, presets
from hybridge.cloud.errors import CaListError, NotOperator
from hybridge.cloud.models import connector
from hybridge.cloud.orgs import PortalAdmin
from hybridge.cloud.registration import group_fingerprint
from hybridge.cloud.services import CloudServices, Services
from hybridge.core.manifest import key_id
from hybridge.web.auth import WebAuth
from hybridge.web.clock import aware
from hybridge.web.pages import render


def _require_operator(admin: PortalAdmin) -> None:
    # Tenancy: the CA list reaches every organisation's connectors, so an organisation's
    # admin may read it but only the cloud's operators may change it.
    if not admin.is_operator:
        raise NotOperator(f"{admin.login!r} is not a cloud operator; the CA list is read-only")


def portal_router(auth: WebAuth, portal_admin: Any) -> APIRouter:
    """The portal's pages; every unsafe request passes ``auth.csrf_protect``."""
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])
    Admin = Annotated[PortalAdmin, Depends(portal_admin)]

    def page(
        services: CloudServices,
        request: Request,
        name: str,
        admin: PortalAdmin,
        status_code: int = 200,
        **context: Any,
    ) -> Response:
        web = auth.web_session(request)
        return render(
            services.templates,
            request,
            name,
            {"admin": admin, **context},
            web=web,
            status_code=status_code,
        )

    @router.get("/")
    def home() -> Response:
        return RedirectResponse("/connectors", status_code=303)

    @router.get("/connectors")
    def connectors(request: Request, admin: Admin, services: Services) -> Response:
        with services.database.transaction() as db:
            # Tenancy: an admin sees the connectors of their own organisation only.
            rows = db.execute(
                sa.select(connector)
                .where(connector.c.org_id == admin.organisation.id)
                .order_by(connector.c.registered_at.desc())
            ).all()
            version = calist.current_version(db)
        items = [
            {
                "id": r.id,
                "hostname": r.hostname,
                "key_fp_grouped": group_fingerprint(r.key_fp),
                "registered_at": aware(r.registered_at),
                "trust_mode": r.trust_mode,
                "installed_sequence": r.installed_sequence,
                "last_seen_at": aware(r.last_seen_at) if r.last_seen_at else None,
                "status": r.status,
            }
            for r in rows
        ]
        return page(
            services,
            request,
            "connectors.html",
            admin,
            connectors=items,
            current_sequence=version.sequence if version else None,
            base_url=services.settings.base_url,
        )

    def calist_page(
        request: Request,
        admin: PortalAdmin,
        services: CloudServices,
        flash: str | None = None,
        flash_kind: str = "ok",
        status_code: int = 200,
    ) -> Response:
        with services.database.transaction() as db:
            version = calist.current_version(db)
            certs = calist.certificates(db, version.fingerprints) if version else []
            history = calist.versions(db)
        return page(
            services,
            request,
            "calist.html",
            admin,
            status_code=status_code,
            version=version,
            certificates=certs,
            history=history,
            webex=presets.webex_preset(services.settings.clock()),
            key_id=key_id(services.keys.list_signing_key.public_key()),
            flash=flash,
            flash_kind=flash_kind,
        )

    @router.get("/ca-list")
    def ca_list(request: Request, admin: Admin, services: Services) -> Response:
        return calist_page(request, admin, services)

    @router.post("/ca-list/upload")
    async def ca_list_upload(
        request: Request,
        admin: Admin,
        services: Services,
        file: Annotated[UploadFile | None, File()] = None,
        pem: Annotated[str, Form(max_length=calist.MAX_UPLOAD_BYTES)] = "",
    ) -> Response:
        _require_operator(admin)
        data = pem.encode()
        if file is not None and file.filename:
            data = await file.read(calist.MAX_UPLOAD_BYTES + 1)
        return await _run(request, admin, services, "upload", data)

    async def _run(
        request: Request, admin: PortalAdmin, services: CloudServices, kind: str, value: Any
    ) -> Response:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_change, request, admin, services, kind, value)

    def _change(
        request: Request, admin: PortalAdmin, services: CloudServices, kind: str, value: Any
    ) -> Response:
        now = services.settings.clock()
        issuer = services.settings.base_url
        try:
            with services.database.transaction() as db:
                if kind == "upload":
                    certs = calist.parse_ca_pem(value, now)
                    version = calist.add_certificates(
                        db, certs, admin.login, services.keys, issuer, now
                    )
                elif kind == "retire":
                    version = calist.retire(db, value, admin.login, services.keys, issuer, now)
                else:
                    entries = presets.webex_preset(now)
                    available = [
                        e.certificate
                        for e in entries
                        if e.status == "available" and e.certificate is not None
                    ]
                    skipped = [
                        f"{e.subject} ({e.note})" for e in entries if e.status != "available"
                    ]
                    change = "preset webex" + (
                        f"; skipped: {'; '.join(skipped)}" if skipped else ""
                    )
                    version = calist.replace_with(
                        db, available, admin.login, change, services.keys, issuer, now
                    )
        except CaListError as exc:
            return calist_page(request, admin, services, str(exc), "error", 400)
        return calist_page(
            request, admin, services, f"Published version {version.sequence}: {version.change}"
        )

    @router.post("/ca-list/retire")
    async def ca_list_retire(
        request: Request,
        admin: Admin,
        services: Services,
        fingerprint: Annotated[str, Form(max_length=64)],
    ) -> Response:
        _require_operator(admin)
        return await _run(request, admin, services, "retire", fingerprint.strip().lower())

    @router.post("/ca-list/preset")
    async def ca_list_preset(
        request: Request,
        admin: Admin,
        services: Services,
        name: Annotated[str, Form(max_length=32)],
    ) -> Response:
        _require_operator(admin)
        if name not in presets.PRESETS:
            raise CaListError(f"preset {name!r} is unknown; known: {list(presets.PRESETS)!r}")
        return await _run(request, admin, services, "preset", name)

    @router.get("/audit")
    def audit_log(request: Request, admin: Admin, services: Services) -> Response:
        with services.database.transaction() as db:
            events = audit.events_for(db, admin.organisation.id)
        return page(services, request, "audit.html", admin, events=events)

    return router
