"""Fixtures of the connector integration tests: one real cloud process for the package."""

from collections.abc import Iterator

import pytest
from connector_stack import Cloud, add_cloud_admins, demo_pki, make

from hybridge.connector.demo_run import start_cloud
from hybridge.demo.pki import DemoPki

__all__ = ["cloud", "demo_pki", "make"]


@pytest.fixture(scope="package")
def cloud(tmp_path_factory: pytest.TempPathFactory, demo_pki: DemoPki) -> Iterator[Cloud]:
    work = tmp_path_factory.mktemp("cloud-role")
    add_cloud_admins(work / "cloud", {"alice@acme.test": "Acme", "bob@bravo.test": "Bravo"})
    role = start_cloud(work, demo_pki)
    try:
        yield Cloud(role, work / "cloud")
    finally:
        role.stop()
