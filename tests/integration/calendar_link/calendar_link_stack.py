"""The calendar link end to end: a real cloud process, a real connector process, and the EWS
emulator over TLS on 127.0.0.1 (in this process, so tests change mailboxes directly, as
another client would).

The connector is registered the way ``tests/integration/control/control_stack.py`` does it
(its helpers are loaded from there, not copied): the cloud's connector row with a client
certificate from the real connector CA, and on the connector the stored registration, the
vaulted key and the first CA list. The Exchange configuration is saved through the real
``ExchangeService`` (its connection test runs against the emulator), with the emulator's CA
as a manual trust anchor.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import httpx
import trustme

from hybridge.connector.demo_run import RoleProcess, create_connector_admin, start_connector
from hybridge.connector.exchange import ExchangeService
from hybridge.connector.exchange_config import ExchangeConfig
from hybridge.demo.pki import DemoPki
from hybridge.storage.db import Database
from hybridge.testing.ews import (
    DirectoryAccount,
    EmulatorConfig,
    EwsEmulator,
    ImpersonationAssignment,
)
from hybridge.truststore.interfaces import CertificateSource
from hybridge.vault import Secret, Vault, configured_source
from hybridge.web.clock import system_clock

SVC_PASSWORD = "Cal3ndar-link!imp3rsonation"
NEW_PASSWORD = "Cal3ndar-link!rotated-pw"
ADMIN = "calendar-admin"
ADMIN_PASSWORD = "calendar link admin password"
USERS = ("alice", "bob", "carol")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
#: Fast rounds so that every wait stays within seconds.
CALENDAR_ENV = {
    "HYBRIDGE_CALENDAR_USERS_POLL": "600",  # only the command (or start) triggers a fetch
    "HYBRIDGE_CALENDAR_CONFIG_POLL": "0.5",
    "HYBRIDGE_CALENDAR_SYNC_POLL": "2",
    "HYBRIDGE_CALENDAR_STATUS_INTERVAL": "1",
    "HYBRIDGE_CALENDAR_BACKOFF_BASE": "0.2",
    "HYBRIDGE_CALENDAR_BACKOFF_CAP": "1",
}


def control_stack() -> ModuleType:
    """``tests/integration/control/control_stack.py`` (one module object per session)."""
    loaded = sys.modules.get("control_stack")
    if loaded is not None:
        return loaded
    path = Path(__file__).resolve().parent.parent / "control" / "control_stack.py"
    spec = importlib.util.spec_from_file_location("control_stack", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["control_stack"] = module
    spec.loader.exec_module(module)
    return module


def mailbox(name: str) -> str:
    return f"{name}@contoso.test"


def emulator_config() -> EmulatorConfig:
    accounts = [
        DirectoryAccount("svc@contoso.test", "svc-hybridge", SVC_PASSWORD, has_mailbox=False)
    ]
    accounts += [DirectoryAccount(mailbox(u), u, f"{u}-pw") for u in USERS]
    return EmulatorConfig(
        accounts=tuple(accounts),
        # carol is outside the role's management scope: impersonating her is denied.
        impersonation=(
            ImpersonationAssignment(
                "Hybridge", "svc-hybridge", frozenset({mailbox("alice"), mailbox("bob")})
            ),
        ),
        streaming_minute_seconds=1.0,
        streaming_heartbeat_seconds=0.2,
    )


@dataclass
class Ews:
    emulator: EwsEmulator
    ca: trustme.CA

    def add(self, owner: str, subject: str, *, body: str = "", hours: int = 24) -> str:
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=hours)
        item = self.emulator.store.add_calendar_item(
            mailbox(owner),
            subject=subject,
            start=start,
            end=start + dt.timedelta(hours=1),
            body=body,
            organizer=mailbox(owner),
        )
        return str(item.item_id)

    def body(self, item_id: str) -> str:
        item = self.emulator.store.item(item_id)
        assert item is not None, item_id
        return item.text("Body") or ""

    def set_subject(self, item_id: str, subject: str) -> None:
        self.emulator.store.set_subject(item_id, subject)


def add_ews_trust(node: Any, ews: Ews) -> None:
    """The emulator's CA as a manual anchor (EWS is verified by the platform set)."""
    node.store.add_manual(
        [CertificateSource("exchange-ca.pem", ews.ca.cert_pem.bytes())], actor="admin"
    )


def save_exchange(database: Database, data_dir: Path, node: Any, ews: Ews) -> str:
    """Save the Exchange configuration with its password (tested against the emulator)."""
    vault = Vault.open(database, configured_source(data_dir), create=True, actor="test")
    service = ExchangeService(database, vault, node.store, system_clock)
    outcome = service.save(
        ExchangeConfig(
            display_name="Contoso",
            username="CONTOSO\\svc-hybridge",
            test_mailbox=mailbox("alice"),
            ews_url=ews.emulator.ews_url,
            # Basic: the password travels with every request, so a password that expires is
            # refused at the next request (NTLM authenticates a connection once, and the
            # pool's open connections would keep working until they are recycled).
            auth="Basic",
        ),
        actor="admin",
        password=Secret(SVC_PASSWORD.encode()),
    )
    assert outcome.saved and outcome.test is not None and outcome.test.ok, outcome.view()
    assert outcome.record is not None
    return outcome.record.id


