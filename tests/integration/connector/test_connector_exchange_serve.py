"""``hybridge connector serve`` as a real process over HTTPS on 127.0.0.1: the connector admin
configures Exchange and creates a link, the Exchange admin enters the password through it
(EWS emulator over TLS), and the server's own log holds neither the password nor the
link's token."""

from __future__ import annotations

import base64
import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import trustme
from exchange_stack import PASSWORD, SVC, Ews, config_body, ews

from hybridge.storage.db import open_database, sqlite_url
from hybridge.truststore import CertificateSource, open_trust_store
from hybridge.truststore.services import DATABASE_NAME
from hybridge.web.accounts import create_admin
from hybridge.web.clock import system_clock

__all__ = ["ews"]

ADMIN = "serve admin password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_served_connector_takes_the_password_through_the_link(tmp_path: Path, ews: Ews) -> None:
    data = tmp_path / "connector"
    with open_trust_store(data) as store:
        store.add_manual([CertificateSource("contoso.pem", ews.ca.cert_pem.bytes())], actor="t")
    database = open_database(sqlite_url(data / DATABASE_NAME), "node")
    with database.transaction() as db:
        create_admin(db, "admin", ADMIN, system_clock())
    database.dispose()
    web_ca = trustme.CA()
    web_cert = web_ca.issue_cert("127.0.0.1")
    web_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "web.pem"))
    web_cert.private_key_pem.write_to_path(str(tmp_path / "web.key"))
    port = _free_port()
    url = f"https://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "hybridge", "connector", "serve", "--data-dir", str(data),
                "--port", str(port), "--cert", str(tmp_path / "web.pem"),
                "--key", str(tmp_path / "web.key"),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    context = ssl.create_default_context(cafile=None)
    context.load_verify_locations(cadata=web_ca.cert_pem.bytes().decode())
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", verify=context, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "connector did not start: " + log.read_text()
            time.sleep(0.2)
        with httpx.Client(base_url=url, verify=context, timeout=30) as admin:
            login = admin.get("/login").text
            token = re.findall(r'name="csrf_token" value="([^"]+)"', login)[-1]
            admin.post("/login", data={"login": "admin", "password": ADMIN, "csrf_token": token})
            csrf = admin.get("/api/session").json()["csrf_token"]
            created = admin.post(
                "/api/exchange/configs",
                json={"config": config_body(ews.url)},
                headers={"X-CSRF-Token": csrf},
            )
            assert created.status_code == 201, created.text
            config_id = created.json()["config"]["id"]
            link = admin.post(
                f"/api/exchange/configs/{config_id}/links", headers={"X-CSRF-Token": csrf}
            ).json()
        link_path = link["url"].removeprefix(url)
        with httpx.Client(base_url=url, verify=context, timeout=30) as exchange_admin:
            page = exchange_admin.get(link_path)
            assert page.status_code == 200
            form_token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text)
            assert form_token
            done = exchange_admin.post(
                link_path,
                data={"username": SVC, "password": PASSWORD, "csrf_token": form_token.group(1)},
            )
            assert done.status_code == 200 and 'data-code="ok"' in done.text
            assert exchange_admin.get(link_path).status_code == 410
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    text = log.read_bytes()
    token = link_path.rsplit("/", 1)[1]
    assert f"/credential-entry/{config_id}/<token>".encode() in text  # the access log ran
    assert token.encode() not in text
    for form in (PASSWORD.encode(), PASSWORD.encode("utf-16-le")):
        assert form not in text and base64.b64encode(form) not in text
