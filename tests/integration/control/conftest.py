"""Fixtures of the control-channel tests: the demo PKI, cloud processes, connector nodes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hybridge.cloud.orgs import create_org_admin
from hybridge.connector.demo_run import RoleProcess, start_cloud, start_connector
from hybridge.demo.pki import DemoPki, init_demo_pki
from hybridge.storage.db import open_database, sqlite_url
from hybridge.web.clock import system_clock

OPERATOR = "ops@acme.test"
PASSWORD = "control channel test password"
#: Fast heartbeats and reconnects so the tests stay within seconds.
CLOUD_ENV = {"HYBRIDGE_CONTROL_HEARTBEAT": "2", "HYBRIDGE_CONTROL_POLL": "1"}
CONNECTOR_ENV = {"HYBRIDGE_CONTROL_BACKOFF_BASE": "0.2", "HYBRIDGE_CONTROL_BACKOFF_CAP": "1"}


@pytest.fixture(scope="package")
def demo_pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    pki, _ = init_demo_pki(tmp_path_factory.mktemp("control-pki") / "demo")
    return pki


def add_operator(cloud_dir: Path, database_url: str | None = None) -> None:
    cloud_dir.mkdir(parents=True, exist_ok=True)
    database = open_database(database_url or sqlite_url(cloud_dir / "cloud.db"), "cloud")
    try:
        with database.transaction() as db:
            create_org_admin(db, "Acme", OPERATOR, PASSWORD, system_clock(), operator=True)
    finally:
        database.dispose()


RoleStarter = Callable[..., RoleProcess]


@pytest.fixture
def roles(demo_pki: DemoPki) -> Iterator[tuple[RoleStarter, RoleStarter]]:
    """``(start_cloud, start_connector)`` whose processes are all stopped at the end."""
    started: list[RoleProcess] = []

    def cloud(
        work: Path, *, port: int | None = None, env: dict[str, str] | None = None
    ) -> RoleProcess:
        role = start_cloud(
            work, demo_pki, port=port, env={**os.environ, **CLOUD_ENV, **(env or {})}
        )
        started.append(role)
        return role

    def connector(work: Path, *, env: dict[str, str] | None = None) -> RoleProcess:
        role = start_connector(work, demo_pki, env={**os.environ, **CONNECTOR_ENV, **(env or {})})
        started.append(role)
        return role

    yield cloud, connector
    for role in reversed(started):
        role.stop()
