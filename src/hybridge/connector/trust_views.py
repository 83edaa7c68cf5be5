"""Trust store pages and their JSON API, over the same ``TrustStore`` as ``hybridge trust``.

Pages: ``/trust`` (list with a Validity column), ``/trust/upload`` (PEM, DER or PKCS#7; a
confirmation page shows each certificate's SHA-256 fingerprint before anything is added),
``/trust/{fp}`` (decoded), ``/trust/{fp}/pem``, ``POST /trust/{fp}/delete`` (manual anchors
only), ``/trust/export``. Bootstrap anchors never appear: ``list_anchors`` and
``export_pem`` only know the manual and cloud sets (DESIGN.md §3 invariant 1).

API (session cookie + ``X-CSRF-Token`` on unsafe methods): ``GET /api/trust/anchors``,
``GET /api/trust/anchors/{fp}``, ``POST /api/trust/anchors`` (the file as body; without
``?confirm=fp,fp`` it answers 409 with the fingerprints to confirm, with it it adds exactly
those), ``DELETE /api/trust/anchors/{fp}``, ``GET /api/trust/export``.

The upload waiting for confirmation is kept in the admin's server-side session, so the
bytes confirmed are the bytes previewed (the fingerprints are recomputed from them).
"""

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hybridge.connector.services import ConnectorServices, Services
from hybridge.core.pki import assess, describe, fingerprint_sha256, to_pem
from hybridge.truststore import AnchorReport, CertificateSource, Reject, TrustStoreError
from hybridge.truststore.checks import manual_problem, parse_source
from hybridge.web.auth import WebAuth
from hybridge.web.pages import render
from hybridge.web.sessions import WebSession

#: Largest upload (bytes). A CA bundle of a few hundred roots is ~300 KB; the pending upload
#: is kept in the session row until confirmed, so it is bounded well below the PKI limit.
MAX_UPLOAD_BYTES = 1024 * 1024
_PENDING = "trust_upload"


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def anchor_summary(report: AnchorReport) -> dict[str, Any]:
    """A list row: what the page table and the JSON list show."""
    info, assessment, anchor = report.info, report.assessment, report.anchor
    return {
        "fingerprint_sha256": anchor.fingerprint_sha256,
        "subject": info.subject,
        "issuer": info.issuer,
        "source": anchor.source.value,
        "status": assessment.status.value,
        "problems": list(assessment.problems),
        "warnings": list(assessment.warnings),
        "not_before": info.not_before.isoformat(),
        "not_after": info.not_after.isoformat(),
        "validity": f"{_iso(info.not_before)} – {_iso(info.not_after)}",
        "expires_in_days": assessment.expires_in_days,
        "added_at": anchor.added_at.isoformat(),
        "added_by": anchor.added_by,
        "cloud_sequence": anchor.cloud_sequence,
        "removable": anchor.source.value == "manual",
    }


def anchor_detail(report: AnchorReport) -> dict[str, Any]:
    """The decoded view: every field of ``describe`` plus the assessment and the PEM."""
    info = report.info
    return {
        **anchor_summary(report),
        "serial": info.serial,
        "fingerprint_sha1": info.fingerprint_sha1,
        "key": info.key,
        "signature_algorithm": info.signature_algorithm,
        "is_ca": info.is_ca,
        "path_length": info.path_length,
        "key_usage": list(info.key_usage),
        "self_signed": info.self_signed,
        "version": info.version,
        "pem": to_pem(report.anchor.der),
    }


def preview(services: ConnectorServices, sources: list[CertificateSource]) -> dict[str, Any]:
    """What an upload holds, certificate by certificate, and what the store would refuse.

    Nothing is stored; the same checks as ``add_manual`` decide ``acceptable``.
    """
    now = services.settings.clock()
    rejects: list[Reject] = []
    items = []
    existing = {r.anchor.fingerprint_sha256 for r in services.store.list_anchors()}
    for source in sources:
        for index, der, cert in parse_source(source, rejects):
            info = describe(cert)
            problem = manual_problem(cert, now, allow_non_ca=False)
            if problem is not None:
                rejects.append(Reject(source.name, index, problem))
            fingerprint = fingerprint_sha256(der)
            items.append(
                {
                    "source": source.name,
                    "index": index,
                    "fingerprint_sha256": fingerprint,
                    "fingerprint_grouped": " ".join(
                        fingerprint[i : i + 2] for i in range(0, 64, 2)
                    ).upper(),
                    "subject": info.subject,
                    "issuer": info.issuer,
                    "validity": f"{_iso(info.not_before)} – {_iso(info.not_after)}",
                    "status": assess(cert, now).status.value,
                    "problem": problem,
                    "duplicate": fingerprint in existing,
                }
            )
    return {
        "certificates": items,
        "rejects": [str(r) for r in rejects],
        "acceptable": not rejects and bool(items),
    }


