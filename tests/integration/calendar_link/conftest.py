"""Fixtures of the calendar-link tests: the demo PKI, the EWS emulator, one cloud process."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import trustme
from calendar_link_stack import CloudProcess, Ews, control_stack, emulator_config

from hybridge.connector.demo_run import start_cloud
from hybridge.demo.pki import DemoPki, init_demo_pki
from hybridge.storage.db import open_database, sqlite_url
from hybridge.testing.ews import EwsEmulator


@pytest.fixture(scope="package")
def demo_pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    pki, _ = init_demo_pki(tmp_path_factory.mktemp("calendar-link-pki") / "demo")
    return pki


@pytest.fixture(scope="module")
def ews(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ews]:
    ca = trustme.CA(organization_name="Contoso Exchange CA")
    d = tmp_path_factory.mktemp("calendar-link-ews")
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    with EwsEmulator(emulator_config(), cert_file=d / "cert.pem", key_file=d / "key.pem") as em:
        yield Ews(em, ca)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, demo_pki: DemoPki) -> Iterator[CloudProcess]:
    cs = control_stack()
    tmp = tmp_path_factory.mktemp("calendar-link")
    cs.add_operator(tmp / "cloud")
    role = start_cloud(tmp, demo_pki, env={**os.environ, **cs.CLOUD_ENV})
    database = open_database(sqlite_url(tmp / "cloud" / "cloud.db"), "cloud")
    try:
        yield CloudProcess(tmp, role, database)
    finally:
        role.stop()
        database.dispose()