def https(url: str, pki: DemoPki) -> httpx.Client:
    # No idle keep-alive connection: a server stopping gracefully would wait for it.
    return httpx.Client(
        base_url=url,
        verify=ssl.create_default_context(cafile=str(pki.root_ca)),
        timeout=30,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


@dataclass
class Portal:
    """The cloud portal, logged in as the organisation's admin, through its JSON API."""

    client: httpx.Client

    def token(self) -> str:
        page = self.client.get("/calendar")
        assert page.status_code == 200, page.text
        return str(CSRF.findall(page.text)[-1])

    def enable(self, *names: str) -> None:
        response = self.client.post(
            "/portal/api/calendar/users",
            json={"users": [{"mailbox": mailbox(n), "display_name": n.title()} for n in names]},
            headers={"X-CSRF-Token": self.token()},
        )
        assert response.status_code == 200, response.text

    def disable(self, name: str) -> None:
        response = self.client.delete(
            f"/portal/api/calendar/users/{quote(mailbox(name))}",
            headers={"X-CSRF-Token": self.token()},
        )
        assert response.status_code == 200, response.text

    def users(self) -> dict[str, Any]:
        response = self.client.get("/portal/api/calendar/users")
        assert response.status_code == 200, response.text
        return {u["mailbox"]: u for u in response.json()["users"]}

    def meetings(self, name: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/portal/api/calendar/users/{quote(mailbox(name))}/meetings")
        assert response.status_code == 200, response.text
        return list(response.json()["meetings"])


def portal(url: str, pki: DemoPki) -> Portal:
    cs = control_stack()
    client = https(url, pki)
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "login": cs.OPERATOR,
            "password": cs.PASSWORD,
            "csrf_token": CSRF.findall(page.text)[-1],
        },
    )
    assert response.status_code == 303, response.text
    return Portal(client)


@dataclass
class ConnectorAdmin:
    """The connector's admin API over HTTPS (the connector process's own certificate)."""

    client: httpx.Client

    def view(self) -> dict[str, Any]:
        response = self.client.get("/api/calendar")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def states(self) -> dict[str, str]:
        return {m["mailbox"]: m["state"] for m in self.view()["mailboxes"]}

    def token(self) -> str:
        return str(self.client.get("/api/session").json()["csrf_token"])


def connector_admin(url: str, pki: DemoPki) -> ConnectorAdmin:
    client = https(url, pki)
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "login": ADMIN,
            "password": ADMIN_PASSWORD,
            "csrf_token": CSRF.findall(page.text)[-1],
        },
    )
    assert response.status_code == 303, response.text
    return ConnectorAdmin(client)


@dataclass
class CloudProcess:
    """The module's cloud: its work directory, its process and its database."""

    tmp: Path
    role: RoleProcess
    database: Database


@dataclass
class Scene:
    """One cloud, one registered connector with an Exchange configuration, the emulator."""

    tmp: Path
    pki: DemoPki
    cloud: RoleProcess
    cloud_db: Database
    ews: Ews
    work: Path
    connector_id: str
    config_id: str
    env: dict[str, str]
    started: list[RoleProcess] = field(default_factory=list)
    connector: RoleProcess | None = None

    def start_connector(self) -> RoleProcess:
        port = None
        if self.connector is not None:
            port = int(self.connector.url.rsplit(":", 1)[1])
        self.connector = start_connector(self.work, self.pki, port=port, env=self.env)
        self.started.append(self.connector)
        return self.connector

    def stop_connector(self) -> None:
        assert self.connector is not None
        self.connector.stop()


def make_scene(
    tmp: Path, pki: DemoPki, cloud: RoleProcess, cloud_db: Database, ews: Ews, name: str
) -> Scene:
    """Enroll and register a connector, trust the emulator, save the configuration."""
    cs = control_stack()
    keys = cs.cloud_keys(pki, tmp / "cloud", cloud.url)
    enrolled = cs.enroll_in_cloud(cloud_db, keys)
    work = tmp / name
    node = cs.open_node(work / "connector", pki)
    try:
        cs.install_registration(node, enrolled, keys, cloud_db, cloud_url=cloud.url)
        add_ews_trust(node, ews)
        config_id = save_exchange(node.database, work / "connector", node, ews)
    finally:
        node.close()
    create_connector_admin(work, ADMIN, ADMIN_PASSWORD)
    env = {**os.environ, **cs.CONNECTOR_ENV, **CALENDAR_ENV}
    return Scene(tmp, pki, cloud, cloud_db, ews, work, enrolled.connector_id, config_id, env)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    return control_stack().wait_for(predicate, timeout, what, interval=0.2)