def _session_sources(web: WebSession) -> list[CertificateSource]:
    pending = web.data.get(_PENDING)
    if not isinstance(pending, list):
        return []
    sources = []
    for item in pending:
        try:
            sources.append(CertificateSource(str(item[0]), base64.b64decode(item[1])))
        except (binascii.Error, IndexError, TypeError, ValueError):
            return []
    return sources


def trust_router(auth: WebAuth) -> APIRouter:
    """The trust pages and API; every unsafe request passes ``auth.csrf_protect``."""
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])
    Admin = Annotated[WebSession, Depends(auth.current_admin)]

    def actor(web: WebSession) -> str:
        return f"web:{web.admin_login}"

    def list_page(
        request: Request,
        services: ConnectorServices,
        web: WebSession,
        flash: str | None = None,
        flash_kind: str = "ok",
        status_code: int = 200,
    ) -> Response:
        anchors = [anchor_summary(r) for r in services.store.list_anchors()]
        return render(
            services.templates,
            request,
            "trust_list.html",
            {
                "title": "Trust store",
                "anchors": anchors,
                "flash": flash,
                "flash_kind": flash_kind,
                "registration": services.registration.current(),
            },
            web=auth.web_session(request),
            status_code=status_code,
        )

    @router.get("/trust")
    def trust_list(request: Request, web: Admin, services: Services) -> Response:
        return list_page(request, services, web)

    @router.get("/trust/upload")
    def upload_form(request: Request, web: Admin, services: Services) -> Response:
        return render(
            services.templates,
            request,
            "trust_upload.html",
            {"title": "Add CA certificates"},
            web=web,
        )

    @router.post("/trust/upload")
    async def upload(
        request: Request,
        web: Admin,
        services: Services,
        files: Annotated[list[UploadFile] | None, File()] = None,
        pem: Annotated[str, Form(max_length=MAX_UPLOAD_BYTES)] = "",
    ) -> Response:
        sources: list[CertificateSource] = []
        total = 0
        for upload_file in files or []:
            if not upload_file.filename:
                continue
            data = await upload_file.read(MAX_UPLOAD_BYTES + 1)
            total += len(data)
            if total > MAX_UPLOAD_BYTES:
                return render(
                    services.templates,
                    request,
                    "trust_upload.html",
                    {
                        "title": "Add CA certificates",
                        "flash": f"upload larger than {MAX_UPLOAD_BYTES} bytes refused",
                        "flash_kind": "error",
                    },
                    web=web,
                    status_code=413,
                )
            sources.append(CertificateSource(upload_file.filename[:200], data))
        if pem.strip():
            sources.append(CertificateSource("pasted text", pem.encode("utf-8", "replace")))
        if not sources:
            return render(
                services.templates,
                request,
                "trust_upload.html",
                {
                    "title": "Add CA certificates",
                    "flash": "choose a file or paste PEM text",
                    "flash_kind": "error",
                },
                web=web,
                status_code=400,
            )
        result = await run_in_threadpool(preview, services, sources)
        stored = [[s.name, base64.b64encode(s.data).decode("ascii")] for s in sources]
        web = auth.update_data(request, {**web.data, _PENDING: stored})
        return render(
            services.templates,
            request,
            "trust_confirm.html",
            {"title": "Confirm CA certificates", **result},
            web=web,
            status_code=200 if result["acceptable"] else 400,
        )

    @router.post("/trust/upload/confirm")
    def confirm(
        request: Request,
        web: Admin,
        services: Services,
        fingerprints: Annotated[str, Form(max_length=100_000)],
        decision: Annotated[str, Form(max_length=16)] = "add",
    ) -> Response:
        sources = _session_sources(web)
        web = auth.update_data(request, {k: v for k, v in web.data.items() if k != _PENDING})
        if decision != "add":
            return RedirectResponse("/trust", status_code=303)
        if not sources:
            return list_page(
                request, services, web, "no upload is waiting for confirmation", "error", 400
            )
        shown = sorted(set(fingerprints.split()))
        now_in = sorted(set(preview_fingerprints(sources)))
        # What is added must be exactly what the admin saw and confirmed.
        if shown != now_in:
            return list_page(
                request,
                services,
                web,
                "the confirmed certificates differ from the upload; upload again",
                "error",
                400,
            )
        try:
            result = services.store.add_manual(sources, actor=actor(web))
        except TrustStoreError as exc:
            return list_page(request, services, web, str(exc), "error", 400)
        message = f"{len(result.added)} CA certificates added"
        if result.duplicates:
            message += f", {len(result.duplicates)} already present"
        return list_page(request, services, web, message)

    @router.get("/trust/export")
    def export(web: Admin, services: Services) -> Response:
        return PlainTextResponse(
            services.store.export_pem(),
            media_type="application/x-pem-file",
            headers={"Content-Disposition": 'attachment; filename="trust-bundle.pem"'},
        )

    @router.get("/trust/{fingerprint}")
    def show(fingerprint: str, request: Request, web: Admin, services: Services) -> Response:
        report = services.store.find(fingerprint)
        return render(
            services.templates,
            request,
            "trust_show.html",
            {"title": "CA certificate", "a": anchor_detail(report)},
            web=web,
        )

    @router.get("/trust/{fingerprint}/pem")
    def show_pem(fingerprint: str, web: Admin, services: Services) -> Response:
        report = services.store.find(fingerprint)
        return PlainTextResponse(to_pem(report.anchor.der), media_type="application/x-pem-file")

    @router.post("/trust/{fingerprint}/delete")
    def delete(fingerprint: str, request: Request, web: Admin, services: Services) -> Response:
        try:
            removed = services.store.remove_manual([fingerprint], actor=actor(web))
        except TrustStoreError as exc:
            return list_page(request, services, web, str(exc), "error", 400)
        return list_page(request, services, web, f"removed {', '.join(removed)}")

    # -- JSON API ---------------------------------------------------------------------

    @router.get("/api/session")
    def api_session(web: Admin) -> JSONResponse:
        # Same-origin scripts only (no CORS): the token for the X-CSRF-Token header.
        return JSONResponse({"login": web.admin_login, "csrf_token": web.csrf_token})

    @router.get("/api/trust/anchors")
    def api_list(web: Admin, services: Services) -> JSONResponse:
        return JSONResponse({"anchors": [anchor_summary(r) for r in services.store.list_anchors()]})

    @router.get("/api/trust/anchors/{fingerprint}")
    def api_show(fingerprint: str, web: Admin, services: Services) -> JSONResponse:
        return JSONResponse(anchor_detail(services.store.find(fingerprint)))

    @router.post("/api/trust/anchors")
    async def api_add(
        request: Request, web: Admin, services: Services, confirm: str = ""
    ) -> JSONResponse:
        data = b""
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_UPLOAD_BYTES:
                return JSONResponse(
                    {"error": "too large", "detail": f"at most {MAX_UPLOAD_BYTES} bytes"}, 413
                )
        sources = [CertificateSource("request body", data)]
        result = await run_in_threadpool(preview, services, sources)
        if not result["acceptable"]:
            return JSONResponse({"error": "refused", **result}, 400)
        wanted = sorted(set(confirm.replace(",", " ").split()))
        if wanted != sorted({c["fingerprint_sha256"] for c in result["certificates"]}):
            # The API's confirmation step: the caller repeats the request naming the
            # fingerprints it has checked, as the page's confirm button does.
            return JSONResponse(
                {
                    "error": "confirmation required",
                    "detail": "repeat with ?confirm=<fingerprint>,<fingerprint> naming exactly "
                    "these certificates",
                    **result,
                },
                409,
            )
        try:
            added = await run_in_threadpool(
                lambda: services.store.add_manual(sources, actor=actor(web))
            )
        except TrustStoreError as exc:
            return JSONResponse({"error": "refused", "detail": str(exc)}, 400)
        return JSONResponse(
            {
                "added": list(added.added),
                "duplicates": [d.fingerprint_sha256 for d in added.duplicates],
            },
            201,
        )

    @router.delete("/api/trust/anchors/{fingerprint}")
    def api_delete(fingerprint: str, web: Admin, services: Services) -> JSONResponse:
        removed = services.store.remove_manual([fingerprint], actor=actor(web))
        return JSONResponse({"removed": list(removed)})

    @router.get("/api/trust/export")
    def api_export(web: Admin, services: Services) -> Response:
        return PlainTextResponse(services.store.export_pem(), media_type="application/x-pem-file")

    return router


def preview_fingerprints(sources: list[CertificateSource]) -> list[str]:
    """The SHA-256 fingerprints of every certificate that loads from ``sources``."""
    rejects: list[Reject] = []
    return [fingerprint_sha256(der) for s in sources for _i, der, _c in parse_source(s, rejects)]
