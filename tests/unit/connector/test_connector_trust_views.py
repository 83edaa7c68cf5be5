"""Trust pages and API over a real trust store: list, upload with confirmation, views, delete."""

from __future__ import annotations

import re

from connector_app import App, csrf_of
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from fastapi.testclient import TestClient

import certs


def _upload(app: App, name: str, data: bytes) -> tuple[int, str]:
    response = app.client.post(
        "/trust/upload",
        files={"files": (name, data, "application/octet-stream")},
        data={"csrf_token": app.csrf("/trust/upload")},
    )
    return response.status_code, response.text


def _fingerprints(html: str) -> list[str]:
    return re.findall(r'<tr data-fingerprint="([0-9a-f]{64})"', html)


def _confirm(app: App, html: str, fingerprints: str | None = None) -> str:
    shown = " ".join(_fingerprints(html)) if fingerprints is None else fingerprints
    response = app.client.post(
        "/trust/upload/confirm",
        data={"fingerprints": shown, "decision": "add", "csrf_token": csrf_of(html)},
    )
    return response.text


def test_pages_need_a_logged_in_admin(app: App) -> None:
    anonymous = TestClient(app.client.app, base_url="https://connector.test:9443")
    response = anonymous.get("/trust", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Ftrust"
    assert anonymous.get("/api/trust/anchors").status_code == 401


def test_upload_shows_fingerprints_and_adds_only_after_confirmation(app: App) -> None:
    root = certs.build("Unit Upload Root")
    status, preview = _upload(app, "root.pem", root.pem)
    assert status == 200
    fingerprint = root.certificate.fingerprint(certs.hashes.SHA256()).hex()
    grouped = ":".join([fingerprint[i : i + 2] for i in range(0, 64, 2)]).upper()
    assert grouped.replace(":", " ") in preview
    assert app.services.store.list_anchors() == ()  # nothing before the confirmation
    done = _confirm(app, preview)
    assert "1 CA certificates added" in done
    row = re.search(
        rf'<tr data-fingerprint="{fingerprint}" data-source="manual">(.*?)</tr>', done, re.S
    )
    assert row and "Unit Upload Root" in row.group(1) and ">valid<" in row.group(1)


def test_confirmation_must_name_exactly_the_uploaded_certificates(app: App) -> None:
    status, preview = _upload(app, "root.pem", certs.build("Unit Confirm Root").pem)
    assert status == 200
    done = _confirm(app, preview, fingerprints="ab" * 32)
    assert "the confirmed certificates differ from the upload; upload again" in done
    assert app.services.store.list_anchors() == ()


def test_der_and_pkcs7_uploads_are_read(app: App) -> None:
    one, two = certs.build("Unit DER Root"), certs.build("Unit P7 Root")
    status, preview = _upload(app, "root.der", one.der)
    assert status == 200 and len(_fingerprints(preview)) == 1
    bundle = pkcs7.serialize_certificates([two.certificate, one.certificate], Encoding.DER)
    status, preview = _upload(app, "roots.p7b", bundle)
    assert status == 200 and len(_fingerprints(preview)) == 2
    assert "Unit P7 Root" in preview and "Unit DER Root" in preview


def test_server_certificate_upload_is_refused_with_its_reason(app: App) -> None:
    root = certs.build("Unit Issuer Root")
    leaf = certs.build("server.unit.test", issuer=root, is_ca=False)
    status, preview = _upload(app, "leaf.pem", leaf.pem)
    assert status == 400
    assert "Nothing can be added: leaf.pem certificate 1:" in preview
    assert "not a CA" in preview
    assert ">Add 1 certificate<" not in preview


def test_garbage_upload_is_refused(app: App) -> None:
    status, preview = _upload(app, "junk.pem", b"not a certificate at all")
    assert status == 400
    assert "Nothing can be added: junk.pem:" in preview


def test_decoded_and_pem_views_and_export(app: App) -> None:
    root = certs.build("Unit View Root")
    _status, preview = _upload(app, "root.pem", root.pem)
    _confirm(app, preview)
    fingerprint = _fingerprints(preview)[0]
    decoded = app.client.get(f"/trust/{fingerprint}")
    assert decoded.status_code == 200
    assert "Unit View Root" in decoded.text and fingerprint in decoded.text
    pem = app.client.get(f"/trust/{fingerprint}/pem")
    assert pem.text.encode() == root.pem
    export = app.client.get("/trust/export")
    assert export.headers["content-disposition"] == 'attachment; filename="trust-bundle.pem"'
    assert root.pem.decode().strip() in export.text


def test_bootstrap_anchors_never_appear(app: App, bootstrap_ca: certs.Issued) -> None:
    fingerprint = bootstrap_ca.certificate.fingerprint(certs.hashes.SHA256()).hex()
    assert "Connector Unit Bootstrap Root" not in app.client.get("/trust").text
    assert app.client.get("/api/trust/anchors").json() == {"anchors": []}
    assert "BEGIN CERTIFICATE" not in app.client.get("/trust/export").text
    missing = app.client.get(f"/api/trust/anchors/{fingerprint}")
    assert missing.status_code == 404


def test_delete_manual_anchor_but_never_a_cloud_anchor(app: App) -> None:
    manual, cloud = certs.build("Unit Manual Root"), certs.build("Unit Cloud Root")
    _status, preview = _upload(app, "manual.pem", manual.pem)
    _confirm(app, preview)
    app.services.store.apply_cloud_set([cloud.der], actor="test", sequence=1)
    page = app.client.get("/trust").text
    manual_fp = manual.certificate.fingerprint(certs.hashes.SHA256()).hex()
    cloud_fp = cloud.certificate.fingerprint(certs.hashes.SHA256()).hex()
    assert f'action="/trust/{manual_fp}/delete"' in page
    assert f'action="/trust/{cloud_fp}/delete"' not in page
    refused = app.client.post(f"/trust/{cloud_fp}/delete", data={"csrf_token": csrf_of(page)})
    assert refused.status_code == 400 and "is managed by the cloud" in refused.text
    removed = app.client.post(f"/trust/{manual_fp}/delete", data={"csrf_token": csrf_of(page)})
    assert removed.status_code == 200 and f"removed {manual_fp}" in removed.text
    assert [r.anchor.fingerprint_sha256 for r in app.services.store.list_anchors()] == [cloud_fp]


def test_delete_without_csrf_token_is_refused(app: App) -> None:
    manual = certs.build("Unit CSRF Root")
    _status, preview = _upload(app, "manual.pem", manual.pem)
    _confirm(app, preview)
    fingerprint = _fingerprints(preview)[0]
    refused = app.client.post(f"/trust/{fingerprint}/delete")
    assert refused.status_code == 403
    assert len(app.services.store.list_anchors()) == 1


def test_api_add_needs_confirmation_then_adds(app: App) -> None:
    root = certs.build("Unit API Root")
    token = app.client.get("/api/session").json()["csrf_token"]
    headers = {"X-CSRF-Token": token, "Content-Type": "application/x-pem-file"}
    first = app.client.post("/api/trust/anchors", content=root.pem, headers=headers)
    assert first.status_code == 409
    fingerprint = first.json()["certificates"][0]["fingerprint_sha256"]
    assert app.services.store.list_anchors() == ()
    added = app.client.post(
        f"/api/trust/anchors?confirm={fingerprint}", content=root.pem, headers=headers
    )
    assert added.status_code == 201 and added.json()["added"] == [fingerprint]
    listed = app.client.get("/api/trust/anchors").json()["anchors"]
    assert [(a["fingerprint_sha256"], a["status"], a["source"]) for a in listed] == [
        (fingerprint, "valid", "manual")
    ]
    detail = app.client.get(f"/api/trust/anchors/{fingerprint}").json()
    assert detail["pem"].encode() == root.pem
    deleted = app.client.delete(f"/api/trust/anchors/{fingerprint}", headers=headers)
    assert deleted.status_code == 200 and deleted.json() == {"removed": [fingerprint]}


def test_api_add_without_csrf_header_is_refused(app: App) -> None:
    root = certs.build("Unit API CSRF Root")
    refused = app.client.post(
        "/api/trust/anchors?confirm=x", content=root.pem, headers={"Content-Type": "text/plain"}
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == "request refused"
    assert app.services.store.list_anchors() == ()
